package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strongroom-pki/strongroom/hsm"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestDamagedKeysGauge: strongroom_hsm_damaged_keys showed nowhere; an
// operator learnt of a damaged key from a refused call, `ca hsm status` or
// `ca hsm audit verify`. It is -1 before the node's first check, then the
// damaged keys the check found, which it logs once (by id, pointing at ca
// hsm status), not again while they stay the same.
func TestDamagedKeysGauge(t *testing.T) {
	ctx := context.Background()
	db, _ := storagetest.SQLite(t)
	m, err := hsm.New(ctx, hsm.Options{Store: db, KeySyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(ctx) })
	if _, err := m.Initialize(ctx, hsm.InitOptions{Method: hsm.MethodKeyFile, KeyFile: filepath.Join(t.TempDir(), "unseal.key"),
		OfficerName: "co", OfficerPIN: "officer-pin"}); err != nil {
		t.Fatal(err)
	}
	co, err := m.Login(ctx, "co", "officer-pin")
	if err != nil {
		t.Fatal(err)
	}
	if err := co.CreateUser(ctx, "ca", hsm.RoleUser, "ca-user-pin"); err != nil {
		t.Fatal(err)
	}
	sess, err := m.Login(ctx, "ca", "ca-user-pin")
	if err != nil {
		t.Fatal(err)
	}
	k, err := sess.GenerateKey(ctx, hsm.KeySpec{Type: hsm.AES256, Label: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `UPDATE hsm_objects SET sealed = ? WHERE id = ?`, make([]byte, 64), k.ID); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	a := &app{n: &node{hsm: m, log: slog.New(slog.NewTextHandler(&logs, nil))}, reg: prometheus.NewRegistry()}
	a.reg.MustRegister(a.damagedGauge())
	gauge := func() float64 {
		t.Helper()
		families, err := a.reg.Gather()
		if err != nil || len(families) != 1 || families[0].GetName() != "strongroom_hsm_damaged_keys" {
			t.Fatalf("gathered %v %v", families, err)
		}
		return families[0].GetMetric()[0].GetGauge().GetValue()
	}
	if g := gauge(); g != -1 {
		t.Errorf("before the first check: %v, want -1", g)
	}
	ids, ok := a.checkDamaged(ctx, nil)
	if !ok || len(ids) != 1 || ids[0] != k.ID {
		t.Fatalf("check: %v %v", ids, ok)
	}
	if g := gauge(); g != 1 {
		t.Errorf("after the check: %v, want 1", g)
	}
	if n := strings.Count(logs.String(), "damaged keys in the keystore"); n != 1 || !strings.Contains(logs.String(), k.ID) || !strings.Contains(logs.String(), "ca hsm status") {
		t.Errorf("%d warnings naming the key and ca hsm status, want 1: %s", n, logs.String())
	}
	if _, ok := a.checkDamaged(ctx, ids); !ok || strings.Count(logs.String(), "damaged keys in the keystore") != 1 {
		t.Errorf("the same damaged keys were logged again: %s", logs.String())
	}
}
