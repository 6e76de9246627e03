//go:build soak

package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestSoak runs `ca serve` under a steady mix of REST issuance, revocation
// and OCSP for SOAK_DURATION (default 10m; `make soak`; SOAK_STORE=postgres
// for PostgreSQL and Redis), then checks that
// every revoked certificate is revoked in OCSP and in the CRL, that nothing
// returned a 5xx, that the serve process's memory stayed bounded, and that
// the HSM audit chain is intact.
func TestSoak(t *testing.T) {
	dur := 10 * time.Minute
	if s := os.Getenv("SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("SOAK_DURATION: %v", err)
		}
		dur = d
	}
	// Small OCSP caches, so that what they hold when full (by default up to
	// 250,000 answers, a few hundred MiB) stays far below the memory bound
	// checked below: growth past it is then a leak, not a cache filling.
	o := Options{Configure: func(t testing.TB, dir string) {
		appendConfig(t, dir, "ocsp:\n  cache_entries: 20000\n  lane_entries: 10000\n")
	}}
	// SOAK_STORE=postgres runs the node as one of several would: its
	// certificates in PostgreSQL, caches and events in Redis.
	if os.Getenv("SOAK_STORE") == "postgres" {
		o.Env = []string{"STRONGROOM_DATABASE_DSN=" + storagetest.PostgresSchema(t)}
		o.InitArgs = []string{"--database", "postgres", "--redis", storagetest.RedisAddr()}
	}
	c := StartCA(t, o)
	pid := c.cmd.Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()

	var issued, revokedN, ocspN, serverErrors atomic.Int64
	var mu sync.Mutex
	var revoked []string
	var wg sync.WaitGroup
	worker := func(i int) {
		defer wg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			chain := issueChain(t, c, goCSR(t, fmt.Sprintf("soak-%d-%d.example.com", i, n)))
			issued.Add(1)
			req, err := ocsp.CreateRequest(chain[0], chain[1], nil)
			if err != nil {
				t.Error(err)
				return
			}
			if r := ocspGet(t, c, req, false, chain[0], chain[1]); r.Status != ocsp.Good {
				t.Errorf("fresh certificate: OCSP status %d", r.Status)
			}
			ocspN.Add(1)
			if n%4 == 0 {
				serial := chain[0].SerialNumber.Text(16)
				resp, _ := apiCall(t, c, "POST", "/certificates/"+serial+"/revoke", c.AdminKey(), "application/json", "",
					strings.NewReader(`{"reason":"superseded"}`))
				if resp.StatusCode >= 500 {
					serverErrors.Add(1)
				}
				if r := ocspGet(t, c, req, false, chain[0], chain[1]); r.Status != ocsp.Revoked {
					t.Errorf("revoked %s: OCSP status %d", serial, r.Status)
				}
				revokedN.Add(1)
				mu.Lock()
				revoked = append(revoked, serial)
				mu.Unlock()
			}
		}
	}
	var peakRSS int64
	sample := func() {
		if rss := rssKiB(pid); rss > peakRSS {
			peakRSS = rss
		}
	}
	for i := range 8 {
		wg.Add(1)
		go worker(i)
	}
	firstRSS := int64(0)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			sample()
			if firstRSS == 0 {
				firstRSS = peakRSS
			}
		}
	}
	wg.Wait()
	sample()
	t.Logf("soak %s: %d issued, %d revoked, %d OCSP checks; serve RSS first %d KiB, peak %d KiB",
		dur, issued.Load(), revokedN.Load(), ocspN.Load(), firstRSS, peakRSS)
	if serverErrors.Load() > 0 {
		t.Errorf("%d server errors", serverErrors.Load())
	}
	if firstRSS > 0 && peakRSS > 4*firstRSS+256*1024 {
		t.Errorf("serve memory grew from %d KiB to %d KiB", firstRSS, peakRSS)
	}
	// Every revocation reaches the CRL after the rebuild delay.
	time.Sleep(5 * time.Second)
	inter := parsePEMCerts(t, readFile(t, c.Intermediate))[0]
	crl := fetchCRL(t, c, "intermediate.crl", inter)
	listed := map[string]bool{}
	for _, e := range crl.RevokedCertificateEntries {
		listed[e.SerialNumber.Text(16)] = true
	}
	for _, s := range revoked {
		if !listed[s] {
			t.Errorf("revoked %s is not in the CRL", s)
		}
	}
	actx, acancel := context.WithTimeout(context.Background(), time.Minute)
	defer acancel()
	if out, err := c.CLI(actx, "hsm", "audit", "verify"); err != nil {
		t.Errorf("audit verify after the soak: %v\n%s", err, out)
	}
}

// rssKiB reads a process's resident set size from /proc.
func rssKiB(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}
