package hsm

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// AES key wrap: RFC 3394 (KW) for inputs that are a multiple of 8 bytes and
// at least 16, RFC 5649 (KWP, with padding) for anything else. Unwrap tells
// them apart by the initial value.

// How a key is wrapped for export (ExportWrappedAlg), by the names AWS KMS
// uses for its wrapping algorithms.
const (
	WrapRSAAES = "RSA_AES_KEY_WRAP_SHA_256" // RSA-AES key wrap (rsawrap.go)
	WrapAESKW  = "AES_KEY_WRAP"             // RFC 3394
	WrapAESKWP = "AES_KEY_WRAP_PAD"         // RFC 5649
)

// kwAlgorithm is how kwWrap wraps n bytes: KW for a multiple of 8 of at
// least 16, KWP for anything else.
func kwAlgorithm(n int) string {
	if n%8 == 0 && n >= 16 {
		return WrapAESKW
	}
	return WrapAESKWP
}

var kwIV = [8]byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}

const kwpIVPrefix = 0xA65959A6

var errUnwrap = errors.New("AES key unwrap: integrity check failed")

func kwWrap(b cipher.Block, p []byte) []byte {
	if kwAlgorithm(len(p)) == WrapAESKW {
		return kwCore(b, kwIV, p)
	}
	return kwpWrap(b, p)
}

// kwpWrap is RFC 5649 key wrap with padding, whatever the length (as
// CKM_AES_KEY_WRAP_KWP and openssl's id-aes256-wrap-pad do).
func kwpWrap(b cipher.Block, p []byte) []byte {
	var iv [8]byte
	binary.BigEndian.PutUint32(iv[:4], kwpIVPrefix)
	binary.BigEndian.PutUint32(iv[4:], uint32(len(p)))
	padded := make([]byte, (len(p)+7)/8*8)
	copy(padded, p)
	if len(padded) == 8 {
		// RFC 5649 §4.1: a single block is encrypted once with AES-ECB.
		out := make([]byte, 16)
		copy(out, iv[:])
		copy(out[8:], padded)
		b.Encrypt(out, out)
		return out
	}
	return kwCore(b, iv, padded)
}

// kwCore is the RFC 3394 §2.2.1 wrapping process (index-based form).
func kwCore(b cipher.Block, iv [8]byte, p []byte) []byte {
	n := len(p) / 8
	out := make([]byte, 8+len(p))
	copy(out[8:], p)
	var a [8]byte = iv
	var buf [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(buf[:8], a[:])
			copy(buf[8:], out[8*i:8*i+8])
			b.Encrypt(buf[:], buf[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(buf[:8])^t)
			copy(out[8*i:], buf[8:])
		}
	}
	copy(out, a[:])
	return out
}

// kwUnwrapCore is RFC 3394 §2.2.2; it returns the recovered IV and data.
func kwUnwrapCore(b cipher.Block, c []byte) ([8]byte, []byte) {
	n := len(c)/8 - 1
	var a [8]byte
	copy(a[:], c[:8])
	r := make([]byte, 8*n)
	copy(r, c[8:])
	var buf [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(buf[:8], binary.BigEndian.Uint64(a[:])^t)
			copy(buf[8:], r[8*(i-1):8*i])
			b.Decrypt(buf[:], buf[:])
			copy(a[:], buf[:8])
			copy(r[8*(i-1):], buf[8:])
		}
	}
	return a, r
}

func kwUnwrap(b cipher.Block, c []byte) ([]byte, error) {
	if len(c)%8 != 0 || len(c) < 16 {
		return nil, errors.New("AES key unwrap: input must be a multiple of 8 bytes and at least 16")
	}
	var a [8]byte
	var r []byte
	if len(c) == 16 {
		buf := make([]byte, 16)
		b.Decrypt(buf, c)
		copy(a[:], buf[:8])
		r = buf[8:]
	} else {
		a, r = kwUnwrapCore(b, c)
	}
	if subtle.ConstantTimeCompare(a[:], kwIV[:]) == 1 && len(c) > 16 {
		return r, nil
	}
	if binary.BigEndian.Uint32(a[:4]) != kwpIVPrefix {
		return nil, errUnwrap
	}
	mli := int(binary.BigEndian.Uint32(a[4:]))
	if mli > len(r) || mli <= len(r)-8 {
		return nil, errUnwrap
	}
	var pad byte
	for _, x := range r[mli:] {
		pad |= x
	}
	if pad != 0 {
		return nil, errUnwrap
	}
	return r[:mli], nil
}
