package crl

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/strongroom-pki/strongroom/server"
)

// notFound answers an unknown path or issuer as the rest of the plain
// listener does: an RFC 9457 problem document.
func notFound(w http.ResponseWriter, path string) {
	server.WriteProblem(w, server.Problem{Status: http.StatusNotFound, Detail: "no such resource: " + path})
}

// ServeHTTP serves GET and HEAD of /crl/{issuer}.crl (the full CRL),
// /crl/{issuer}-delta.crl and /issuers/{issuer}.crt (the issuer certificate,
// for AIA caIssuers), all DER. Unknown paths and issuers are 404; an issuer
// whose first CRL is not built yet is 503 with Retry-After.
func (b *Builder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		server.WriteProblem(w, server.Problem{Status: http.StatusMethodNotAllowed, Detail: r.Method + " is not allowed here (GET or HEAD)"})
		return
	}
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/issuers/") && strings.HasSuffix(p, ".crt"):
		s := b.issuers[strings.TrimSuffix(strings.TrimPrefix(p, "/issuers/"), ".crt")]
		if s == nil {
			notFound(w, p)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-cert")
		w.Header().Set("Cache-Control", "max-age=86400, public")
		w.Header().Set("Content-Length", strconv.Itoa(len(s.Cert.Raw)))
		w.Write(s.Cert.Raw)
		return
	case strings.HasPrefix(p, "/crl/") && strings.HasSuffix(p, ".crl"):
	default:
		notFound(w, p)
		return
	}
	name := strings.TrimSuffix(strings.TrimPrefix(p, "/crl/"), ".crl")
	delta := false
	if b.issuers[name] == nil && strings.HasSuffix(name, "-delta") {
		name, delta = strings.TrimSuffix(name, "-delta"), true
	}
	if b.issuers[name] == nil {
		notFound(w, p)
		return
	}
	c := b.Current(name, delta)
	if c == nil {
		w.Header().Set("Retry-After", "5")
		server.WriteProblem(w, server.Problem{Status: http.StatusServiceUnavailable, Detail: "the CRL of issuer " + name + " is not built yet"})
		return
	}
	h := w.Header()
	etag := `"` + strconv.FormatInt(c.Number, 10) + `"`
	maxAge := min(b.maxAge, c.NextUpdate.Sub(b.now()))
	h.Set("Content-Type", "application/pkix-crl")
	h.Set("Cache-Control", "max-age="+strconv.FormatInt(max(int64(maxAge/time.Second), 0), 10)+", public, no-transform")
	h.Set("Last-Modified", c.ThisUpdate.UTC().Format(http.TimeFormat))
	h.Set("Expires", c.NextUpdate.UTC().Format(http.TimeFormat))
	h.Set("ETag", etag)
	if notModified(r, etag, c.ThisUpdate) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(c.DER)))
	w.Write(c.DER)
}

// notModified reports whether the client's copy is current (RFC 9110
// §13.1): If-None-Match names this CRL's ETag, or, with no If-None-Match,
// If-Modified-Since is no earlier than its thisUpdate (CRL fetchers such
// as Windows' ask so; they got the whole CRL every time).
func notModified(r *http.Request, etag string, thisUpdate time.Time) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		return strings.Contains(inm, etag)
	}
	ims, err := http.ParseTime(r.Header.Get("If-Modified-Since"))
	return err == nil && !thisUpdate.Truncate(time.Second).After(ims)
}
