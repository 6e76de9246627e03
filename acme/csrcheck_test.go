package acme

import (
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"
)

// TestFinalizeCSRAlgorithmNamed: a finalize CSR validly signed with an
// algorithm this CA does not take (MD5 with RSA, made by openssl) is
// badCSR naming the algorithm, not "signature is invalid".
func TestFinalizeCSRAlgorithmNamed(t *testing.T) {
	der, err := os.ReadFile("../ra/testdata/csr-md5.der")
	if err != nil {
		t.Fatal(err)
	}
	_, err = parseCSR(base64.RawURLEncoding.EncodeToString(der))
	var p *problem
	if !errors.As(err, &p) || p.Type != errNS+"badCSR" || !strings.Contains(p.Detail, "signed with MD5-RSA, which this CA does not accept") {
		t.Fatalf("MD5-signed CSR: %v", err)
	}
}

// TestIPIdentifierWithZone: an ip identifier with a zone is refused
// saying so, not as "not an IP address".
func TestIPIdentifierWithZone(t *testing.T) {
	_, err := normalizeIdentifiers([]Identifier{{Type: "ip", Value: "fe80::1%eth0"}})
	if err == nil || !strings.Contains(toProblem(err).Subproblems[0].Detail, "zone (%eth0)") {
		t.Fatalf("fe80::1%%eth0: %v", err)
	}
}
