package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestTLS12SuitesAEADOnly: a TLS 1.2 client offering only a CBC-SHA1 suite
// is refused; one offering ECDHE with AES-GCM is served, and TLS 1.3 is.
func TestTLS12SuitesAEADOnly(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	s := New(Options{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }})
	l, err := tls.Listen("tcp", "127.0.0.1:0", s.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	dial := func(max uint16, suite uint16) error {
		cfg := &tls.Config{InsecureSkipVerify: true, MaxVersion: max} //nolint:gosec // only the handshake is tested
		if suite != 0 {
			cfg.CipherSuites = []uint16{suite}
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", l.Addr().String(), cfg)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA); err == nil {
		t.Fatal("TLS 1.2 with ECDHE-ECDSA-AES128-SHA (CBC, SHA-1) was accepted")
	}
	if err := dial(tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256); err != nil {
		t.Fatalf("TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256: %v", err)
	}
	if err := dial(tls.VersionTLS13, 0); err != nil {
		t.Fatalf("TLS 1.3: %v", err)
	}
}

// TestRequestDeadline: every request's context ends after RequestTimeout,
// so what a handler waits on (a hung database) gives up while the
// connection can still carry the answer.
func TestRequestDeadline(t *testing.T) {
	s := New(Options{WriteTimeout: 3 * time.Second})
	var left time.Duration
	var ok bool
	s.MountPlain("/wait", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d time.Time
		d, ok = r.Context().Deadline()
		left = time.Until(d)
		<-r.Context().Done()
		if r.Context().Err() != context.DeadlineExceeded {
			t.Errorf("context ended with %v", r.Context().Err())
		}
	}))
	s.PlainHandler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/wait", nil))
	if !ok || left > 2*time.Second || left <= 0 {
		t.Fatalf("request deadline: set %v, %s left; want two thirds of the 3 s write timeout", ok, left)
	}
}
