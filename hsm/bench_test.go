package hsm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"
)

// BenchmarkSign prints HSM signing beside the same signature made directly
// with Go's crypto, in the same run:
//
//	go test -run - -bench Sign -cpu 1,2 ./hsm
//
// The parallel variants use b.RunParallel, so with -cpu 2 two goroutines
// sign at once. The SoftHSMv2 reference over PKCS#11 is measured in the same
// run by BenchmarkSoftHSM (softhsm_bench_test.go, -tags softhsm).
func BenchmarkSign(b *testing.B) {
	ctx := context.Background()
	f := setup(b, sqliteDB(b))
	d := sha256.Sum256([]byte("benchmark"))
	cases := []struct {
		typ    KeyType
		direct crypto.Signer
		digest []byte
		opts   crypto.SignerOpts
	}{
		{P256, must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)), d[:], crypto.SHA256},
		{Ed25519, edKey(), d[:], crypto.Hash(0)},
		{RSA2048, must(rsa.GenerateKey(rand.Reader, 2048)), d[:], crypto.SHA256},
	}
	for _, c := range cases {
		k, err := f.alice.GenerateKey(ctx, KeySpec{Type: c.typ, Label: "bench-" + string(c.typ)})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(string(c.typ)+"/hsm", func(b *testing.B) {
			for b.Loop() {
				if _, err := f.alice.Sign(ctx, k.ID, c.digest, c.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(c.typ)+"/direct", func(b *testing.B) {
			for b.Loop() {
				if _, err := c.direct.Sign(rand.Reader, c.digest, c.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(c.typ)+"/hsm-parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := f.alice.Sign(ctx, k.ID, c.digest, c.opts); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		b.Run(string(c.typ)+"/direct-parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.direct.Sign(rand.Reader, c.digest, c.opts); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func edKey() crypto.Signer {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}
