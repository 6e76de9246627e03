package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestWarnIntents: a start after a crash that left an intent says so
// once, with the count; the next start says nothing; an intent younger
// than the grace (an issuance in flight elsewhere) waits for a later start;
// a stored certificate is never counted.
func TestWarnIntents(t *testing.T) {
	ctx := context.Background()
	db, _ := storagetest.SQLite(t)
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Microsecond)
	intent := func(at time.Time, store bool) {
		s, err := core.NewSerial()
		if err != nil {
			t.Fatal(err)
		}
		c := &core.Certificate{Serial: s, IssuerID: "i", Profile: "p", Requester: "r", CreatedAt: at,
			Names: []string{"a.example"}, TBS: []byte("tbs"), NotAfter: at.Add(time.Hour)}
		if err := db.ReserveSerial(ctx, c); err != nil {
			t.Fatal(err)
		}
		if err := db.RecordIntent(ctx, c, at); err != nil {
			t.Fatal(err)
		}
		if store {
			if err := db.StoreIssued(ctx, s, []byte("der"), at); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := func(now time.Time) string {
		var buf bytes.Buffer
		warnIntents(ctx, db, slog.New(slog.NewTextHandler(&buf, nil)), now)
		return buf.String()
	}
	intent(t0, false)
	intent(t0.Add(time.Second), true)
	intent(t0.Add(2*time.Second), false)
	if got := start(t0.Add(10 * time.Minute)); !strings.Contains(got, "never stored") || !strings.Contains(got, "count=2") {
		t.Fatalf("first start after the crash logged %q; want a warning counting 2", got)
	}
	if got := start(t0.Add(11 * time.Minute)); got != "" {
		t.Fatalf("second start logged %q; want nothing", got)
	}
	intent(t0.Add(12*time.Minute), false)
	if got := start(t0.Add(12*time.Minute + 30*time.Second)); got != "" {
		t.Fatalf("an intent 30 s old was reported: %q", got)
	}
	if got := start(t0.Add(14 * time.Minute)); !strings.Contains(got, "count=1") {
		t.Fatalf("a later start logged %q; want the intent left at +12 min", got)
	}
}
