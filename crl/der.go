package crl

import (
	"fmt"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// DER tags used by the encoder (X.690 §8).
const (
	tagInteger         = 0x02
	tagBitString       = 0x03
	tagOctetString     = 0x04
	tagNull            = 0x05
	tagOID             = 0x06
	tagEnumerated      = 0x0a
	tagUTCTime         = 0x17
	tagGeneralizedTime = 0x18
	tagSequence        = 0x30
	tagBoolean         = 0x01
)

// lenLen is the number of bytes the DER length of n occupies.
func lenLen(n int) int {
	switch {
	case n < 0x80:
		return 1
	case n <= 0xff:
		return 2
	case n <= 0xffff:
		return 3
	case n <= 0xffffff:
		return 4
	default:
		return 5
	}
}

// hdrLen is the size of a tag and length header for content of n bytes.
func hdrLen(n int) int { return 1 + lenLen(n) }

// appendHdr appends a tag and the DER length n.
func appendHdr(b []byte, tag byte, n int) []byte {
	b = append(b, tag)
	switch {
	case n < 0x80:
		return append(b, byte(n))
	case n <= 0xff:
		return append(b, 0x81, byte(n))
	case n <= 0xffff:
		return append(b, 0x82, byte(n>>8), byte(n))
	case n <= 0xffffff:
		return append(b, 0x83, byte(n>>16), byte(n>>8), byte(n))
	default:
		return append(b, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// appendTLV appends a complete element.
func appendTLV(b []byte, tag byte, content []byte) []byte {
	return append(appendHdr(b, tag, len(content)), content...)
}

// appendInt64 appends a DER INTEGER for a non-negative v.
func appendInt64(b []byte, v int64) []byte {
	var tmp [9]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte(v)
		v >>= 8
		if v == 0 {
			break
		}
	}
	if tmp[i]&0x80 != 0 {
		i--
		tmp[i] = 0
	}
	return appendTLV(b, tagInteger, tmp[i:])
}

// serialBytes decodes a canonical hex serial into the content octets of a
// DER INTEGER (minimal, with a leading zero when the top bit is set). dst
// must have room for 21 bytes; the used prefix is returned.
func serialBytes(dst *[21]byte, s core.Serial) ([]byte, error) {
	n := len(s)
	if n == 0 || n > 40 {
		return nil, fmt.Errorf("serial %q is not 1-20 bytes of hex", string(s))
	}
	// Decode right to left so odd lengths need no padding.
	var raw [20]byte
	j := len(raw)
	for i := n; i > 0; i -= 2 {
		lo, ok1 := unhex(s[i-1])
		hi, ok2 := byte(0), true
		if i >= 2 {
			hi, ok2 = unhex(s[i-2])
		}
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("serial %q is not hex", string(s))
		}
		j--
		raw[j] = hi<<4 | lo
	}
	v := raw[j:]
	for len(v) > 1 && v[0] == 0 {
		v = v[1:]
	}
	if v[0] == 0 {
		return nil, fmt.Errorf("serial %q is not positive", string(s))
	}
	k := 0
	if v[0]&0x80 != 0 {
		dst[0] = 0
		k = 1
	}
	k += copy(dst[k:], v)
	return dst[:k], nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// timeLen is the encoded size of t as RFC 5280 §4.1.2.5 requires: UTCTime
// for 1950-2049, GeneralizedTime otherwise.
func timeLen(t time.Time) int {
	if y := t.UTC().Year(); y >= 1950 && y < 2050 {
		return 15
	}
	return 17
}

// appendTime appends t (in UTC, to the second) as UTCTime or GeneralizedTime.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	if y >= 1950 && y < 2050 {
		b = append(b, tagUTCTime, 13)
		b = append2(b, y%100)
	} else {
		b = appendGeneralized(b, y)
	}
	b = append2(b, int(mo))
	b = append2(b, d)
	b = append2(b, h)
	b = append2(b, mi)
	b = append2(b, s)
	return append(b, 'Z')
}

// appendGeneralizedTime always uses GeneralizedTime (the invalidityDate
// entry extension requires it, RFC 5280 §5.3.2).
func appendGeneralizedTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	b = appendGeneralized(b, y)
	b = append2(b, int(mo))
	b = append2(b, d)
	b = append2(b, h)
	b = append2(b, mi)
	b = append2(b, s)
	return append(b, 'Z')
}

func appendGeneralized(b []byte, y int) []byte {
	b = append(b, tagGeneralizedTime, 15)
	b = append2(b, (y/100)%100)
	return append2(b, y%100)
}

func append2(b []byte, v int) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }
