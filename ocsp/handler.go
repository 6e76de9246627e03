package ocsp

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/server"
)

// maxRequestBytes bounds a POST body; real requests are a few hundred bytes.
const maxRequestBytes = 16 << 10

// answer is a response ready to write. Successful answers carry their
// validity for the HTTP caching headers.
type answer struct {
	der                    []byte
	thisUpdate, nextUpdate time.Time
	etag                   string
	key                    string // the cache key, when the answer may be cached
}

// ServeHTTP answers GET {prefix}/{base64 request} and POST {prefix}. Every
// OCSP outcome, including client mistakes, is HTTP 200 with the OCSP status
// in the body (RFC 6960 §4.2.1); only a wrong method gets 405.
func (r *Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var der []byte
	get := req.Method == http.MethodGet || req.Method == http.MethodHead
	var gen uint64
	switch {
	case get:
		gen = r.fast.generation()
		der = r.decodeGET(req.URL.EscapedPath())
	case req.Method == http.MethodPost:
		b, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxRequestBytes))
		if err == nil {
			der = b
		}
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		server.WriteProblem(w, server.Problem{Status: http.StatusMethodNotAllowed, Detail: "OCSP takes GET or POST"})
		return
	}
	a := r.respond(req.Context(), der)
	if get && a.etag != "" && r.keepable(req.RequestURI) {
		r.fast.put(req.RequestURI, a, r.refreshAt(a), gen)
	}
	h := w.Header()
	// Header keys below are in canonical form, so the map is written
	// directly (Header.Set would canonicalise each key again); the values
	// share one string and one slice.
	var buf [192]byte
	b := buf[:0]
	if get && a.etag != "" {
		// RFC 5019 §6.2: let HTTP caches keep the answer until we would
		// refresh it ourselves.
		maxAge := int64(r.refreshAt(a).Sub(r.now()) / time.Second)
		b = append(b, "max-age="...)
		b = strconv.AppendInt(b, max(maxAge, 0), 10)
		b = append(b, ", public, no-transform, must-revalidate"...)
		lm := len(b)
		b = appendHTTPDate(b, a.thisUpdate)
		ex := len(b)
		b = appendHTTPDate(b, a.nextUpdate)
		cl := len(b)
		b = strconv.AppendInt(b, int64(len(a.der)), 10)
		v := string(b)
		vals := [...]string{contentTypeOCSP, v[:lm], v[lm:ex], v[ex:cl], a.etag, v[cl:]}
		hv := vals[:]
		h["Content-Type"] = hv[0:1:1]
		h["Cache-Control"] = hv[1:2:2]
		h["Last-Modified"] = hv[2:3:3]
		h["Expires"] = hv[3:4:4]
		h["Etag"] = hv[4:5:5]
		if inm := req.Header["If-None-Match"]; len(inm) > 0 && strings.Contains(inm[0], a.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h["Content-Length"] = hv[5:6:6]
	} else {
		v := string(strconv.AppendInt(b, int64(len(a.der)), 10))
		vals := [...]string{contentTypeOCSP, "no-store", v}
		hv := vals[:]
		h["Content-Type"] = hv[0:1:1]
		h["Cache-Control"] = hv[1:2:2]
		h["Content-Length"] = hv[2:3:3]
	}
	w.Write(a.der)
}

const contentTypeOCSP = "application/ocsp-response"

// appendHTTPDate appends t as an HTTP date (http.TimeFormat, RFC 9110
// §5.6.7) without time.Format's layout interpretation.
func appendHTTPDate(b []byte, t time.Time) []byte {
	const days, months = "SunMonTueWedThuFriSat", "JanFebMarAprMayJunJulAugSepOctNovDec"
	t = t.UTC()
	yy, mm, dd := t.Date()
	if yy < 1000 || yy > 9999 {
		return t.AppendFormat(b, http.TimeFormat)
	}
	hh, mn, ss := t.Clock()
	wd := int(t.Weekday())
	two := func(b []byte, v int) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }
	b = append(b, days[3*wd:3*wd+3]...)
	b = append(b, ", "...)
	b = two(b, dd)
	b = append(b, ' ')
	b = append(b, months[3*(mm-1):3*mm]...)
	b = append(b, ' ')
	b = two(two(b, yy/100), yy%100)
	b = append(b, ' ')
	b = two(b, hh)
	b = append(b, ':')
	b = two(b, mn)
	b = append(b, ':')
	b = two(b, ss)
	return append(b, " GMT"...)
}

// decodeGET extracts the request from a GET path. The base64 is read from
// the escaped path, so '+', '/' and '=' survive, as do their %-escaped
// forms; base64url and missing padding are accepted too. nil means garbage.
//
// Extra slashes are accepted as Boulder does: /ocsp//<b64>, which clients
// make by appending "/" to a responder URL that ends in "/", and a
// trailing "/". The base64 of a DER request starts with 'M', so leading
// slashes are never part of it; a trailing one may be (unpadded base64),
// so it is removed only when the path does not decode with it.
// maxKeptTarget bounds the GET targets whose answers are kept by target:
// a one-certificate request (RFC 5019's) is about 100 bytes, 150 in
// base64.
const maxKeptTarget = 1024

// keepable reports whether the answer to a GET of target may be kept under
// it: the request in one plain form. decodeGET takes any number of slashes
// before it, and net/http paths of up to 1 MB, so one request could
// otherwise be kept under endlessly many targets, each as long as the
// client likes (found by a review: 300 such requests held 275 MB).
func (r *Responder) keepable(target string) bool {
	return len(target) <= maxKeptTarget && !strings.Contains(target, "?") &&
		!strings.HasPrefix(target, r.prefix+"//")
}

func (r *Responder) decodeGET(p string) []byte {
	if !strings.HasPrefix(p, r.prefix) {
		return nil
	}
	p = strings.TrimLeft(p[len(r.prefix):], "/")
	s := p
	if strings.IndexByte(p, '%') >= 0 {
		var err error
		if s, err = url.PathUnescape(p); err != nil {
			return nil
		}
	}
	if b := decodeBase64(s); b != nil || !strings.HasSuffix(s, "/") {
		return b
	}
	return decodeBase64(strings.TrimRight(s, "/"))
}

// decodeBase64 decodes s in any base64 alphabet, padded or not; nil means
// garbage.
func decodeBase64(s string) []byte {
	if s == "" {
		return nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b
		}
	}
	// Some clients turn '+' into a space on the way.
	if strings.Contains(s, " ") {
		if b, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(s, " ", "+")); err == nil {
			return b
		}
	}
	return nil
}

// respond turns request DER into an answer. It never fails: every problem
// maps to an OCSP error status.
func (r *Responder) respond(ctx context.Context, der []byte) answer {
	if len(der) == 0 {
		return answer{der: malformedResponse}
	}
	req, err := ParseRequest(der)
	if err != nil {
		return answer{der: malformedResponse}
	}
	var group []*issuer
	var kb [1 + 64 + 64]byte
	for _, id := range req.IDs {
		k := append(append(append(kb[:0], byte(id.Hash)), id.IssuerNameHash...), id.IssuerKeyHash...)
		g := r.byHash[string(k)]
		if len(g) == 0 || (group != nil && g[0] != group[0]) {
			// Not ours, or several issuers in one request: no single
			// responder certificate can sign for that.
			return answer{der: unauthorizedResponse}
		}
		group = g
	}
	iss := group[0]
	if len(group) > 1 {
		iss = r.whichIssued(ctx, group, req.IDs[0].Serial)
	}
	cacheable := len(req.IDs) == 1 && req.Nonce == nil
	var key string
	if cacheable {
		key = cacheKey(iss.id, req.IDs[0].Hash, req.IDs[0].Serial)
		if v, ok, err := r.cache.Get(ctx, key); err != nil {
			r.log.Warn("reading OCSP cache", "issuer", iss.id, "err", err)
		} else if ok {
			if a, ok := decodeCached(v); ok && r.now().Before(r.refreshAt(a)) && r.signerUsable(ctx, iss, a.der) &&
				!r.refusesCached(iss.id, req.IDs[0].Serial, a) {
				a.key = key
				return a
			}
		}
	}

	// thisUpdate is when the statuses were read, not when they were
	// signed: an answer from a read that began no later than this node
	// learnt of a revocation must say so (refusesCached).
	now := r.now().UTC().Truncate(time.Second)
	singles := make([]single, len(req.IDs))
	for i, id := range req.IDs {
		singles[i] = single{id: id, state: stateUnknown}
		c, err := r.status.CertStatus(ctx, iss.id, id.Serial)
		switch {
		case core.IsNotFound(err):
		case err != nil:
			r.failures.Warn(ctx, r.log, "reading certificate status (answered tryLater)", "issuer", iss.id, "serial", id.Serial, "err", err)
			r.unanswered[failedStatus].Add(1)
			return answer{der: tryLaterResponse}
		case c.Status == core.StatusValid:
			singles[i].state = stateGood
		case c.Status == core.StatusRevoked:
			singles[i].state, singles[i].revokedAt, singles[i].reason = stateRevoked, c.RevokedAt, c.RevocationReason
		}
		// A reserved serial was never handed out signed: unknown.
	}
	k, err := r.key(ctx, &iss.kr)
	if err != nil {
		// Every request tries again while the key is missing: logged at
		// most once per interval (counted in Unanswered).
		r.failures.Warn(ctx, r.log, "getting OCSP signing key (answered tryLater)", "issuer", iss.id, "err", err)
		r.unanswered[failedKey].Add(1)
		return answer{der: tryLaterResponse}
	}
	next := now.Add(r.validity)
	if k.cert != nil && next.After(k.notAfter) {
		next = k.notAfter
	}
	resp, err := k.sign(singles, req.Nonce, now, now, next)
	if err != nil {
		r.log.Error("signing OCSP response", "issuer", iss.id, "err", err)
		r.unanswered[failedSign].Add(1)
		r.dropFailing(&iss.kr, k)
		return answer{der: internalErrResponse}
	}
	a := answer{der: resp, thisUpdate: now, nextUpdate: next, etag: etagOf(resp)}
	// An answer for a serial this CA never issued is not kept (nor put in
	// the shared cache, Redis included): anyone can ask for endless random
	// serials, and keeping their answers for a day pushed out the real
	// ones and grew without need (found by a review). Asking again signs
	// again, as a new random serial would.
	if cacheable && singles[0].state != stateUnknown {
		a.key = key
		enc := encodeCached(a)
		if err := r.cache.Put(ctx, key, enc, next.Add(-r.refreshBefore).Sub(r.now())); err != nil {
			r.log.Warn("caching OCSP response", "issuer", iss.id, "err", err)
		}
		// The answers kept for the fast lane share the DER with the memory
		// cache instead of holding a second copy (the cache never changes
		// a value it was given).
		a.der = enc[len(enc)-len(resp):]
	}
	return a
}

// whichIssued picks, among issuers sharing a name and key (a CA certificate
// re-issued for the same key), the one that issued serial: a CertID cannot
// tell them apart. Without a match the first answers (unknown).
func (r *Responder) whichIssued(ctx context.Context, group []*issuer, serial core.Serial) *issuer {
	for _, is := range group {
		if _, err := r.status.CertStatus(ctx, is.id, serial); err == nil {
			return is
		}
	}
	return group[0]
}

func etagOf(der []byte) string {
	sum := sha256.Sum256(der)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// Cached answers are thisUpdate and nextUpdate (Unix seconds, 8 bytes
// each), the ETag's length and text, then the DER.
func encodeCached(a answer) []byte {
	b := make([]byte, 17, 17+len(a.etag)+len(a.der))
	binary.BigEndian.PutUint64(b, uint64(a.thisUpdate.Unix()))
	binary.BigEndian.PutUint64(b[8:], uint64(a.nextUpdate.Unix()))
	b[16] = byte(len(a.etag))
	b = append(b, a.etag...)
	return append(b, a.der...)
}

func decodeCached(b []byte) (answer, bool) {
	if len(b) < 17 || len(b) < 17+int(b[16]) {
		return answer{}, false
	}
	n := 17 + int(b[16])
	return answer{
		thisUpdate: time.Unix(int64(binary.BigEndian.Uint64(b)), 0),
		nextUpdate: time.Unix(int64(binary.BigEndian.Uint64(b[8:])), 0),
		etag:       string(b[17:n]),
		der:        b[n:],
	}, n < len(b)
}
