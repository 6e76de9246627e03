package e2e

import (
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"os"
	"testing"
	"time"
)

// The HTTPS certificate fits a stricter tls-server profile (a week was
// hard-coded: a 72h maximum stopped `ca serve` from starting), and names
// the loopback addresses beside localhost, so https://127.0.0.1:PORT
// verifies too. Its key is one the profile accepts (P-256 was hard-coded:
// a tls-server profile for RSA keys only stopped `ca serve`).
func TestServerCertificateFitsProfile(t *testing.T) {
	c := StartCA(t, Options{Configure: func(t testing.TB, dir string) {
		appendConfig(t, dir, "profiles: [{name: tls-server, default_lifetime: 24h, max_lifetime: 72h, key_types: [rsa2048]}]\n")
	}})
	u, _ := url.Parse(c.HTTPSURL)
	rootPEM, _ := os.ReadFile(c.Root)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(rootPEM)
	conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", u.Port()), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("TLS to 127.0.0.1 (want an IP SAN): %v", err)
	}
	defer conn.Close()
	leaf := conn.ConnectionState().PeerCertificates[0]
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life > 72*time.Hour {
		t.Fatalf("HTTPS certificate lifetime %s over the profile's 72h maximum", life)
	}
	if k, ok := leaf.PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 2048 {
		t.Fatalf("HTTPS certificate key %T, want the RSA 2048 the profile accepts", leaf.PublicKey)
	}
}
