package main

import (
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/config"
)

// TestIssuanceSettings: a mistake in the issuance section names its key,
// as the config package's errors do (a review saw an unknown lint reported
// as `building the issuance pipeline: ca: "e_no_such_lint" is not a zlint
// lint`, naming no key).
func TestIssuanceSettings(t *testing.T) {
	parse := func(t *testing.T, issuanceYAML string) (issuanceConfig, error) {
		t.Helper()
		c, err := config.Parse([]byte("issuance:\n" + issuanceYAML))
		if err != nil {
			t.Fatal(err)
		}
		return issuanceSettings(c)
	}
	ic, err := parse(t, "  exclude_lints: [w_subject_common_name_included]\n  backdate: 2m\n  default_profile: tls-client\n")
	if err != nil || len(ic.ExcludeLints) != 1 || ic.Backdate != 2*time.Minute || ic.DefaultProfile != "tls-client" {
		t.Fatalf("got %+v, %v", ic, err)
	}
	for in, want := range map[string]string{
		"  exclude_lints: [e_no_such_lint]\n":  `issuance.exclude_lints: "e_no_such_lint" is not a zlint lint`,
		"  backdate: -1m\n":                    "issuance.backdate: -1m0s is negative",
		"  exclude_lint: [x]\n":                `unknown key "exclude_lint"`,
		"  default_profile: nosuch\n":          `issuance.default_profile: the CA has no profile "nosuch" (it has `,
		"  urls: {ca_issuers: [], ocsp: []}\n": "issuance.urls: ca_issuers and ocsp are both empty",
	} {
		if _, err := parse(t, in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
}

// TestIssuanceURLs: each URL list the section sets replaces its default
// alone; an empty list leaves that URL out.
func TestIssuanceURLs(t *testing.T) {
	for in, want := range map[string][3]int{ // ca_issuers, ocsp, crl
		"issuance: {}\n": {1, 1, 1},
		"issuance:\n  urls: {ocsp: [\"http://o.example/ocsp\"]}\n":                           {1, 1, 1},
		"issuance:\n  urls: {ocsp: []}\n":                                                    {1, 0, 1},
		"issuance:\n  urls: {crl: [\"http://a/{issuer}.crl\", \"http://b/{issuer}.crl\"]}\n": {1, 1, 2},
	} {
		c, err := config.Parse([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		ic, err := issuanceSettings(c)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		u := ic.certURLs("http://ca.example:8080")
		if got := [3]int{len(u.CAIssuers), len(u.OCSP), len(u.CRL)}; got != want {
			t.Errorf("%q: %d caIssuers, %d OCSP, %d CRL URLs; want %v (%+v)", in, got[0], got[1], got[2], want, u)
		}
		if strings.Contains(in, "o.example") && u.OCSP[0] != "http://o.example/ocsp" || u.CAIssuers[0] != "http://ca.example:8080/issuers/{issuer}.crt" {
			t.Errorf("%q: %+v", in, u)
		}
	}
}
