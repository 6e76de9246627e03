package acme

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
)

// Revocation (RFC 8555 §7.6) and renewal information (ARI, RFC 9773).

func (s *Server) revokeCert(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	req, err := s.verify(ctx, w, r, kidOrJWK)
	if err != nil {
		return err
	}
	var in struct {
		Certificate string `json:"certificate"`
		Reason      *int   `json:"reason"`
	}
	if err := decodePayload(req.payload, &in); err != nil {
		return err
	}
	der, err := base64.RawURLEncoding.DecodeString(in.Certificate)
	if err != nil || len(der) == 0 {
		return malformed("certificate is not base64url DER")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return malformed("certificate cannot be parsed")
	}
	if cert.SerialNumber == nil || cert.SerialNumber.Sign() <= 0 {
		return malformed("certificate serial is not positive")
	}
	serial := core.SerialFromBig(cert.SerialNumber)
	rec, err := s.o.Issuer.Certificate(ctx, serial)
	if isNotFound(err) || (err == nil && !bytes.Equal(rec.DER, der)) {
		return prob("malformed", http.StatusNotFound, "certificate was not issued by this CA")
	}
	if err != nil {
		return err
	}
	reason := core.ReasonUnspecified
	if in.Reason != nil {
		reason, err = core.ReasonFromCode(*in.Reason)
		if err != nil || !slices.Contains(subscriberReasons, reason) {
			return prob("badRevocationReason", http.StatusBadRequest,
				"reason must be 0 (unspecified), 1 (keyCompromise), 3 (affiliationChanged), 4 (superseded) or 5 (cessationOfOperation): "+
					"the others state what only the CA can (a CA's compromise, a privilege it withdrew)")
		}
	}
	// As Boulder does: a certificate revoked for another reason may be
	// revoked again for keyCompromise by a request signed with its own key,
	// which proves the compromise (the key is checked below); so may one
	// revoked for keyCompromise by a claim that did not block its key.
	if rec.Status == core.StatusRevoked {
		upgrade := reason == core.ReasonKeyCompromise && req.account == nil
		if upgrade && rec.RevocationReason == core.ReasonKeyCompromise {
			blocked, err := s.o.Store.KeyBlocked(ctx, core.KeyHash(cert.RawSubjectPublicKeyInfo))
			if err != nil {
				return err
			}
			upgrade = !blocked
		}
		if !upgrade {
			return prob("alreadyRevoked", http.StatusBadRequest, "certificate is already revoked")
		}
	}
	requester := "acme:" + s.o.Name + "/"
	if req.account != nil {
		// The CA's own certificates (its CA certificates, the node's HTTPS
		// and OCSP responder certificates) are revoked on a node, as the
		// REST API requires: an account holding authorizations for the
		// CA's host name must not make the node serve a revoked
		// certificate. Their keys' holders may still revoke them below.
		if err := ra.MayRevoke(nil, rec); err != nil {
			return unauthorized(core.DetailOf(err))
		}
		if err := s.mayRevoke(ctx, req.account.ID, cert); err != nil {
			return err
		}
		requester += req.account.ID
	} else {
		pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !pub.Equal(req.key.Key) {
			return unauthorized("the JWS is not signed by the certificate's key")
		}
		requester += "certificate-key"
	}
	if err := s.o.Issuer.Revoke(ctx, serial, reason, requester, req.account == nil); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "acme certificate revoked", "serial", serial, "reason", reason.String())
	w.WriteHeader(http.StatusOK)
	return nil
}

// mayRevoke: the account ordered the certificate, or holds valid
// authorizations for every name in it (§7.6).
func (s *Server) mayRevoke(ctx context.Context, accountID string, cert *x509.Certificate) error {
	serial := core.SerialFromBig(cert.SerialNumber)
	if c, err := s.o.Store.ACMECert(ctx, s.o.Name, string(serial)); err == nil && c.AccountID == accountID {
		return nil
	} else if err != nil && !isNotFound(err) {
		return err
	}
	held, err := s.o.Store.ValidACMEIdentifiers(ctx, s.o.Name, accountID, s.now())
	if err != nil {
		return err
	}
	var names []Identifier
	for _, n := range cert.DNSNames {
		names = append(names, Identifier{Type: "dns", Value: strings.ToLower(n)})
	}
	for _, ip := range cert.IPAddresses {
		a, _ := netip.AddrFromSlice(ip)
		names = append(names, Identifier{Type: "ip", Value: a.Unmap().String()})
	}
	for _, n := range names {
		if !slices.ContainsFunc(held, func(h storage.ACMEIdentifier) bool { return h.Type == n.Type && h.Value == n.Value }) {
			return unauthorized("the account neither ordered this certificate nor holds authorizations for all its names")
		}
	}
	if len(names) == 0 {
		return unauthorized("the account did not order this certificate")
	}
	return nil
}

// certID parses an ARI certificate identifier (RFC 9773 §4.1):
// base64url(AKI keyIdentifier) "." base64url(serial DER content).
func parseCertID(id string) (aki []byte, serial core.Serial, err error) {
	a, sn, ok := strings.Cut(id, ".")
	if !ok {
		return nil, "", malformed("certID must be base64url(AKI).base64url(serial)")
	}
	aki, err1 := base64.RawURLEncoding.DecodeString(a)
	sb, err2 := base64.RawURLEncoding.DecodeString(sn)
	if err1 != nil || err2 != nil || len(aki) == 0 || len(sb) == 0 || len(sb) > 21 || sb[0]&0x80 != 0 {
		return nil, "", malformed("certID must be base64url(AKI).base64url(serial)")
	}
	n := new(big.Int).SetBytes(sb)
	if n.Sign() <= 0 {
		return nil, "", malformed("certID serial must be positive")
	}
	return aki, core.SerialFromBig(n), nil
}

// renewalInfo answers GET /renewal-info/{certID} (RFC 9773 §4.2): the last
// third of the lifetime, or a window in the past for a revoked certificate
// so clients renew at once.
func (s *Server) renewalInfo(ctx context.Context, w http.ResponseWriter, certID string) error {
	aki, serial, err := parseCertID(certID)
	if err != nil {
		return err
	}
	rec, err := s.o.Issuer.Certificate(ctx, serial)
	if isNotFound(err) {
		return notFoundProblem("certificate")
	}
	if err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(rec.DER)
	if err != nil || !bytes.Equal(cert.AuthorityKeyId, aki) {
		return notFoundProblem("certificate")
	}
	life := cert.NotAfter.Sub(cert.NotBefore)
	start := cert.NotBefore.Add(life * 2 / 3)
	end := start.Add(life / 6)
	if rec.Status == core.StatusRevoked {
		now := s.now()
		start, end = now.Add(-2*time.Hour), now.Add(-time.Hour)
	}
	w.Header().Set("Retry-After", "21600")
	return writeJSON(w, http.StatusOK, map[string]any{
		"suggestedWindow": map[string]string{"start": rfc3339(start), "end": rfc3339(end)},
	})
}

// subscriberReasons are the revocation reasons a subscriber may give over
// ACME, as Let's Encrypt and the CA/Browser Forum's Baseline Requirements
// (§7.2.2) allow: cACompromise, aACompromise and privilegeWithdrawn state
// what only the CA can know, and a subscriber's word must not make relying
// parties read that the CA was compromised. Operators give any reason over
// REST, the console or `ca cert revoke`.
var subscriberReasons = []core.RevocationReason{core.ReasonUnspecified, core.ReasonKeyCompromise, core.ReasonAffiliationChanged,
	core.ReasonSuperseded, core.ReasonCessationOfOperation}

// checkReplaces accepts newOrder's replaces field (RFC 9773 §5) when it
// names a certificate this account got here that no other order replaces
// and that shares an identifier with the order's ids (a renewal: an
// unrelated order would use up the certificate's one replacement).
func (s *Server) checkReplaces(ctx context.Context, accountID, certID string, ids []Identifier) error {
	aki, serial, err := parseCertID(certID)
	if err != nil {
		return err
	}
	c, err := s.o.Store.ACMECert(ctx, s.o.Name, string(serial))
	if isNotFound(err) {
		return malformed("replaces names a certificate this endpoint did not issue")
	}
	if err != nil {
		return err
	}
	if c.AccountID != accountID {
		return malformed("replaces names a certificate of another account")
	}
	if len(c.Chains) == 0 {
		return malformed("replaces names a certificate without a stored chain")
	}
	if blk, _ := pem.Decode([]byte(c.Chains[0])); blk != nil {
		leaf, err := x509.ParseCertificate(blk.Bytes)
		if err == nil && !bytes.Equal(leaf.AuthorityKeyId, aki) {
			return malformed("replaces certID does not match the certificate's issuer")
		}
		if err == nil && !sharesIdentifier(leaf, ids) {
			return malformed("the order shares no identifier with the certificate it replaces")
		}
	}
	done, err := s.o.Store.ACMEOrderReplacing(ctx, s.o.Name, certID)
	if err != nil {
		return err
	}
	if done {
		return prob("alreadyReplaced", http.StatusConflict, "another order already replaces this certificate")
	}
	return nil
}

// sharesIdentifier reports whether cert names one of ids.
func sharesIdentifier(cert *x509.Certificate, ids []Identifier) bool {
	for _, id := range ids {
		switch id.Type {
		case "dns":
			if slices.ContainsFunc(cert.DNSNames, func(n string) bool { return strings.EqualFold(n, id.Value) }) {
				return true
			}
		case "ip":
			want, err := netip.ParseAddr(id.Value)
			if err != nil {
				continue
			}
			for _, ip := range cert.IPAddresses {
				if got, ok := netip.AddrFromSlice(ip); ok && got.Unmap() == want.Unmap() {
					return true
				}
			}
		}
	}
	return false
}
