package core

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
)

// SerialBytes is the length of a serial number's CSPRNG output: 128 bits, twice
// the 64 bits the CA/Browser Forum Baseline Requirements (§7.1) ask for.
const SerialBytes = 16

// Serial is a certificate serial number in canonical form: lowercase hex of
// the positive integer, with no leading zeros. It is the key under which every
// certificate, revocation and OCSP answer is stored.
type Serial string

// NewSerial draws a fresh 128-bit random serial. The top bit is cleared so
// the DER INTEGER stays 16 bytes, and a zero value is never returned.
func NewSerial() (Serial, error) {
	b := make([]byte, SerialBytes)
	for {
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("reading random serial: %w", err)
		}
		b[0] &= 0x7f
		n := new(big.Int).SetBytes(b)
		if n.Sign() > 0 {
			return SerialFromBig(n), nil
		}
	}
}

// SerialFromBig converts a positive integer to a Serial.
func SerialFromBig(n *big.Int) Serial { return Serial(n.Text(16)) }

// ParseSerial accepts hex, optionally with colons or a 0x prefix, and returns
// the canonical Serial.
func ParseSerial(s string) (Serial, error) {
	s = strings.TrimPrefix(strings.ToLower(strings.ReplaceAll(s, ":", "")), "0x")
	if s == "" || len(s) > 40 {
		return "", Errorf(KindMalformed, "serial %q is not 1-20 bytes of hex", s)
	}
	if _, err := hex.DecodeString(strings.Repeat("0", len(s)%2) + s); err != nil {
		return "", Errorf(KindMalformed, "serial %q is not hex", s)
	}
	n, _ := new(big.Int).SetString(s, 16)
	if n.Sign() <= 0 {
		return "", Errorf(KindMalformed, "serial must be positive")
	}
	return SerialFromBig(n), nil
}

// Big returns the serial as an integer (nil if the Serial is not valid hex).
func (s Serial) Big() *big.Int {
	n, ok := new(big.Int).SetString(string(s), 16)
	if !ok {
		return nil
	}
	return n
}

func (s Serial) String() string { return string(s) }
