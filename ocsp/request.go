package ocsp

import (
	"crypto"
	"errors"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/strongroom-pki/strongroom/core"
)

// maxRequests bounds how many certificates one request may ask about.
const maxRequests = 16

// maxNonce is the longest nonce a request may carry (RFC 9654 §2.1, which
// obsoletes RFC 8954 and raised its limit of 32 octets to 128).
const maxNonce = 128

// CertID identifies one certificate in a request (RFC 6960 §4.1.1).
type CertID struct {
	Hash           crypto.Hash // SHA-1, SHA-256, SHA-384 or SHA-512
	IssuerNameHash []byte
	IssuerKeyHash  []byte
	Serial         core.Serial
}

// Request is a parsed OCSP request: the certificates asked about and the
// raw nonce extension value, if any.
type Request struct {
	IDs []CertID
	// Nonce is the extnValue of the id-pkix-ocsp-nonce extension, echoed
	// unchanged in the response (RFC 6960 §4.4.1).
	Nonce []byte
}

var (
	errMalformed = errors.New("malformed OCSP request")

	oidNonce = []byte{0x2b, 6, 1, 5, 5, 7, 48, 1, 2} // 1.3.6.1.5.5.7.48.1.2
	hashOIDs = []struct {
		oid  []byte
		hash crypto.Hash
	}{
		{[]byte{0x2b, 14, 3, 2, 26}, crypto.SHA1},
		{[]byte{0x60, 0x86, 0x48, 1, 101, 3, 4, 2, 1}, crypto.SHA256},
		{[]byte{0x60, 0x86, 0x48, 1, 101, 3, 4, 2, 2}, crypto.SHA384},
		{[]byte{0x60, 0x86, 0x48, 1, 101, 3, 4, 2, 3}, crypto.SHA512},
	}
)

// ParseRequest parses a DER OCSPRequest. It accepts up to 16 certificate
// IDs; request signatures are ignored (RFC 6960 §4.1.2 makes them
// optional and we serve every requester). Any error means
// malformedRequest.
func ParseRequest(der []byte) (*Request, error) {
	in := cryptobyte.String(der)
	var req, tbs cryptobyte.String
	if !in.ReadASN1(&req, cbasn1.SEQUENCE) || !in.Empty() ||
		!req.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil, errMalformed
	}
	// optionalSignature [0] EXPLICIT, ignored.
	if !req.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || !req.Empty() {
		return nil, errMalformed
	}
	// version [0] EXPLICIT DEFAULT v1, requestorName [1] EXPLICIT.
	var version cryptobyte.String
	var hasVersion bool
	if !tbs.ReadOptionalASN1(&version, &hasVersion, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, errMalformed
	}
	if hasVersion {
		var v int
		if !version.ReadASN1Integer(&v) || v != 0 || !version.Empty() {
			return nil, errMalformed
		}
	}
	if !tbs.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific()) {
		return nil, errMalformed
	}
	var list cryptobyte.String
	if !tbs.ReadASN1(&list, cbasn1.SEQUENCE) || list.Empty() {
		return nil, errMalformed
	}
	r := &Request{}
	for !list.Empty() {
		if len(r.IDs) == maxRequests {
			return nil, errMalformed
		}
		var one cryptobyte.String
		if !list.ReadASN1(&one, cbasn1.SEQUENCE) {
			return nil, errMalformed
		}
		id, err := parseCertID(&one)
		if err != nil {
			return nil, err
		}
		// singleRequestExtensions [0] EXPLICIT, none we act on.
		if !one.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || !one.Empty() {
			return nil, errMalformed
		}
		r.IDs = append(r.IDs, id)
	}
	var exts cryptobyte.String
	var hasExts bool
	if !tbs.ReadOptionalASN1(&exts, &hasExts, cbasn1.Tag(2).Constructed().ContextSpecific()) || !tbs.Empty() {
		return nil, errMalformed
	}
	if hasExts {
		nonce, err := parseNonce(exts)
		if err != nil {
			return nil, err
		}
		r.Nonce = nonce
	}
	return r, nil
}

func parseCertID(s *cryptobyte.String) (CertID, error) {
	var id CertID
	var certID, alg, oid cryptobyte.String
	if !s.ReadASN1(&certID, cbasn1.SEQUENCE) || !certID.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1(&oid, cbasn1.OBJECT_IDENTIFIER) {
		return id, errMalformed
	}
	// Parameters: absent or NULL.
	if !alg.Empty() {
		var null cryptobyte.String
		if !alg.ReadASN1(&null, cbasn1.NULL) || !null.Empty() || !alg.Empty() {
			return id, errMalformed
		}
	}
	for _, h := range hashOIDs {
		if string(oid) == string(h.oid) {
			id.Hash = h.hash
		}
	}
	if id.Hash == 0 {
		return id, errMalformed
	}
	var nameHash, keyHash, serialDER cryptobyte.String
	if !certID.ReadASN1(&nameHash, cbasn1.OCTET_STRING) || !certID.ReadASN1(&keyHash, cbasn1.OCTET_STRING) ||
		!certID.ReadASN1(&serialDER, cbasn1.INTEGER) || !certID.Empty() {
		return id, errMalformed
	}
	serial, ok := serialFromDER(serialDER)
	if !ok || len(nameHash) != id.Hash.Size() || len(keyHash) != id.Hash.Size() {
		return id, errMalformed
	}
	id.IssuerNameHash, id.IssuerKeyHash = nameHash, keyHash
	id.Serial = serial
	return id, nil
}

// serialFromDER turns the content octets of a DER INTEGER into the
// canonical core.Serial (what core.SerialFromBig gives), without a
// big.Int. It refuses what ReadASN1Integer refuses (empty, not minimally
// encoded) and what no certificate of ours carries: zero, negative, more
// than 160 bits.
func serialFromDER(b []byte) (core.Serial, bool) {
	var buf [40]byte
	h, ok := serialHex(&buf, b)
	return core.Serial(h), ok
}

// serialHex is serialFromDER writing the hex into buf, for a map lookup
// that allocates nothing.
func serialHex(buf *[40]byte, b []byte) ([]byte, bool) {
	if len(b) == 0 || b[0]&0x80 != 0 ||
		len(b) > 1 && (b[0] == 0 && b[1]&0x80 == 0 || b[0] == 0xff && b[1]&0x80 != 0) {
		return nil, false
	}
	if b[0] == 0 {
		b = b[1:] // the sign octet of a positive number with its top bit set
	}
	if len(b) == 0 || len(b) > 20 {
		return nil, false
	}
	const digits = "0123456789abcdef"
	for i, c := range b {
		buf[2*i], buf[2*i+1] = digits[c>>4], digits[c&0xf]
	}
	h := buf[:2*len(b)]
	if h[0] == '0' {
		h = h[1:]
	}
	return h, true
}

// parseNonce returns the nonce extension's value from requestExtensions.
func parseNonce(exts cryptobyte.String) ([]byte, error) {
	var seq cryptobyte.String
	if !exts.ReadASN1(&seq, cbasn1.SEQUENCE) || !exts.Empty() {
		return nil, errMalformed
	}
	var nonce []byte
	for !seq.Empty() {
		var ext, oid, val cryptobyte.String
		var critical bool
		// critical BOOLEAN DEFAULT FALSE is untagged: cryptobyte's
		// ReadOptionalASN1Boolean reads an explicitly tagged one and
		// refused every extension marked critical.
		if !seq.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1(&oid, cbasn1.OBJECT_IDENTIFIER) ||
			ext.PeekASN1Tag(cbasn1.BOOLEAN) && !ext.ReadASN1Boolean(&critical) ||
			!ext.ReadASN1(&val, cbasn1.OCTET_STRING) || !ext.Empty() {
			return nil, errMalformed
		}
		if string(oid) == string(oidNonce) {
			// A responder MUST answer malformedRequest to a nonce of 0
			// octets or more than maxNonce (RFC 9654 §2.1). extnValue
			// holds the nonce as a DER OCTET STRING; older clients (RFC
			// 2560) put the bare bytes there, which count as they are.
			n, v := val, val
			var inner cryptobyte.String
			if v.ReadASN1(&inner, cbasn1.OCTET_STRING) && v.Empty() {
				n = inner
			}
			if len(n) == 0 || len(n) > maxNonce {
				return nil, errMalformed
			}
			nonce = val
		}
	}
	return nonce, nil
}
