package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strongroom-pki/strongroom/hsm"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

func TestPickResponderKey(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	key := func(id, owner, label string, version int, created time.Time) hsm.KeyInfo {
		return hsm.KeyInfo{ID: id, Owner: owner, Label: label, Version: version, Created: created}
	}
	const l = "ocsp-responder-int"
	for _, tc := range []struct {
		name string
		keys []hsm.KeyInfo
		want string // "" = none
	}{
		{"none", nil, ""},
		{"other label and owner only", []hsm.KeyInfo{key("a", "ocsp", "x", 1, t0), key("b", "bob", l, 1, t0)}, ""},
		{"one", []hsm.KeyInfo{key("b", "bob", l, 9, t0), key("a", "ocsp", l, 1, t0)}, "a"},
		{"most rotated wins", []hsm.KeyInfo{key("a", "ocsp", l, 1, t0), key("b", "ocsp", l, 4, t0.Add(time.Hour))}, "b"},
		{"then the oldest", []hsm.KeyInfo{key("a", "ocsp", l, 1, t0.Add(time.Second)), key("b", "ocsp", l, 1, t0)}, "b"},
		{"then the lowest id", []hsm.KeyInfo{key("b", "ocsp", l, 1, t0), key("a", "ocsp", l, 1, t0)}, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := pickResponderKey(tc.keys, "ocsp", l)
			if ok != (tc.want != "") || got.ID != tc.want {
				t.Fatalf("picked %q (%t), want %q", got.ID, ok, tc.want)
			}
		})
	}
}

// TestResponderKeyTwoNodes starts the OCSP responder key on two nodes that
// share one HSM keystore at the same moment, round after round (the first
// round generates it, later ones rotate it): every start succeeds, there is
// one key, and each node signs with a version of it.
func TestResponderKeyTwoNodes(t *testing.T) {
	ctx := context.Background()
	db, path := storagetest.SQLite(t)
	keyFile := filepath.Join(t.TempDir(), "unseal.key")
	node := func(db *storage.DB, first bool) *responders {
		m, err := hsm.New(ctx, hsm.Options{Store: db})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(ctx) })
		if first {
			if _, err := m.Initialize(ctx, hsm.InitOptions{Method: hsm.MethodKeyFile, KeyFile: keyFile, OfficerName: "co", OfficerPIN: "officer-pin"}); err != nil {
				t.Fatal(err)
			}
			co, err := m.Login(ctx, "co", "officer-pin")
			if err != nil {
				t.Fatal(err)
			}
			if err := co.CreateUser(ctx, "ca", hsm.RoleUser, "ca-user-pin"); err != nil {
				t.Fatal(err)
			}
		} else if err := m.Unseal(ctx, hsm.UnsealInput{KeyFile: keyFile}); err != nil {
			t.Fatal(err)
		}
		sess, err := m.Login(ctx, "ca", "ca-user-pin")
		if err != nil {
			t.Fatal(err)
		}
		a := &app{sess: sess, reg: prometheus.NewRegistry()}
		a.hsmMetrics = newHSMMetrics(a.reg)
		return &responders{a: a, signers: map[string]crypto.Signer{}}
	}
	dbB, err := storage.Open(ctx, storage.SQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dbB.Close() })
	nodes := []*responders{node(db, true), node(dbB, false)}
	for round := range 4 {
		var wg sync.WaitGroup
		start := make(chan struct{})
		signers := make([]crypto.Signer, len(nodes))
		errs := make([]error, len(nodes))
		for i, r := range nodes {
			wg.Go(func() {
				<-start
				signers[i], errs[i] = r.ResponderKey(ctx, "int")
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: node %d: %v", round, i, err)
			}
		}
		keys, err := nodes[0].a.sess.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 {
			t.Fatalf("round %d: %d keys, want one responder key", round, len(keys))
		}
		for i, sg := range signers {
			d := sha256.Sum256([]byte("tbs"))
			sig, err := sg.Sign(rand.Reader, d[:], crypto.SHA256)
			if err != nil || !ecdsa.VerifyASN1(sg.Public().(*ecdsa.PublicKey), d[:], sig) {
				t.Fatalf("round %d: node %d signs: %v", round, i, err)
			}
		}
	}
}
