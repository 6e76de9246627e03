package main

import (
	"context"
	"crypto"
	"time"

	"github.com/strongroom-pki/strongroom/api"
)

// keys wraps the key service so its cryptographic operations are timed in
// strongroom_hsm_operation_duration_seconds beside the CA's signatures,
// under key "keyservice" (applications' key ids are random names without
// bound: one series per key would grow with every key created) and the
// operation's name.
func (m *hsmMetrics) keys(ks api.KeyService) api.KeyService { return &timedKeys{KeyService: ks, m: m} }

type timedKeys struct {
	api.KeyService
	m *hsmMetrics
}

// timed runs f and observes its latency as op.
func timed[T any](t *timedKeys, op string, f func() (T, error)) (T, error) {
	start := time.Now()
	v, err := f()
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	t.m.latency.WithLabelValues("keyservice", op, outcome).Observe(time.Since(start).Seconds())
	return v, err
}

func (t *timedKeys) SignVersioned(ctx context.Context, id string, digest []byte, opts crypto.SignerOpts) ([]byte, int, error) {
	var v int
	sig, err := timed(t, "sign", func() (sig []byte, err error) {
		sig, v, err = t.KeyService.SignVersioned(ctx, id, digest, opts)
		return sig, err
	})
	return sig, v, err
}

func (t *timedKeys) Verify(ctx context.Context, id string, version int, digest, sig []byte, opts crypto.SignerOpts) error {
	_, err := timed(t, "verify", func() (struct{}, error) {
		return struct{}{}, t.KeyService.Verify(ctx, id, version, digest, sig, opts)
	})
	return err
}

func (t *timedKeys) Encrypt(ctx context.Context, id string, plaintext, aad []byte) ([]byte, error) {
	return timed(t, "encrypt", func() ([]byte, error) { return t.KeyService.Encrypt(ctx, id, plaintext, aad) })
}

func (t *timedKeys) DecryptVersion(ctx context.Context, id string, version int, ciphertext, aad []byte) ([]byte, error) {
	return timed(t, "decrypt", func() ([]byte, error) { return t.KeyService.DecryptVersion(ctx, id, version, ciphertext, aad) })
}

func (t *timedKeys) HMACVersioned(ctx context.Context, id string, data []byte) ([]byte, int, error) {
	var v int
	mac, err := timed(t, "hmac", func() (mac []byte, err error) {
		mac, v, err = t.KeyService.HMACVersioned(ctx, id, data)
		return mac, err
	})
	return mac, v, err
}

func (t *timedKeys) VerifyHMAC(ctx context.Context, id string, data, mac []byte) error {
	_, err := timed(t, "verify-hmac", func() (struct{}, error) { return struct{}{}, t.KeyService.VerifyHMAC(ctx, id, data, mac) })
	return err
}

func (t *timedKeys) GenerateDataKey(ctx context.Context, id string, bits int) ([]byte, []byte, error) {
	var wrapped []byte
	pt, err := timed(t, "data-key", func() ([]byte, error) {
		pt, w, err := t.KeyService.GenerateDataKey(ctx, id, bits)
		wrapped = w
		return pt, err
	})
	return pt, wrapped, err
}

func (t *timedKeys) DecryptDataKey(ctx context.Context, id string, wrapped []byte) ([]byte, error) {
	return timed(t, "decrypt-data-key", func() ([]byte, error) { return t.KeyService.DecryptDataKey(ctx, id, wrapped) })
}
