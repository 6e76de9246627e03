package challenge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// ALPNProto is the ALPN protocol of tls-alpn-01 (RFC 8737 §6.2).
const ALPNProto = "acme-tls/1"

// OIDACMEIdentifier is id-pe-acmeIdentifier (RFC 8737 §6.1).
var OIDACMEIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

// validateTLSALPN01 implements RFC 8737 §3: a TLS handshake with SNI set to
// the identifier (the reverse-DNS name for an IP, RFC 8738 §6) and ALPN
// acme-tls/1 must negotiate acme-tls/1 and present a certificate whose only
// SAN is the identifier and that carries a critical acmeIdentifier extension
// holding SHA-256(keyAuthorization).
func (v *Validator) validateTLSALPN01(ctx context.Context, id identifier, keyAuth string) *Error {
	sni := id.value
	if id.isIP() {
		rev, err := dns.ReverseAddr(id.value)
		if err != nil {
			return errorf(ErrMalformed, "cannot build the reverse name of %s", id.value)
		}
		sni = strings.TrimSuffix(rev, ".")
	}
	where := fmt.Sprintf("%s port %d", id.value, v.opts.TLSPort)
	conn, derr := v.dial(ctx, id.value, v.opts.TLSPort)
	if derr != nil {
		return derr
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	tconn := tls.Client(conn, &tls.Config{
		ServerName: sni,
		NextProtos: []string{ALPNProto},
		MinVersion: tls.VersionTLS12,
		// The certificate is self-signed by design; it is checked below.
		InsecureSkipVerify: true, //nolint:gosec // RFC 8737 §3
	})
	if err := tconn.HandshakeContext(ctx); err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			return errorf(ErrConnection, "TLS handshake with %s (SNI %s): timed out", where, sni)
		}
		var alert tls.AlertError
		if errors.As(err, &alert) {
			return errorf(ErrTLS, "TLS handshake with %s (SNI %s, ALPN %s) failed: remote error: %s",
				where, sni, ALPNProto, alert.Error())
		}
		return errorf(ErrTLS, "TLS handshake with %s (SNI %s, ALPN %s) failed", where, sni, ALPNProto)
	}
	state := tconn.ConnectionState()
	if state.NegotiatedProtocol != ALPNProto {
		return errorf(ErrTLS, "%s did not negotiate ALPN protocol %s (got %q)", where, ALPNProto,
			truncate(state.NegotiatedProtocol, 32))
	}
	if len(state.PeerCertificates) == 0 {
		return errorf(ErrTLS, "%s presented no certificate", where)
	}
	return checkALPNCert(state.PeerCertificates[0], id, keyAuth, where)
}

// checkALPNCert checks the acmeIdentifier certificate of RFC 8737 §3.
func checkALPNCert(cert *x509.Certificate, id identifier, keyAuth, where string) *Error {
	if n := len(cert.DNSNames) + len(cert.IPAddresses) + len(cert.EmailAddresses) + len(cert.URIs); n != 1 {
		return errorf(ErrUnauthorized, "certificate from %s has %d subjectAltNames (%s), want exactly %s",
			where, n, truncate(describeSANs(cert), 200), id.value)
	}
	if id.isIP() {
		if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(id.ip.AsSlice()) {
			return errorf(ErrUnauthorized, "certificate from %s is for %s, want the IP address %s",
				where, truncate(describeSANs(cert), 200), id.value)
		}
	} else if len(cert.DNSNames) != 1 || !strings.EqualFold(cert.DNSNames[0], id.value) {
		return errorf(ErrUnauthorized, "certificate from %s is for %s, want the DNS name %s",
			where, truncate(describeSANs(cert), 200), id.value)
	}
	var ext []byte
	found := 0
	for _, e := range cert.Extensions {
		if !e.Id.Equal(OIDACMEIdentifier) {
			continue
		}
		found++
		if !e.Critical {
			return errorf(ErrUnauthorized, "certificate from %s has an acmeIdentifier extension that is not critical", where)
		}
		ext = e.Value
	}
	switch found {
	case 0:
		return errorf(ErrUnauthorized, "certificate from %s has no acmeIdentifier extension (%s)", where, OIDACMEIdentifier)
	case 1:
	default:
		return errorf(ErrUnauthorized, "certificate from %s has %d acmeIdentifier extensions, want one", where, found)
	}
	var got []byte
	if rest, err := asn1.Unmarshal(ext, &got); err != nil || len(rest) != 0 || len(got) != sha256.Size {
		return errorf(ErrUnauthorized, "certificate from %s: acmeIdentifier extension is not a 32-byte OCTET STRING", where)
	}
	want := sha256.Sum256([]byte(keyAuth))
	if !bytes.Equal(got, want[:]) {
		return errorf(ErrIncorrectResponse, "certificate from %s: acmeIdentifier is %x, want SHA-256 of the key authorization %x",
			where, got, want)
	}
	return nil
}

func describeSANs(cert *x509.Certificate) string {
	var parts []string
	for _, n := range cert.DNSNames {
		parts = append(parts, "DNS:"+n)
	}
	for _, ip := range cert.IPAddresses {
		parts = append(parts, "IP:"+ip.String())
	}
	for _, e := range cert.EmailAddresses {
		parts = append(parts, "email:"+e)
	}
	for _, u := range cert.URIs {
		parts = append(parts, "URI:"+u.String())
	}
	if len(parts) == 0 {
		return "no names"
	}
	return fmt.Sprintf("%q", strings.Join(parts, ", "))
}
