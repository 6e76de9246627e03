package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"log/slog"
	"path/filepath"
	"strings"
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
	const l, l2, l3 = "ocsp-responder-int", "ocsp-responder-int.2", "ocsp-responder-int.3"
	for _, tc := range []struct {
		name string
		keys []hsm.KeyInfo
		want string // "" = none
	}{
		{"none", nil, ""},
		{"other label and owner only", []hsm.KeyInfo{key("a", "ocsp", "x", 1, t0), key("b", "bob", l, 1, t0)}, ""},
		{"another issuer's", []hsm.KeyInfo{key("a", "ocsp", "ocsp-responder-int-2", 1, t0), key("b", "ocsp", "ocsp-responder-in", 1, t0)}, ""},
		{"no generation", []hsm.KeyInfo{key("a", "ocsp", l+".1", 1, t0), key("b", "ocsp", l+".02", 1, t0), key("c", "ocsp", l+".x", 1, t0)}, ""},
		{"one", []hsm.KeyInfo{key("b", "bob", l, 9, t0), key("a", "ocsp", l, 1, t0)}, "a"},
		{"most rotated wins", []hsm.KeyInfo{key("a", "ocsp", l, 1, t0), key("b", "ocsp", l, 4, t0.Add(time.Hour))}, "b"},
		{"then the oldest", []hsm.KeyInfo{key("a", "ocsp", l, 1, t0.Add(time.Second)), key("b", "ocsp", l, 1, t0)}, "b"},
		{"then the lowest id", []hsm.KeyInfo{key("b", "ocsp", l, 1, t0), key("a", "ocsp", l, 1, t0)}, "a"},
		{"the newest generation first", []hsm.KeyInfo{key("a", "ocsp", l, 9, t0), key("b", "ocsp", l3, 1, t0.Add(time.Hour)), key("c", "ocsp", l2, 4, t0)}, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := pickResponderKey(tc.keys, "ocsp", "int")
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
		r, _ := responderNode(t, db, keyFile, first, slog.New(slog.DiscardHandler))
		return r
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

// responderNode is one node's responders over the keystore in db, logging
// to log: first initialises the HSM (unseal key in keyFile) and its CA
// user; the others unseal it.
func responderNode(t *testing.T, db *storage.DB, keyFile string, first bool, log *slog.Logger) (*responders, *hsm.Module) {
	t.Helper()
	ctx := context.Background()
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
	return newResponders(a, log), m
}

// TestDamagedResponderKeyReplaced: a damaged responder key left OCSP
// answering tryLater until an operator acted. Two nodes that start on the
// keystore at once make one fresh key (the next generation's label) and
// both use it, one of them warning once; a node started later picks that
// key; the damaged key stays for the operator; and a node whose fresh key
// is damaged too makes no other within replaceEvery. On SQLite and on
// PostgreSQL, each node with its own connections.
func TestDamagedResponderKeyReplaced(t *testing.T) {
	open := func(t *testing.T, driver storage.Dialect, dsn string) *storage.DB {
		db, err := storage.Open(context.Background(), driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	t.Run("sqlite", func(t *testing.T) {
		db, path := storagetest.SQLite(t)
		damagedResponderKeyReplaced(t, db, open(t, storage.SQLite, path))
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := storagetest.PostgresSchema(t)
		damagedResponderKeyReplaced(t, open(t, storage.Postgres, dsn), open(t, storage.Postgres, dsn))
	})
}

func damagedResponderKeyReplaced(t *testing.T, db, dbB *storage.DB) {
	ctx := context.Background()
	keyFile := filepath.Join(t.TempDir(), "unseal.key")
	first, _ := responderNode(t, db, keyFile, true, slog.New(slog.DiscardHandler))
	if _, err := first.ResponderKey(ctx, "int"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `UPDATE hsm_objects SET sealed = ? WHERE label = 'ocsp-responder-int'`, make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	var logs [2]syncBuffer
	var nodes [2]*responders
	var modules [2]*hsm.Module
	for i, db := range []*storage.DB{db, dbB} {
		nodes[i], modules[i] = responderNode(t, db, keyFile, false, slog.New(slog.NewTextHandler(&logs[i], nil)))
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	var errs [2]error
	for i, r := range nodes {
		wg.Go(func() {
			<-start
			_, errs[i] = r.ResponderKey(ctx, "int")
		})
	}
	close(start)
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("starting on a damaged responder key: %v, %v", errs[0], errs[1])
	}
	sess := nodes[0].a.sess
	keys, err := sess.ListKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].Label != "ocsp-responder-int.2" {
		t.Fatalf("intact keys: %+v %v, want one, ocsp-responder-int.2", keys, err)
	}
	if d, err := sess.DamagedKeys(ctx); err != nil || len(d) != 1 || d[0].Label != "ocsp-responder-int" {
		t.Fatalf("damaged keys: %+v %v, want the first responder key left in place", d, err)
	}
	warned := -1
	for i := range logs {
		switch n := strings.Count(logs[i].String(), "level=WARN"); {
		case n == 1 && warned < 0:
			warned = i
		case n != 0:
			t.Fatalf("warnings: %q, %q; want one, from the node that made the key", logs[0].String(), logs[1].String())
		}
	}
	if w := logs[max(warned, 0)].String(); warned < 0 || !strings.Contains(w, "issuer=int") || !strings.Contains(w, "ca hsm status") {
		t.Fatalf("no warning naming the issuer and ca hsm status: %q, %q", logs[0].String(), logs[1].String())
	}
	later, _ := responderNode(t, db, keyFile, false, slog.New(slog.DiscardHandler))
	if k, err := findResponderKey(ctx, later.a.sess, "int"); err != nil || k.ID != keys[0].ID {
		t.Fatalf("a node started later uses %+v, %v; want %s", k, err, keys[0].ID)
	}

	// The fresh key damaged too (its attributes, so the running node drops
	// it): the node that made it makes no other for a while.
	rows, err := db.HSMObject(ctx, keys[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	attrs := bytes.Replace(rows[0].Attrs, []byte(`"shared_with":null`), []byte(`"shared_with":["x"]`), 1)
	if _, err := db.Exec(ctx, `UPDATE hsm_objects SET attrs = ? WHERE id = ?`, attrs, keys[0].ID); err != nil || bytes.Equal(attrs, rows[0].Attrs) {
		t.Fatalf("altering the fresh key's attributes: %v", err)
	}
	for _, m := range modules {
		if _, err := m.SyncKeys(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nodes[warned].ResponderKey(ctx, "int"); err == nil || !strings.Contains(err.Error(), "ca hsm status") {
		t.Fatalf("a second damaged key within %s: %v", replaceEvery, err)
	}
	if keys, err := sess.ListKeys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("intact keys after the second damage: %+v %v, want none made", keys, err)
	}
}

// TestPlantedResponderLabelSkipped: a row written into the keystore
// outside the HSM with the next generation's label (a review copied
// another key's row so) makes no node's key: the label is passed over,
// instead of OCSP answering tryLater for good.
func TestPlantedResponderLabelSkipped(t *testing.T) {
	ctx := context.Background()
	db, _ := storagetest.SQLite(t)
	keyFile := filepath.Join(t.TempDir(), "unseal.key")
	first, m := responderNode(t, db, keyFile, true, slog.New(slog.DiscardHandler))
	if _, err := first.ResponderKey(ctx, "int"); err != nil {
		t.Fatal(err)
	}
	// A version of another user's key, its row relabelled as the CA
	// user's next generation: the key's authenticated creation entry says
	// whose it is, so the CA user's session lists it neither intact nor
	// damaged, yet the row holds the label.
	co, err := m.Login(ctx, "co", "officer-pin")
	if err != nil {
		t.Fatal(err)
	}
	if err := co.CreateUser(ctx, "app", hsm.RoleUser, "app-user-pin"); err != nil {
		t.Fatal(err)
	}
	app, err := m.Login(ctx, "app", "app-user-pin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.GenerateKey(ctx, hsm.KeySpec{Type: hsm.P256, Label: "app-key", Usage: hsm.UsageSign}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO hsm_objects (id, version, owner, label, attrs, sealed, created, uses)
			SELECT id, 99, 'ca', 'ocsp-responder-int.2', attrs, sealed, created, 0 FROM hsm_objects WHERE label = 'app-key'`,
		`UPDATE hsm_objects SET sealed = X'00' WHERE label = 'ocsp-responder-int'`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	node, _ := responderNode(t, db, keyFile, false, slog.New(slog.DiscardHandler))
	if _, err := node.ResponderKey(ctx, "int"); err != nil {
		t.Fatalf("with the next generation's label planted: %v", err)
	}
	if k, err := findResponderKey(ctx, node.a.sess, "int"); err != nil || k.Label != "ocsp-responder-int.3" {
		t.Fatalf("the key in use: %+v, %v; want ocsp-responder-int.3", k, err)
	}
}
