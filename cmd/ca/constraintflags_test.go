package main

import (
	"strings"
	"testing"
)

// TestConstraintFlags: --permit/--exclude syntax errors name the flags, and
// constraints that would refuse the node's own HTTPS certificate are
// refused before any key is made.
func TestConstraintFlags(t *testing.T) {
	bad := nameConstraintFlags{permit: []string{"corp.internal"}}
	if _, err := bad.parse(); err == nil || !strings.Contains(err.Error(), "--permit/--exclude: permit \"corp.internal\": write it type:value") {
		t.Errorf("bad syntax: %v", err)
	}
	for _, tc := range []struct {
		permit, exclude []string
		hostname, why   string
	}{
		{[]string{"dns:corp.internal"}, nil, "localhost", "(for localhost) would be refused: \"localhost\" is outside the permitted DNS subtrees corp.internal"},
		{[]string{"dns:corp.internal", "dns:localhost"}, []string{"ip:0.0.0.0/0"}, "localhost", "\"127.0.0.1\" is inside the excluded IP range 0.0.0.0/0"},
		{[]string{"ip:10.0.0.0/8"}, nil, "192.168.1.10", "\"192.168.1.10\" is outside the permitted IP ranges 10.0.0.0/8"},
		{[]string{"dns:corp.internal"}, nil, "ca.corp.internal", ""},
		// An address hostname is no common name (OpenSSL would read it as
		// a DNS name outside dns:corp.internal).
		{[]string{"dns:corp.internal", "ip:11.0.0.0/8"}, nil, "11.0.0.5", ""},
		{[]string{"dns:corp.internal", "dns:localhost", "ip:127.0.0.0/8", "ip:::1/128"}, nil, "localhost", ""},
	} {
		nc, err := (&nameConstraintFlags{permit: tc.permit, exclude: tc.exclude}).parse()
		if err != nil {
			t.Fatal(err)
		}
		err = keepsServerCert(nc, tc.hostname)
		if tc.why == "" && err != nil || tc.why != "" && (err == nil || !strings.Contains(err.Error(), tc.why)) {
			t.Errorf("%v/%v for %s: %v, want %q", tc.permit, tc.exclude, tc.hostname, err, tc.why)
		}
	}
}
