package hsm

import (
	"crypto"
	"fmt"
	"slices"
	"strings"
	"time"
)

// KeyType names an algorithm and size.
type KeyType string

const (
	RSA2048    KeyType = "rsa2048"
	RSA3072    KeyType = "rsa3072"
	RSA4096    KeyType = "rsa4096"
	P256       KeyType = "p256"
	P384       KeyType = "p384"
	P521       KeyType = "p521"
	Ed25519    KeyType = "ed25519"
	AES128     KeyType = "aes128"
	AES256     KeyType = "aes256"
	HMACSHA256 KeyType = "hmac-sha256"
)

// KeyTypes lists every supported type.
func KeyTypes() []KeyType {
	return []KeyType{RSA2048, RSA3072, RSA4096, P256, P384, P521, Ed25519, AES128, AES256, HMACSHA256}
}

func (t KeyType) isRSA() bool { return t == RSA2048 || t == RSA3072 || t == RSA4096 }
func (t KeyType) isEC() bool  { return t == P256 || t == P384 || t == P521 }
func (t KeyType) isAES() bool { return t == AES128 || t == AES256 }

// asymmetric reports whether the type is a key pair.
func (t KeyType) asymmetric() bool { return t.isRSA() || t.isEC() || t == Ed25519 }

func (t KeyType) rsaBits() int {
	switch t {
	case RSA2048:
		return 2048
	case RSA3072:
		return 3072
	case RSA4096:
		return 4096
	}
	return 0
}

// secretLen is the raw secret length of symmetric types as generated.
func (t KeyType) secretLen() int {
	switch t {
	case AES128:
		return 16
	case AES256, HMACSHA256:
		return 32
	}
	return 0
}

// secretLens is the range of raw secret lengths a symmetric type takes
// when imported: an AES key is its size exactly; an HMAC-SHA256 key 32 to
// 64 bytes (RFC 7518 §3.2: at least the hash's size; up to its block
// size, as AWS KMS takes). Generated secrets are secretLen.
func (t KeyType) secretLens() (lo, hi int) {
	if t == HMACSHA256 {
		return 32, 64
	}
	return t.secretLen(), t.secretLen()
}

// secretSize says what secretLens allows, for errors.
func (t KeyType) secretSize() string {
	if lo, hi := t.secretLens(); lo != hi {
		return fmt.Sprintf("%d to %d bytes", lo, hi)
	}
	return fmt.Sprintf("%d bytes", t.secretLen())
}

// Usage is a set of permitted operations.
type Usage uint32

const (
	UsageSign Usage = 1 << iota
	UsageVerify
	UsageEncrypt
	UsageDecrypt
	UsageWrap
	UsageUnwrap
	UsageDerive
)

var usageNames = []struct {
	u Usage
	n string
}{{UsageSign, "sign"}, {UsageVerify, "verify"}, {UsageEncrypt, "encrypt"}, {UsageDecrypt, "decrypt"},
	{UsageWrap, "wrap"}, {UsageUnwrap, "unwrap"}, {UsageDerive, "derive"}}

func (u Usage) String() string {
	var s []string
	for _, n := range usageNames {
		if u&n.u != 0 {
			s = append(s, n.n)
		}
	}
	return strings.Join(s, ",")
}

// ParseUsage reads a comma-separated list such as "sign,verify".
func ParseUsage(s string) (Usage, error) {
	var u Usage
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		i := slices.IndexFunc(usageNames, func(n struct {
			u Usage
			n string
		}) bool {
			return n.n == p
		})
		if i < 0 {
			return 0, errf(ErrInvalid, "unknown key usage %q", p)
		}
		u |= usageNames[i].u
	}
	return u, nil
}

// allowedUsage is what each type can do; defaultUsage is used when a KeySpec
// leaves Usage zero.
func allowedUsage(t KeyType) Usage {
	switch {
	case t.isRSA():
		return UsageSign | UsageVerify | UsageEncrypt | UsageDecrypt | UsageWrap | UsageUnwrap
	case t.isEC(), t == Ed25519, t == HMACSHA256:
		return UsageSign | UsageVerify
	case t.isAES():
		return UsageEncrypt | UsageDecrypt | UsageWrap | UsageUnwrap | UsageDerive
	}
	return 0
}

func defaultUsage(t KeyType) Usage {
	if t.isAES() {
		return UsageEncrypt | UsageDecrypt | UsageWrap | UsageUnwrap
	}
	return UsageSign | UsageVerify
}

// KeySpec describes a key to generate or import. Extractable defaults to
// false and can later only be turned off.
type KeySpec struct {
	Type        KeyType
	Label       string
	Usage       Usage // zero → sign,verify for key pairs and HMAC; encrypt,decrypt,wrap,unwrap for AES
	Extractable bool
	SharedWith  []string // crypto users who may use (not manage) the key
	// Version is the key's first version: an imported key keeps the one
	// it had where it was exported, so what that version encrypted or
	// signed there opens or verifies here. Zero: 1.
	Version int
}

// KeyInfo is what a session may learn about a key.
type KeyInfo struct {
	ID          string
	Label       string
	Type        KeyType
	Usage       Usage
	Extractable bool
	Owner       string
	SharedWith  []string
	Version     int // current version
	Versions    int // how many versions it holds (an imported key may start above 1)
	Created     time.Time
	Uses        uint64           // all versions, persisted plus not yet summarised
	PublicKey   crypto.PublicKey // current version; nil for symmetric keys
}

// Role is an HSM user's role.
type Role string

const (
	RoleOfficer Role = "officer"
	RoleUser    Role = "user"
	RoleAuditor Role = "auditor"
)

func (r Role) valid() bool { return r == RoleOfficer || r == RoleUser || r == RoleAuditor }

// UserInfo is a user as an officer sees it (no PIN hash).
type UserInfo struct {
	Name     string
	Role     Role
	Locked   bool
	Failures int
	Created  time.Time
	// Tampered: the user's row was altered outside the HSM (its MAC does
	// not verify, or it has none once the rows are authenticated); it
	// cannot log in, and Role is only what the row says.
	Tampered bool
	// Missing: the authenticated audit log records the user as made and
	// not deleted, but it has no row (missing.go); only Name and Role
	// (from its creation entry) are set.
	Missing bool
}
