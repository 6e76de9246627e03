package acme

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// Resource paths below the base URL.
const (
	pathDirectory   = "directory"
	pathNewNonce    = "new-nonce"
	pathNewAccount  = "new-account"
	pathNewOrder    = "new-order"
	pathRevokeCert  = "revoke-cert"
	pathKeyChange   = "key-change"
	pathRenewalInfo = "renewal-info"
	pathAccount     = "account"
	pathOrder       = "order"
	pathAuthz       = "authz"
	pathChallenge   = "chall"
	pathCert        = "cert"
)

func isNotFound(err error) bool { return err != nil && core.IsNotFound(err) }

// ServeHTTP routes one request. Every response carries a fresh
// Replay-Nonce (§6.5: also errors, so a client can retry a badNonce) and
// the directory as Link rel="index" (§7.1).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Add("Link", link(s.url(pathDirectory), "index"))
	if n, err := s.o.Nonces.Issue(ctx); err == nil {
		w.Header().Set("Replay-Nonce", n)
	} else {
		s.log.ErrorContext(ctx, "issuing nonce", "err", err)
	}
	if err := s.route(ctx, w, r); err != nil {
		if core.ClientGone(ctx, err) {
			s.log.DebugContext(ctx, "acme request abandoned by its client", "path", r.URL.Path, "err", err)
			w.WriteHeader(core.StatusClientClosed)
			return
		}
		p := toProblem(err)
		if p.Status >= 500 {
			s.failures.Log(ctx, s.log, p.Status, "acme request failed", "path", r.URL.Path, "err", err)
		}
		writeProblem(w, p)
	}
}

func (s *Server) route(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	parts := strings.Split(strings.Trim(s.relPath(r), "/"), "/")
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	post := r.Method == http.MethodPost
	if getOnly(parts) && !get {
		w.Header().Set("Allow", "GET, HEAD")
		return prob("malformed", http.StatusMethodNotAllowed, "use GET or HEAD for this resource")
	}
	switch {
	case len(parts) == 1 && parts[0] == pathDirectory && get:
		return s.directory(w)
	case len(parts) == 1 && parts[0] == pathNewNonce && get:
		return s.newNonce(w, r)
	case len(parts) == 2 && parts[0] == pathRenewalInfo && get:
		return s.renewalInfo(ctx, w, parts[1])
	case !post:
		if knownPath(parts) {
			w.Header().Set("Allow", "POST")
			return prob("malformed", http.StatusMethodNotAllowed, "use POST (or POST-as-GET) for this resource")
		}
		return notFoundProblem("resource")
	}
	switch {
	case len(parts) == 1 && parts[0] == pathNewAccount:
		return s.newAccount(ctx, w, r)
	case len(parts) == 1 && parts[0] == pathNewOrder:
		return s.newOrder(ctx, w, r)
	case len(parts) == 1 && parts[0] == pathRevokeCert:
		return s.revokeCert(ctx, w, r)
	case len(parts) == 1 && parts[0] == pathKeyChange:
		return s.keyChange(ctx, w, r)
	case len(parts) == 2 && parts[0] == pathAccount:
		return s.account(ctx, w, r, parts[1])
	case len(parts) == 3 && parts[0] == pathAccount && parts[2] == "orders":
		return s.orders(ctx, w, r, parts[1])
	case len(parts) == 2 && parts[0] == pathOrder:
		return s.order(ctx, w, r, parts[1])
	case len(parts) == 3 && parts[0] == pathOrder && parts[2] == "finalize":
		return s.finalize(ctx, w, r, parts[1])
	case len(parts) == 2 && parts[0] == pathAuthz:
		return s.authz(ctx, w, r, parts[1])
	case len(parts) == 2 && parts[0] == pathChallenge:
		return s.challenge(ctx, w, r, parts[1])
	case (len(parts) == 2 || len(parts) == 3) && parts[0] == pathCert:
		alt := ""
		if len(parts) == 3 {
			alt = parts[2]
		}
		return s.certificate(ctx, w, r, parts[1], alt)
	}
	return notFoundProblem("resource")
}

// getOnly: the resources read with GET and HEAD, not POST (§7.1.1, §7.2;
// RFC 9773 §4.1).
func getOnly(parts []string) bool {
	return (len(parts) == 1 && (parts[0] == pathDirectory || parts[0] == pathNewNonce)) ||
		(len(parts) == 2 && parts[0] == pathRenewalInfo)
}

func knownPath(parts []string) bool {
	switch parts[0] {
	case pathNewAccount, pathNewOrder, pathRevokeCert, pathKeyChange, pathAccount, pathOrder, pathAuthz,
		pathChallenge, pathCert:
		return true
	}
	return false
}

type directoryMeta struct {
	TermsOfService          string            `json:"termsOfService,omitempty"`
	Website                 string            `json:"website,omitempty"`
	CAAIdentities           []string          `json:"caaIdentities,omitempty"`
	ExternalAccountRequired bool              `json:"externalAccountRequired"`
	Profiles                map[string]string `json:"profiles,omitempty"`
}

func (s *Server) directory(w http.ResponseWriter) error {
	m := directoryMeta{TermsOfService: s.o.Meta.TermsOfService, Website: s.o.Meta.Website,
		CAAIdentities: s.o.Meta.CAAIdentities, ExternalAccountRequired: s.o.Meta.ExternalAccountRequired}
	if len(s.o.Profiles) > 0 {
		m.Profiles = make(map[string]string, len(s.o.Profiles))
		for name, p := range s.o.Profiles {
			m.Profiles[name] = p.Description
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{
		"newNonce":    s.url(pathNewNonce),
		"newAccount":  s.url(pathNewAccount),
		"newOrder":    s.url(pathNewOrder),
		"revokeCert":  s.url(pathRevokeCert),
		"keyChange":   s.url(pathKeyChange),
		"renewalInfo": s.url(pathRenewalInfo),
		"meta":        m,
	})
}

// newNonce answers HEAD with 200 and GET with 204 (§7.2); the nonce itself
// was set by ServeHTTP.
func (s *Server) newNonce(w http.ResponseWriter, r *http.Request) error {
	if w.Header().Get("Replay-Nonce") == "" {
		return core.Errorf(core.KindUnavailable, "no nonce available")
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return nil
}

// decodePayload decodes a JSON payload strictly enough to catch garbage but
// ignores unknown fields, as RFC 8555 §7.3 expects of servers. Every
// payload is an object: null, which encoding/json would take as one with
// no fields, is not.
func decodePayload(payload []byte, v any) error {
	if t := bytes.TrimSpace(payload); len(t) == 0 || t[0] != '{' {
		return malformed("request payload must be a JSON object")
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return malformed("request payload is not valid JSON for this resource")
	}
	return nil
}

func link(url, rel string) string { return "<" + url + ">;rel=\"" + rel + "\"" }

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
