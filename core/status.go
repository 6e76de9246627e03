package core

import (
	"fmt"
	"time"
)

// CertStatus is where a certificate is in its life.
type CertStatus string

const (
	// StatusReserved: the serial is reserved and the to-be-signed certificate
	// linted and recorded, but the signed certificate is not stored yet. A
	// reserved serial that never becomes valid is never handed out and never
	// reused.
	StatusReserved CertStatus = "reserved"
	// StatusValid: signed and stored; may have expired (see NotAfter).
	StatusValid CertStatus = "valid"
	// StatusRevoked: revoked, with a reason and time.
	StatusRevoked CertStatus = "revoked"
)

// RevocationReason is a CRLReason code from RFC 5280 §5.3.1.
type RevocationReason int

// The reason codes of RFC 5280 §5.3.1 (7 is not used).
const (
	ReasonUnspecified          RevocationReason = 0
	ReasonKeyCompromise        RevocationReason = 1
	ReasonCACompromise         RevocationReason = 2
	ReasonAffiliationChanged   RevocationReason = 3
	ReasonSuperseded           RevocationReason = 4
	ReasonCessationOfOperation RevocationReason = 5
	ReasonCertificateHold      RevocationReason = 6
	ReasonRemoveFromCRL        RevocationReason = 8
	ReasonPrivilegeWithdrawn   RevocationReason = 9
	ReasonAACompromise         RevocationReason = 10
)

var reasonNames = map[RevocationReason]string{
	0: "unspecified", 1: "keyCompromise", 2: "cACompromise", 3: "affiliationChanged",
	4: "superseded", 5: "cessationOfOperation", 6: "certificateHold",
	8: "removeFromCRL", 9: "privilegeWithdrawn", 10: "aACompromise",
}

func (r RevocationReason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// ParseReason accepts an RFC 5280 reason name (case as in the RFC) or code.
// certificateHold and removeFromCRL are refused: Strongroom does not suspend
// certificates, a revocation is final.
func ParseReason(s string) (RevocationReason, error) {
	for code, name := range reasonNames {
		if s == name || s == fmt.Sprint(int(code)) {
			return code.checkUsable()
		}
	}
	return 0, Errorf(KindMalformed, "unknown revocation reason %q", s)
}

// ReasonFromCode validates a numeric reason code.
func ReasonFromCode(c int) (RevocationReason, error) {
	if _, ok := reasonNames[RevocationReason(c)]; !ok {
		return 0, Errorf(KindMalformed, "unknown revocation reason code %d", c)
	}
	return RevocationReason(c).checkUsable()
}

func (r RevocationReason) checkUsable() (RevocationReason, error) {
	if r == ReasonCertificateHold || r == ReasonRemoveFromCRL {
		return 0, Errorf(KindRejected, "revocation reason %s is not supported: revocation is final", r)
	}
	return r, nil
}

// Certificate is the stored record of one certificate, from reservation on.
type Certificate struct {
	Serial    Serial
	IssuerID  string // the issuer's name in config, e.g. "intermediate"
	Profile   string
	Requester string // who asked: "apikey:<id>", "acme:<endpoint>/<account>", "console:<user>"
	// Origin is, for a renewal (Requester "renew:<serial>"), who asked
	// for the first certificate of its line; empty otherwise, and for a
	// renewal made by a node of an earlier release or whose line could
	// not be followed back.
	Origin    string
	Subject   string // subject common name, may be empty
	Names     []string
	NotBefore time.Time
	NotAfter  time.Time
	Status    CertStatus
	// TBS is the linted to-be-signed certificate recorded with the intent.
	// Storing the signed certificate clears it (DER holds the same bytes,
	// checked equal before storing): only an intent never stored has it.
	TBS []byte
	// KeyHash is KeyHash of the certificate's SubjectPublicKeyInfo,
	// recorded with the intent (a blocked key is refused there).
	KeyHash []byte
	// DER is the signed certificate, empty while reserved.
	DER              []byte
	RevokedAt        time.Time
	RevocationReason RevocationReason
	// InvalidityDate is when the key was known or suspected compromised or
	// the certificate otherwise became invalid (RFC 5280 §5.3.2); zero if
	// not given.
	InvalidityDate time.Time
	CreatedAt      time.Time
}

// Revocation is one entry of a CRL.
type Revocation struct {
	Serial         Serial
	RevokedAt      time.Time
	Reason         RevocationReason
	InvalidityDate time.Time // zero: not given
	// ChangedAt is when the status last changed: the revocation, or a
	// later raise of its reason to keyCompromise.
	ChangedAt time.Time
}
