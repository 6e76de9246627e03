package ocsp

import (
	"context"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/strongroom-pki/strongroom/core"
)

// Nodes sharing Redis serve each other's cached answers, signed under
// each other's responder certificates. Those carry id-pkix-ocsp-nocheck,
// so no relying party learns one was revoked: every node must refuse the
// answers signed under it, not only the node that made them (keys.go
// replaces its own). A cached answer names its signer in its certs field;
// each issuer's keyring remembers, by serial, what it knows of the
// responder certificates it met there, and learns a new one from the
// StatusSource once. Revocations (event, sweep, the revoking node's own
// Invalidate) mark the ones it knows; one revoked before the node met it
// is found revoked when it is first looked up. The cached GET pays a
// header walk and one map read (BenchmarkSignerCheck: about 0.2 µs, no
// allocation); the database is asked once per responder certificate per
// node.

// signerState is what a node knows of a responder certificate.
type signerState uint8

const (
	signerChecking signerState = iota // being looked up; a revocation now marks it revoked
	signerGood                        // recorded and not revoked
	signerRevoked                     // revoked, or not recorded as issued: its answers are not served
)

type signerInfo struct {
	state signerState
	// until is when the entry may be forgotten: no answer signed under
	// the certificate is still valid (answers never outlive it). An entry
	// forgotten early costs a lookup, never a wrong answer.
	until time.Time
	// retry, for an entry still being checked, is when a lookup that
	// failed may be tried again; until then its answers are not served.
	retry time.Time
}

// signerRetry is how long after a failed lookup (the database down) a
// responder certificate is looked up again, instead of on every request.
const signerRetry = 5 * time.Second

// responderSerial finds the serial of the responder certificate a
// successful OCSPResponse carries (the first of BasicOCSPResponse.certs,
// RFC 6960 §4.2.1) and writes its hex into buf. It returns nil, true for a
// response without certificates (signed by the issuer itself) and false
// for one it cannot read.
func responderSerial(resp []byte, buf *[40]byte) ([]byte, bool) {
	basic, ok := basicResponse(resp)
	if !ok || !basic.SkipASN1(cbasn1.SEQUENCE) || // tbsResponseData
		!basic.SkipASN1(cbasn1.SEQUENCE) || // signatureAlgorithm
		!basic.SkipASN1(cbasn1.BIT_STRING) {
		return nil, false
	}
	if basic.Empty() {
		return nil, true
	}
	var certsField, certs, cert, tbs, serial cryptobyte.String
	if !basic.ReadASN1(&certsField, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!certsField.ReadASN1(&certs, cbasn1.SEQUENCE) || !certs.ReadASN1(&cert, cbasn1.SEQUENCE) ||
		!cert.ReadASN1(&tbs, cbasn1.SEQUENCE) ||
		!tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || // version
		!tbs.ReadASN1(&serial, cbasn1.INTEGER) {
		return nil, false
	}
	return serialHex(buf, serial)
}

// basicResponse returns the BasicOCSPResponse inside a successful
// OCSPResponse (RFC 6960 §4.2.1), walking the DER headers only.
func basicResponse(resp []byte) (cryptobyte.String, bool) {
	in := cryptobyte.String(resp)
	var top, explicit, rb, octets, basic cryptobyte.String
	ok := in.ReadASN1(&top, cbasn1.SEQUENCE) && top.SkipASN1(cbasn1.ENUM) &&
		top.ReadASN1(&explicit, cbasn1.Tag(0).Constructed().ContextSpecific()) &&
		explicit.ReadASN1(&rb, cbasn1.SEQUENCE) && rb.SkipASN1(cbasn1.OBJECT_IDENTIFIER) &&
		rb.ReadASN1(&octets, cbasn1.OCTET_STRING) && octets.ReadASN1(&basic, cbasn1.SEQUENCE)
	return basic, ok
}

// signer returns what kr knows of the responder certificate with serial
// (hex, as core.Serial spells it).
func (kr *keyring) signer(serial []byte) (signerInfo, bool) {
	if p := kr.signers.Load(); p != nil {
		s, ok := (*p)[string(serial)]
		return s, ok
	}
	return signerInfo{}, false
}

// setSigner records what kr knows of serial, forgetting the entries past
// their time. change decides the new entry from the old one (ok false
// when there is none) and may leave it as it was (ok false: no change).
// kr.hmu is held.
func (kr *keyring) setSigner(serial core.Serial, now time.Time, change func(old signerInfo, had bool) (signerInfo, bool)) bool {
	var m map[string]signerInfo
	if p := kr.signers.Load(); p != nil {
		m = *p
	}
	old, had := m[string(serial)]
	s, ok := change(old, had)
	if !ok {
		return false
	}
	next := make(map[string]signerInfo, len(m)+1)
	for k, v := range m {
		if now.Before(v.until) {
			next[k] = v
		}
	}
	next[string(serial)] = s
	kr.signers.Store(&next)
	return true
}

// knowSigner records a responder certificate as good (its own, adopted),
// unless it is known revoked. kr.hmu is held.
func (kr *keyring) knowSigner(serial core.Serial, until, now time.Time) {
	kr.setSigner(serial, now, func(old signerInfo, had bool) (signerInfo, bool) {
		return signerInfo{state: signerGood, until: until}, !had || old.state != signerRevoked
	})
}

// signerRevoked reports whether serial is known as a revoked responder
// certificate.
func (kr *keyring) signerRevoked(serial core.Serial) bool {
	s, ok := kr.signer([]byte(serial))
	return ok && s.state == signerRevoked
}

// revokeSigner marks serial revoked if kr knows it as a responder
// certificate (or is looking it up), and reports whether that changed
// anything. Any other revoked serial is no responder certificate this node
// met, and is not remembered.
func (kr *keyring) revokeSigner(serial core.Serial, now time.Time) bool {
	kr.hmu.Lock()
	defer kr.hmu.Unlock()
	return kr.setSigner(serial, now, func(old signerInfo, had bool) (signerInfo, bool) {
		return signerInfo{state: signerRevoked, until: old.until}, had && old.state != signerRevoked
	})
}

// signerUsable reports whether a cached answer for iss may be served as
// far as its signer goes: signed by the issuer, or under a responder
// certificate known not to be revoked. A certificate met for the first
// time is looked up; while that cannot be done, its answers are not
// served (the fresh answer made instead needs the StatusSource too).
func (r *Responder) signerUsable(ctx context.Context, iss *issuer, resp []byte) bool {
	var buf [40]byte
	serial, ok := responderSerial(resp, &buf)
	if !ok {
		return false // not an answer of ours: replace it
	}
	if serial == nil {
		return true
	}
	if s, ok := iss.kr.signer(serial); ok && s.state != signerChecking {
		return s.state == signerGood
	} else if ok && r.now().Before(s.retry) {
		return false // its lookup failed moments ago
	}
	return r.lookUpSigner(ctx, iss, core.Serial(serial))
}

// lookUpSigner asks the StatusSource about a responder certificate met in
// a cached answer, remembers the answer and reports whether it is good. A
// revocation arriving during the lookup wins over what the lookup read.
func (r *Responder) lookUpSigner(ctx context.Context, iss *issuer, serial core.Serial) bool {
	kr := &iss.kr
	now := r.now()
	kr.hmu.Lock()
	kr.setSigner(serial, now, func(_ signerInfo, had bool) (signerInfo, bool) {
		return signerInfo{state: signerChecking, until: now.Add(r.validity)}, !had
	})
	kr.hmu.Unlock()
	c, err := r.status.CertStatus(ctx, iss.id, serial)
	s := signerInfo{state: signerGood, until: c.NotAfter}
	switch {
	case core.IsNotFound(err):
		// Every responder certificate is recorded before it signs; one
		// that is not cannot be revoked, so it is not trusted.
		r.log.Warn("cached OCSP answers signed under an unrecorded responder certificate are not served", "issuer", iss.id, "serial", serial)
		s = signerInfo{state: signerRevoked, until: now.Add(r.validity)}
	case err != nil:
		r.failures.Warn(ctx, r.log, "looking up the responder certificate of a cached OCSP answer (its answers are signed again meanwhile)",
			"issuer", iss.id, "serial", serial, "err", err)
		kr.hmu.Lock()
		kr.setSigner(serial, now, func(old signerInfo, had bool) (signerInfo, bool) {
			old.retry = now.Add(signerRetry)
			return old, had && old.state == signerChecking
		})
		kr.hmu.Unlock()
		return false
	case c.Status != core.StatusValid:
		r.log.Warn("cached OCSP answers signed under a revoked responder certificate are not served", "issuer", iss.id, "serial", serial)
		s.state = signerRevoked
	}
	kr.hmu.Lock()
	kr.setSigner(serial, now, func(old signerInfo, had bool) (signerInfo, bool) {
		return s, !had || old.state == signerChecking
	})
	good := s.state == signerGood && !kr.signerRevoked(serial)
	kr.hmu.Unlock()
	if s.state == signerRevoked {
		// This node's own certificate, if the revocation did not reach
		// it yet: replaced now.
		r.retire(iss, serial)
	}
	return good
}
