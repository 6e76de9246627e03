package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strongroom-pki/strongroom/api"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
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
	counts := hsmCounts(t, reg)
	if counts["intermediate/sign/ok"] != 3 || counts["intermediate/sign/error"] != 0 {
		t.Fatalf("counts %v; want 3 ok signatures for intermediate", counts)
	}
}

// TestExpiryMetrics: certificates recorded in SQLite that end in 1 hour, 3
// days and 20 days are counted in the 24h/7d/30d windows (a revoked one
// and one ending in 60 days are not); the issuers' ends are exported; the
// first scrape has the counts, from one query for the three windows, and a
// second scrape within the minute does not query again.
func TestExpiryMetrics(t *testing.T) {
	ctx := context.Background()
	db, _ := storagetest.SQLite(t)
	now := time.Now()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	record := func(serial int64, ends time.Duration) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "x"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(ends)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		if err := recordCeremonyCert(ctx, db, "intermediate", c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	record(1, time.Hour)
	record(2, 3*24*time.Hour)
	record(3, 20*24*time.Hour)
	record(4, 60*24*time.Hour)
	revoked := record(5, 2*time.Hour)
	if err := db.RevokeCertificate(ctx, core.SerialFromBig(revoked.SerialNumber), core.ReasonSuperseded, now, time.Time{}); err != nil {
		t.Fatal(err)
	}
	queries := 0
	count := func(ctx context.Context, now time.Time, windows []time.Duration) ([]int64, error) {
		queries++
		return db.CountExpiring(ctx, now, windows)
	}
	root := now.Add(10 * 365 * 24 * time.Hour).Truncate(time.Second)
	reg := prometheus.NewRegistry()
	reg.MustRegister(newExpiryMetrics(func() map[string]time.Time { return map[string]time.Time{"root": root} }, count,
		slog.New(slog.DiscardHandler)))
	for range 2 {
		got := gauges(t, reg)
		want := map[string]float64{"strongroom_certificates_expiring/24h": 1, "strongroom_certificates_expiring/7d": 2,
			"strongroom_certificates_expiring/30d": 3, "strongroom_issuer_not_after_timestamp_seconds/root": float64(root.Unix())}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("metrics %v, want %v", got, want)
		}
	}
	if queries != 1 {
		t.Fatalf("%d queries for two scrapes, want 1", queries)
	}
}

// gauges is every gauge series of reg by "name/its first label's value".
func gauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()+"/"+m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return got
}

// expiringGauges is each strongroom_certificates_expiring series by window.
func expiringGauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	for k, v := range gauges(t, reg) {
		if w, ok := strings.CutPrefix(k, "strongroom_certificates_expiring/"); ok {
			got[w] = v
		}
	}
	return got
}

// TestExpiryMetricsCountInBackground: once the counts are a minute old, a
// scrape reports them as they are and starts the next count without
// waiting for it: the count is held until the scrapes have returned, so a
// scrape that waited for it would wait until its deadline (a minute here;
// the wait for a first count is made an hour), which the count reports.
// Scrapes meanwhile start no second count; the next scrape after it ends
// has the new counts. A count that fails leaves nothing to report on the
// first scrape, and the next scrape counts again without waiting a minute.
func TestExpiryMetricsCountInBackground(t *testing.T) {
	clock := time.Unix(1_800_000_000, 0)
	type call struct {
		now     time.Time
		windows []time.Duration
	}
	calls := make(chan call, 10)
	var answer func(ctx context.Context) ([]int64, error)
	count := func(ctx context.Context, now time.Time, windows []time.Duration) ([]int64, error) {
		calls <- call{now, windows}
		return answer(ctx)
	}
	m := newExpiryMetrics(func() map[string]time.Time { return nil }, count, slog.New(slog.DiscardHandler))
	m.now = func() time.Time { return clock }
	m.firstWait, m.timeout = time.Hour, time.Minute
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)

	answer = func(context.Context) ([]int64, error) { return nil, errors.New("database down") }
	if got := expiringGauges(t, reg); len(got) != 0 {
		t.Fatalf("after a failed count: %v, want no series", got)
	}
	answer = func(context.Context) ([]int64, error) { return []int64{1, 2, 3}, nil }
	if got := expiringGauges(t, reg); fmt.Sprint(got) != "map[24h:1 30d:3 7d:2]" {
		t.Fatalf("the scrape after a failed count: %v, want it counted again", got)
	}
	for i, want := range []call{{clock, nil}, {clock, nil}} {
		c := <-calls
		if !c.now.Equal(want.now) || fmt.Sprint(c.windows) != "[24h0m0s 168h0m0s 720h0m0s]" {
			t.Fatalf("count %d: now %v, windows %v", i, c.now, c.windows)
		}
	}

	clock = clock.Add(time.Minute)
	release := make(chan struct{})
	answer = func(ctx context.Context) ([]int64, error) {
		select {
		case <-release:
			return []int64{4, 5, 6}, nil
		case <-ctx.Done():
			t.Error("the count was waited for until its deadline")
			return nil, ctx.Err()
		}
	}
	for range 2 {
		if got := expiringGauges(t, reg); fmt.Sprint(got) != "map[24h:1 30d:3 7d:2]" {
			t.Fatalf("while counting: %v, want the last counts", got)
		}
	}
	if c := <-calls; !c.now.Equal(clock) {
		t.Fatalf("the second count is at %v, want %v", c.now, clock)
	}
	m.mu.Lock()
	counting := m.counting
	m.mu.Unlock()
	if counting == nil {
		t.Fatal("no count in progress after the scrapes")
	}
	close(release)
	<-counting
	if got := expiringGauges(t, reg); fmt.Sprint(got) != "map[24h:4 30d:6 7d:5]" {
		t.Fatalf("after the count: %v, want the new counts", got)
	}
	if len(calls) != 0 {
		t.Fatalf("%d more counts, want none (one at a time, then a minute)", len(calls))
	}
}

// encryptOnly is the key service as far as this test needs it.
type encryptOnly struct{ api.KeyService }

func (encryptOnly) Encrypt(_ context.Context, id string, pt, _ []byte) ([]byte, error) {
	if id == "missing" {
		return nil, errors.New("no such key")
	}
	return pt, nil
}

func TestKeyServiceTimed(t *testing.T) {
	reg := prometheus.NewRegistry()
	ks := newHSMMetrics(reg).keys(encryptOnly{})
	ctx := context.Background()
	if out, err := ks.Encrypt(ctx, "k1", []byte("x"), nil); err != nil || string(out) != "x" {
		t.Fatalf("wrapped Encrypt: %q, %v", out, err)
	}
	if _, err := ks.Encrypt(ctx, "missing", nil, nil); err == nil {
		t.Fatal("the wrapper lost the error")
	}
	counts := hsmCounts(t, reg)
	if counts["keyservice/encrypt/ok"] != 1 || counts["keyservice/encrypt/error"] != 1 || len(counts) != 2 {
		t.Fatalf("counts %v; want one ok and one failed keyservice encrypt", counts)
	}
}

// hsmCounts is each strongroom_hsm_operation_duration_seconds series'
// sample count, by "key/op/outcome".
func hsmCounts(t *testing.T, reg *prometheus.Registry) map[string]uint64 {
	t.Helper()
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
			counts[labels["key"]+"/"+labels["op"]+"/"+labels["outcome"]] = metric.GetHistogram().GetSampleCount()
		}
	}
	return counts
}

// A count in progress when the node closes ends then, not at its timeout
// (a hung database would hold the shutdown), and reports nothing.
func TestExpiryCountEndsAtClose(t *testing.T) {
	ended := make(chan error, 1)
	count := func(ctx context.Context, _ time.Time, _ []time.Duration) ([]int64, error) {
		<-ctx.Done()
		ended <- ctx.Err()
		return nil, ctx.Err()
	}
	var logs strings.Builder
	m := newExpiryMetrics(func() map[string]time.Time { return nil }, count, slog.New(slog.NewTextHandler(&logs, nil)))
	m.firstWait, m.timeout = time.Millisecond, time.Hour
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	expiringGauges(t, reg) // starts the count, waits a millisecond for it
	m.stop()
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the count ended with %v, want it cancelled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the count went on after close")
	}
	m.mu.Lock()
	done := m.counting
	m.mu.Unlock()
	if done != nil {
		<-done
	}
	if strings.Contains(logs.String(), "counting expiring") {
		t.Fatalf("a count cancelled at close logged: %s", logs.String())
	}
}
