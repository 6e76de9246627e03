package api

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// problemDetail decodes a problem document, failing unless it is one with
// status.
func problemDetail(t *testing.T, resp *http.Response, body []byte, status int) string {
	t.Helper()
	var p Problem
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(body, &p) != nil || p.Status != status {
		t.Fatalf("%d %s %s, want a %d problem", resp.StatusCode, resp.Header.Get("Content-Type"), body, status)
	}
	return p.Detail
}

// TestPEMCSRWhole: a PEM CSR is one complete block and nothing more, as a
// DER CSR is refused with trailing data: a truncated block says it is
// incomplete (not that it is another type), and data or a second block
// after the CSR is refused instead of silently dropped.
func TestPEMCSRWhole(t *testing.T) {
	e := newEnv(t, nil, nil)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p := pemCSR(newCSR(t, k, "", "a.corp.internal"))
	for _, tc := range []struct{ name, body, want string }{
		{"truncated", p[:len(p)/2], "no complete PEM block (a truncated or damaged PEM CSR?)"},
		{"no END line", strings.TrimSuffix(strings.TrimSpace(p), "-----END CERTIFICATE REQUEST-----"), "no complete PEM block"},
		{"garbage after", p + "garbage\n", "trailing data after the PEM CSR"},
		{"second block", p + p, "another PEM block follows the CSR"},
		{"another type", strings.ReplaceAll(p, "CERTIFICATE REQUEST", "PRIVATE KEY"), `the PEM block is a "PRIVATE KEY", not a CERTIFICATE REQUEST`},
	} {
		for _, ct := range []string{"application/pkcs10", "application/json"} {
			body := []byte(tc.body)
			if ct == "application/json" {
				body = jsonBody(t, map[string]any{"csr": tc.body})
			}
			resp, b := e.do(t, "POST", "/certificates/dry-run", "issuer", ct, body)
			if d := problemDetail(t, resp, b, 400); !strings.Contains(d, tc.want) {
				t.Errorf("%s (%s): %q, want %q", tc.name, ct, d, tc.want)
			}
		}
	}
	resp, b := e.do(t, "POST", "/certificates/dry-run", "issuer", "application/pkcs10", []byte("\n"+p+"\r\n\n"))
	if resp.StatusCode != 200 {
		t.Fatalf("PEM CSR with white space around it: %d %s", resp.StatusCode, b)
	}
}

// TestGarbageDERNoASN1Dump: a body that starts like DER but is not a CSR
// gets a plain detail, not encoding/asn1's struct dump.
func TestGarbageDERNoASN1Dump(t *testing.T) {
	e := newEnv(t, nil, nil)
	body := append([]byte{0x30, 0x82, 0xff, 0xfc}, bytes.Repeat([]byte{0x41}, 64<<10-4)...)
	resp, b := e.do(t, "POST", "/certificates", "issuer", "application/pkcs10", body)
	d := problemDetail(t, resp, b, 400)
	if !strings.Contains(d, "not a DER-encoded PKCS #10 request") || strings.Contains(d, "asn1") || strings.Contains(d, "class:") {
		t.Fatalf("detail %q", d)
	}
}

// TestLifetimeForms: the JSON field and the ?lifetime= query parameter
// take the same forms and refuse the same way; zero in any form is the
// profile's default; a number of days out of range says so.
func TestLifetimeForms(t *testing.T) {
	e := newEnv(t, nil, nil)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der := newCSR(t, k, "", "a.corp.internal")
	dryRun := func(lifetime any, inQuery bool) (*http.Response, []byte) {
		if inQuery {
			s, _ := json.Marshal(lifetime)
			q := strings.Trim(string(s), `"`)
			return e.do(t, "POST", "/certificates/dry-run?lifetime="+q, "issuer", "application/pkcs10", der)
		}
		return e.do(t, "POST", "/certificates/dry-run", "issuer", "application/json", jsonBody(t, map[string]any{"csr": pemCSR(der), "lifetime": lifetime}))
	}
	_, b := dryRun(nil, false)
	var def DryRunResponse
	json.Unmarshal(b, &def)
	if def.NotAfter == nil {
		t.Fatalf("dry run without a lifetime: %s", b)
	}
	defaultLife := def.NotAfter.Sub(*def.NotBefore)
	for _, tc := range []struct {
		lifetime any
		want     time.Duration
	}{
		{3600, time.Hour}, {"3600", time.Hour}, {"1.5e3", 1500 * time.Second}, {"2d", 48 * time.Hour}, {"90m", 90 * time.Minute},
		{0, defaultLife}, {"0", defaultLife}, {"0s", defaultLife}, {"0d", defaultLife}, {"-0d", defaultLife}, {"-0s", defaultLife}, {"-0.0", defaultLife},
	} {
		for _, q := range []bool{false, true} {
			resp, b := dryRun(tc.lifetime, q)
			var dr DryRunResponse
			json.Unmarshal(b, &dr)
			if resp.StatusCode != 200 || dr.NotAfter == nil {
				t.Errorf("lifetime %v (query: %v): %d %s", tc.lifetime, q, resp.StatusCode, b)
				continue
			}
			if got := dr.NotAfter.Sub(*dr.NotBefore); got != tc.want && !(tc.want == defaultLife && got == defaultLife) {
				t.Errorf("lifetime %v (query: %v): %s, want %s", tc.lifetime, q, got, tc.want)
			}
		}
	}
	for _, tc := range []struct {
		lifetime any
		want     string
	}{
		{-5, "is negative"}, {"-5", "is negative"}, {"-5d", "is negative"}, {"-1h", "is negative"},
		{"100000d", "out of range"}, {"99999999999999999999d", "out of range"}, {1e12, "out of range"}, {"soon", "not a duration"},
	} {
		for _, q := range []bool{false, true} {
			resp, b := dryRun(tc.lifetime, q)
			if d := problemDetail(t, resp, b, 400); !strings.Contains(d, tc.want) {
				t.Errorf("lifetime %v (query: %v): %q, want %q", tc.lifetime, q, d, tc.want)
			}
		}
	}
	// Text around a number is not a number; a positive lifetime too short
	// to count is not the default but under the minimum.
	resp, b := dryRun("5 ", false)
	if d := problemDetail(t, resp, b, 400); !strings.Contains(d, `lifetime "5 " is not a number of seconds`) {
		t.Errorf(`lifetime "5 ": %q`, d)
	}
	resp, b = e.do(t, "POST", "/certificates", "issuer", "application/json", jsonBody(t, map[string]any{"csr": pemCSR(der), "lifetime": 1e-10}))
	if d := problemDetail(t, resp, b, 422); !strings.Contains(d, "lifetime 1ns is under the minimum") {
		t.Errorf("lifetime 1e-10: %q", d)
	}
}

// TestInvalidityDateForm: an invalidity_date that is not RFC 3339 is
// refused saying what it must be, not with Go's layout string.
func TestInvalidityDateForm(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, v := range []string{`"2026-11-01"`, `"yesterday"`, `1761955200`} {
		resp, b := e.do(t, "POST", "/certificates/abcdef/revoke", "revoker", "application/json", []byte(`{"invalidity_date":`+v+`}`))
		d := problemDetail(t, resp, b, 400)
		if !strings.Contains(d, "invalidity_date must be an RFC 3339 time such as 2026-11-01T00:00:00Z") || strings.Contains(d, "2006-01-02") {
			t.Errorf("invalidity_date %s: %q", v, d)
		}
	}
}
