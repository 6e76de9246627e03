package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestTimedSignerCountsByKey(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newHSMMetrics(reg)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s := m.signer("intermediate", key)
	digest := sha256.Sum256([]byte("tbs"))
	for range 3 {
		sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil || !ecdsa.VerifyASN1(&key.PublicKey, digest[:], sig) {
			t.Fatalf("wrapped signer: %v", err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, mf := range families {
		for _, metric := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range metric.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			counts[labels["key"]+"/"+labels["outcome"]] = metric.GetHistogram().GetSampleCount()
		}
	}
	if counts["intermediate/ok"] != 3 || counts["intermediate/error"] != 0 {
		t.Fatalf("counts %v; want 3 ok signatures for intermediate", counts)
	}
}
