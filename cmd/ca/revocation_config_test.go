package main

import (
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/config"
)

func TestOCSPSettings(t *testing.T) {
	parse := func(t *testing.T, ocspYAML string) (ocspConfig, error) {
		t.Helper()
		c, err := config.Parse([]byte("ocsp:\n" + ocspYAML))
		if err != nil {
			t.Fatal(err)
		}
		return ocspSettings(c)
	}
	oc, err := parse(t, "  cache_entries: 1000\n  lane_entries: -1\n  validity: 12h\n")
	if err != nil || oc.CacheEntries != 1000 || oc.LaneEntries != -1 || oc.Validity.Hours() != 12 {
		t.Fatalf("got %+v, %v", oc, err)
	}
	for in, want := range map[string]string{
		"  cache_entries: -5\n":       "ocsp.cache_entries",
		"  lane_entry: 5\n":           `unknown key "lane_entry" (known here: cache_entries,`,
		"  validity: -5h\n":           "ocsp.validity: -5h0m0s is negative",
		"  responder_validity: -1s\n": "ocsp.responder_validity",
	} {
		if _, err := parse(t, in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one naming %s", in, err, want)
		}
	}
}

// TestACMELimitsConfig: each limit defaults on its own (setting one does
// not lift the other), and a negative one means no limit.
func TestACMELimitsConfig(t *testing.T) {
	for _, tc := range []struct {
		in     acmeLimitsConfig
		orders int
		accts  int
	}{
		{acmeLimitsConfig{}, 300, 50},
		{acmeLimitsConfig{NewOrdersPerAccountPerHour: 10}, 10, 50},
		{acmeLimitsConfig{NewAccountsPerIPPerHour: -1}, 300, 0},
	} {
		if got := tc.in.limits(); got.NewOrdersPerAccountPerHour != tc.orders || got.NewAccountsPerIPPerHour != tc.accts {
			t.Errorf("%+v: %+v, want %d and %d", tc.in, got, tc.orders, tc.accts)
		}
	}
	c, err := config.Parse([]byte("acme:\n  endpoints:\n    - name: a\n      limits: {new_orders_per_account_per_hour: 7}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ac, err := decodeACME(c)
	if err != nil || ac.Endpoints[0].Limits.limits().NewOrdersPerAccountPerHour != 7 {
		t.Fatalf("decoded %+v, %v", ac, err)
	}
}
