package core

import (
	"crypto/sha256"
	"crypto/x509"
)

// KeyHash identifies a public key: the SHA-256 of its DER
// SubjectPublicKeyInfo, as Boulder's blockedKeys table keys it. Blocked
// keys and the certificates that carry a key are looked up by it.
func KeyHash(spki []byte) []byte {
	h := sha256.Sum256(spki)
	return h[:]
}

// ErrKeyBlocked refuses a certificate for a blocked key: one a certificate
// was revoked for with reason keyCompromise, or an operator blocked.
var ErrKeyBlocked = &Error{Kind: KindBadCSR,
	Detail: "the CSR's public key is blocked (reported compromised); generate a new key"}

// IsCA reports whether der is a CA certificate (basicConstraints cA).
func IsCA(der []byte) bool {
	c, err := x509.ParseCertificate(der)
	return err == nil && c.IsCA
}
