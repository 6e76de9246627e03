package storage_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestPostgresHangBounded: a PostgreSQL that stops answering without
// closing its connections (SIGSTOP, a dropped network path) fails the
// issuance pipeline's writes and other transactions after the DB's timeout
// with KindUnavailable (503), instead of holding them until it answers
// again; once it answers, writes succeed without a restart.
func TestPostgresHangBounded(t *testing.T) {
	proxy, dsn := storagetest.NewPostgresProxy(t)
	ctx := context.Background()
	db, err := storage.Open(ctx, storage.Postgres, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const limit = 500 * time.Millisecond
	db.SetTimeout(limit)
	w := storage.NewCertWriter(db)
	defer w.Close()
	now := time.Now().UTC()
	cert := func() *core.Certificate {
		return &core.Certificate{Serial: newSerialNoT(), IssuerID: "i", Profile: "p", Requester: "r", CreatedAt: now}
	}
	if err := w.ReserveSerial(ctx, cert()); err != nil {
		t.Fatal(err)
	}
	reserved := cert()
	if err := w.ReserveSerial(ctx, reserved); err != nil {
		t.Fatal(err)
	}

	proxy.Set(storagetest.ProxyHang)
	// Several callers at once: they share a batch or queue behind it, and
	// each gets the outcome.
	const callers = 4
	errs := make(chan error, callers+1)
	for i := 0; i < callers; i++ {
		go func() { errs <- w.ReserveSerial(ctx, cert()) }()
	}
	go func() { errs <- db.RevokeCertificate(ctx, reserved.Serial, core.ReasonUnspecified, now, time.Time{}) }()
	for i := 0; i < callers+1; i++ {
		select {
		case err := <-errs:
			if core.KindOf(err) != core.KindUnavailable || !strings.Contains(err.Error(), "did not answer within 500ms") {
				t.Fatalf("write while PostgreSQL hangs: %v; want unavailable, naming the timeout", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("a write still waits 30 s into the hang (timeout %s)", limit)
		}
	}

	proxy.Set(storagetest.ProxyPass)
	// The hung connections were closed; new ones serve the next writes.
	done := make(chan error, 1)
	go func() {
		c := cert()
		if err := w.ReserveSerial(ctx, c); err != nil {
			done <- err
			return
		}
		c.Names, c.TBS, c.NotAfter = []string{"a.example"}, []byte("tbs"), now.Add(time.Hour)
		if err := w.RecordIntent(ctx, c, now); err != nil {
			done <- err
			return
		}
		done <- w.StoreIssued(ctx, c.Serial, []byte("der"), now)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("issuing after the hang: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no write completed within 30 s after PostgreSQL answered again")
	}
}
