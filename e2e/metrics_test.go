package e2e

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"
)

// TestMetricsScrape: a real `ca serve` serves /metrics to a credential
// with the metrics scope only (as Prometheus scrapes it, with a bearer
// key), and what it serves counts the issuance just made and times the
// HSM signature that made it.
func TestMetricsScrape(t *testing.T) {
	c := StartCA(t, Options{})
	key := func(scopes string) string { return c.NewAPIKey(t, "--name", "prom-"+scopes, "--scopes", scopes) }
	scrape := func(k string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", c.HTTPSURL+"/metrics", nil)
		if k != "" {
			req.Header.Set("Authorization", "Bearer "+k)
		}
		resp, err := c.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, b := scrape(""); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" ||
		!strings.Contains(resp.Header.Get("Content-Type"), "problem+json") || strings.Contains(b, "strongroom_") {
		t.Fatalf("without a credential: %s %q %s", resp.Status, resp.Header.Get("WWW-Authenticate"), b)
	}
	if resp, b := scrape(key("issue,read")); resp.StatusCode != http.StatusForbidden || strings.Contains(b, "strongroom_") {
		t.Fatalf("an issue,read key: %s %s", resp.Status, b)
	}
	// The figures cover every team: an admin limited to one team's names
	// does not read them.
	limitedAdmin := c.NewAPIKey(t, "--name", "team-admin", "--scopes", "admin", "--names", "team-a.localhost")
	if resp, b := scrape(limitedAdmin); resp.StatusCode != http.StatusForbidden || strings.Contains(b, "strongroom_") {
		t.Fatalf("a name-limited admin key: %s %s", resp.Status, b)
	}
	if resp, _ := scrape(c.AdminKey()); resp.StatusCode != http.StatusOK {
		t.Fatalf("the admin key: %s", resp.Status)
	}
	prom := key("metrics")
	// A metrics key reads metrics and nothing else.
	if resp, b := apiCall(t, c, "GET", "/certificates", prom, "", "", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a metrics key listed certificates: %s %s", resp.Status, b)
	}
	// The responder certificates are made at start, before any OCSP
	// question (a review's CA whose disk filled before the first one
	// answered every question tryLater).
	responderMetric := regexp.MustCompile(`(?m)^strongroom_ocsp_responder_not_after_timestamp_seconds\{issuer="intermediate"\} [1-9]`)
	c.waitFor(t, "the responder certificate made at start", func() bool {
		_, b := scrape(prom)
		return responderMetric.MatchString(b)
	})
	chain := issueChain(t, c, goCSR(t, "scraped.localhost"))
	reqDER, err := ocsp.CreateRequest(chain[0], chain[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	ocspGet(t, c, reqDER, false, chain[0], chain[1])
	resp, b := scrape(prom)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("a metrics key: %s %s", resp.Status, b)
	}
	for _, re := range []string{
		`(?m)^strongroom_issuance_total\{[^}]*outcome="issued"[^}]*profile="tls-server"[^}]*\} [1-9]`,
		`(?m)^strongroom_hsm_operation_duration_seconds_count\{[^}]*\} [1-9]`,
		`(?m)^strongroom_issuer_not_after_timestamp_seconds\{`,
		`(?m)^strongroom_crl_next_update_timestamp_seconds\{issuer="intermediate",kind="full"\} [1-9]`,
		`(?m)^strongroom_crl_next_update_timestamp_seconds\{issuer="intermediate",kind="delta"\} [1-9]`,
		`(?m)^strongroom_crl_this_update_timestamp_seconds\{issuer="root",kind="full"\} [1-9]`,
		`(?m)^strongroom_crl_number\{issuer="intermediate",kind="full"\} [1-9]`,
		`(?m)^strongroom_ocsp_responder_not_after_timestamp_seconds\{issuer="intermediate"\} [1-9]`,
		`(?m)^strongroom_ocsp_unanswered_total\{kind="key"\} 0$`,
	} {
		if !regexp.MustCompile(re).MatchString(b) {
			t.Errorf("/metrics has no line matching %s", re)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", b)
	}
}
