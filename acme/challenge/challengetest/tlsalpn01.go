package challengetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// oidACMEIdentifier is id-pe-acmeIdentifier (RFC 8737 §6.1).
var oidACMEIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

// ALPNCertOptions make deliberately wrong tls-alpn-01 certificates for
// negative tests. The zero value makes a correct one.
type ALPNCertOptions struct {
	// Names replaces the subjectAltNames (each a DNS name or an IP address).
	// Nil: the identifier alone.
	Names []string
	// OmitExtension leaves out the acmeIdentifier extension.
	OmitExtension bool
	// NonCritical marks the acmeIdentifier extension not critical.
	NonCritical bool
	// Value replaces the extension's DER value. Nil: OCTET STRING of
	// SHA-256(keyAuthorization).
	Value []byte
}

// ALPNCert makes a self-signed tls-alpn-01 certificate (RFC 8737 §3) for
// identValue (a DNS name or an IP address) and keyAuth.
func ALPNCert(identValue, keyAuth string, opts ALPNCertOptions) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	names := opts.Names
	if names == nil {
		names = []string{identValue}
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "ACME tls-alpn-01 challenge"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	if !opts.OmitExtension {
		value := opts.Value
		if value == nil {
			sum := sha256.Sum256([]byte(keyAuth))
			if value, err = asn1.Marshal(sum[:]); err != nil {
				return tls.Certificate{}, err
			}
		}
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidACMEIdentifier, Critical: !opts.NonCritical, Value: value}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("creating tls-alpn-01 certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// TLSALPNServer answers tls-alpn-01 challenges on a loopback port: it picks
// the certificate by SNI and negotiates acme-tls/1 (or the protocols set
// with SetNextProtos).
type TLSALPNServer struct {
	mu     sync.Mutex
	certs  map[string]*tls.Certificate
	protos []string
	ln     net.Listener
}

// NewTLSALPNServer starts a TLSALPNServer on 127.0.0.1 and stops it when the
// test ends.
func NewTLSALPNServer(t testing.TB) *TLSALPNServer {
	t.Helper()
	s := &TLSALPNServer{certs: map[string]*tls.Certificate{}, protos: []string{"acme-tls/1"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening for tls-alpn-01: %v", err)
	}
	s.ln = ln
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			return &tls.Config{
				MinVersion: tls.VersionTLS12,
				NextProtos: slices.Clone(s.protos),
				GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
					s.mu.Lock()
					defer s.mu.Unlock()
					if c, ok := s.certs[strings.ToLower(hello.ServerName)]; ok {
						return c, nil
					}
					return nil, fmt.Errorf("no certificate for %q", hello.ServerName)
				},
			}, nil
		},
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				_ = tls.Server(conn, cfg).Handshake()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

// Set serves a correct challenge certificate for identValue (a DNS name, or
// an IP address, served for its reverse-DNS SNI per RFC 8738 §6).
func (s *TLSALPNServer) Set(identValue, keyAuth string) error {
	cert, err := ALPNCert(identValue, keyAuth, ALPNCertOptions{})
	if err != nil {
		return err
	}
	s.SetCertificate(SNI(identValue), cert)
	return nil
}

// SetCertificate serves cert to clients that send serverName as SNI.
func (s *TLSALPNServer) SetCertificate(serverName string, cert tls.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.certs[strings.ToLower(serverName)] = &cert
}

// SetNextProtos sets the ALPN protocols the server accepts (none: the server
// ignores ALPN).
func (s *TLSALPNServer) SetNextProtos(protos ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.protos = protos
}

// Addr is the server's host:port.
func (s *TLSALPNServer) Addr() string { return s.ln.Addr().String() }

// Port is the server's port, for the validator's TLSPort.
func (s *TLSALPNServer) Port() int { return portOf(s.Addr()) }

// SNI is the server name a tls-alpn-01 validator sends for identValue: the
// name itself, or the reverse-DNS name of an IP address (RFC 8738 §6).
func SNI(identValue string) string {
	if net.ParseIP(identValue) != nil {
		if rev, err := dns.ReverseAddr(identValue); err == nil {
			return strings.TrimSuffix(rev, ".")
		}
	}
	return identValue
}
