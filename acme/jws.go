package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"

	"go.step.sm/crypto/jose"

	"github.com/strongroom-pki/strongroom/storage"
)

// JWS checking (RFC 8555 §6.2–6.5). jose.ParseJWS does the parsing and the
// signature check, but it also accepts HS256, so the algorithm allow-list,
// the url and nonce headers and the jwk/kid rules are enforced here, from a
// strict decoding of the flattened form done first.

type keyMode int

const (
	kidOnly  keyMode = iota // every request of an existing account
	jwkOnly                 // newAccount, and the inner JWS of keyChange
	kidOrJWK                // revokeCert (account key, or certificate key)
)

// flatJWS is the flattened JSON serialization (RFC 7515 §7.2.2), the only
// one RFC 8555 §6.2 allows.
type flatJWS struct {
	Protected  string          `json:"protected"`
	Payload    *string         `json:"payload"`
	Signature  string          `json:"signature"`
	Header     json.RawMessage `json:"header"`
	Signatures json.RawMessage `json:"signatures"`
}

type protectedHeader struct {
	Alg   string          `json:"alg"`
	Nonce string          `json:"nonce"`
	URL   string          `json:"url"`
	KID   string          `json:"kid"`
	JWK   json.RawMessage `json:"jwk"`
	Crit  json.RawMessage `json:"crit"`
}

// parseFlat decodes the outer structure and protected header without
// trusting anything in them. encoding/json matches member names without
// regard to case and the JOSE library does not, so a member name that
// differs from a JWS one only in case is refused: otherwise a second,
// unsigned "Protected" could pass the url and nonce checks here while the
// signature is checked on the original "protected" (a replay to any URL).
func parseFlat(body []byte) (*flatJWS, *protectedHeader, error) {
	if err := exactNames(body, "protected", "payload", "signature", "header", "signatures"); err != nil {
		return nil, nil, malformed("request body is not a flattened JWS object")
	}
	var f flatJWS
	if err := json.Unmarshal(body, &f); err != nil {
		return nil, nil, malformed("request body is not a flattened JWS object")
	}
	if len(f.Signatures) > 0 {
		return nil, nil, malformed("JWS must use the flattened serialization with one signature")
	}
	if len(f.Header) > 0 && string(f.Header) != "null" {
		return nil, nil, malformed("JWS must not have an unprotected header")
	}
	// An empty signature is left to the algorithm check: "none" has one.
	if f.Protected == "" || f.Payload == nil {
		return nil, nil, malformed("JWS needs protected, payload and signature")
	}
	raw, err := base64.RawURLEncoding.DecodeString(f.Protected)
	if err != nil {
		return nil, nil, malformed("JWS protected header is not base64url")
	}
	if err := exactNames(raw, "alg", "nonce", "url", "kid", "jwk", "crit"); err != nil {
		return nil, nil, malformed("JWS protected header is not a JSON object")
	}
	var h protectedHeader
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, nil, malformed("JWS protected header is not a JSON object")
	}
	// No extension ACME uses is critical, so a JWS naming any is one this
	// server must refuse (RFC 7515 §4.1.11); it said "signature invalid".
	if len(h.Crit) > 0 {
		return nil, nil, malformed("JWS protected header names critical extensions (crit); this server supports none")
	}
	return &f, &h, nil
}

// exactNames fails if the JSON object b has a member whose name equals one
// of names except in case.
func exactNames(b []byte, names ...string) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		return err
	}
	for k := range members {
		for _, n := range names {
			if k != n && strings.EqualFold(k, n) {
				return errors.New("member " + quote(k) + " differs from " + quote(n) + " only in case")
			}
		}
	}
	return nil
}

// canonical is the JWS exactly as parseFlat read it, for the JOSE library
// to verify: whatever the body held besides, the signature is checked on
// the protected header and payload that were checked here.
func (f *flatJWS) canonical() string {
	b, _ := json.Marshal(struct {
		Protected string `json:"protected"`
		Payload   string `json:"payload"`
		Signature string `json:"signature"`
	}{f.Protected, *f.Payload, f.Signature})
	return string(b)
}

// request is a verified POST.
type request struct {
	url     string
	payload []byte
	key     *jose.JSONWebKey     // the key that signed
	account *storage.ACMEAccount // nil when signed with a jwk
}

func (r *request) postAsGet() bool { return len(r.payload) == 0 }

// verify reads and checks a POST body. It redeems the nonce last, after
// the signature, so a forged request cannot burn a client's nonce.
func (s *Server) verify(ctx context.Context, w http.ResponseWriter, r *http.Request, mode keyMode) (*request, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/jose+json" {
		p := malformed("Content-Type must be application/jose+json")
		p.Status = http.StatusUnsupportedMediaType
		return nil, p
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			p := malformed("request body is too large")
			p.Status = http.StatusRequestEntityTooLarge
			return nil, p
		}
		return nil, malformed("reading request body failed")
	}
	flat, hdr, err := parseFlat(body)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(allowedAlgs, hdr.Alg) {
		p := prob("badSignatureAlgorithm", http.StatusBadRequest, "JWS algorithm "+quote(hdr.Alg)+" is not allowed")
		p.Algorithms = allowedAlgs
		return nil, p
	}
	reqURL := s.requestURL(r)
	if hdr.URL == "" {
		return nil, malformed("JWS protected header has no url")
	}
	if hdr.URL != reqURL {
		return nil, unauthorized("JWS url header does not match the request URL")
	}
	if hdr.Nonce == "" {
		return nil, prob("badNonce", http.StatusBadRequest, "JWS protected header has no nonce")
	}
	hasJWK, hasKID := len(hdr.JWK) > 0 && string(hdr.JWK) != "null", hdr.KID != ""
	switch {
	case hasJWK == hasKID:
		return nil, malformed("JWS must have exactly one of jwk and kid")
	case mode == jwkOnly && hasKID:
		return nil, malformed("this request must be signed with a jwk, not a kid")
	case mode == kidOnly && hasJWK:
		return nil, malformed("this request must be signed with the account key (kid), not a jwk")
	}
	jws, err := jose.ParseJWS(flat.canonical())
	if err != nil || len(jws.Signatures) != 1 {
		return nil, malformed("JWS cannot be parsed")
	}
	req := &request{url: reqURL}
	if hasJWK {
		req.key = jws.Signatures[0].Protected.JSONWebKey
		if req.key == nil {
			return nil, malformed("JWS jwk cannot be parsed")
		}
		pub := req.key.Public()
		req.key = &pub
	} else {
		acct, err := s.accountByKID(ctx, hdr.KID)
		if err != nil {
			return nil, err
		}
		if req.key, err = parseJWK(acct.JWK); err != nil {
			return nil, err
		}
		req.account = acct
	}
	if err := checkKey(req.key, hdr.Alg); err != nil {
		return nil, err
	}
	payload, err := jws.Verify(req.key)
	if err != nil {
		return nil, malformed("JWS signature is invalid")
	}
	ok, err := s.o.Nonces.Redeem(ctx, hdr.Nonce)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, prob("badNonce", http.StatusBadRequest, "JWS nonce is unknown, expired or already used")
	}
	req.payload = payload
	return req, nil
}

// accountByKID resolves a kid (the account URL) to a valid account.
func (s *Server) accountByKID(ctx context.Context, kid string) (*storage.ACMEAccount, error) {
	prefix := s.url("account") + "/"
	id, ok := strings.CutPrefix(kid, prefix)
	if !ok || id == "" || strings.Contains(id, "/") {
		return nil, prob("accountDoesNotExist", http.StatusBadRequest, "kid is not an account URL of this endpoint")
	}
	acct, err := s.o.Store.ACMEAccount(ctx, s.o.Name, id)
	if isNotFound(err) {
		return nil, prob("accountDoesNotExist", http.StatusBadRequest, "account does not exist")
	}
	if err != nil {
		return nil, err
	}
	if acct.Status != "valid" {
		return nil, unauthorized("account is " + acct.Status)
	}
	return acct, nil
}

func parseJWK(b []byte) (*jose.JSONWebKey, error) {
	var k jose.JSONWebKey
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, malformed("JWK cannot be parsed")
	}
	return &k, nil
}

// checkKey accepts the account key types of the allow-list, with the
// algorithm that matches the key.
func checkKey(k *jose.JSONWebKey, alg string) error {
	if k == nil || !k.Valid() || jose.IsSymmetric(k) {
		return prob("badPublicKey", http.StatusBadRequest, "JWK is not a usable public key")
	}
	want := ""
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		if n := pub.N.BitLen(); n < 2048 || n > 8192 {
			return prob("badPublicKey", http.StatusBadRequest, "RSA keys must be 2048 to 8192 bits")
		}
		want = "RS256"
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			want = "ES256"
		case elliptic.P384():
			want = "ES384"
		default:
			return prob("badPublicKey", http.StatusBadRequest, "EC keys must use P-256 or P-384")
		}
	case ed25519.PublicKey:
		want = "EdDSA"
	default:
		return prob("badPublicKey", http.StatusBadRequest, "unsupported key type")
	}
	if alg != want {
		p := prob("badSignatureAlgorithm", http.StatusBadRequest, "JWS algorithm "+quote(alg)+" does not match the key (want "+want+")")
		p.Algorithms = allowedAlgs
		return p
	}
	return nil
}

// thumbprint is the RFC 7638 SHA-256 thumbprint, base64url.
func thumbprint(k *jose.JSONWebKey) (string, error) {
	t, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", malformed("cannot compute the JWK thumbprint")
	}
	return base64.RawURLEncoding.EncodeToString(t), nil
}

// requestURL is the external URL the client addressed: the base URL plus
// the path below it, whether or not the mount stripped the prefix, and the
// query (the orders list's next page is .../orders?cursor=…, and §6.4 asks
// for the whole URL the client requested).
func (s *Server) requestURL(r *http.Request) string {
	u := s.base.String() + s.relPath(r)
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	return u
}

func (s *Server) relPath(r *http.Request) string {
	p := r.URL.Path
	if rest, ok := strings.CutPrefix(p, s.base.Path); ok && s.base.Path != "" && (rest == "" || rest[0] == '/') {
		p = rest
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
