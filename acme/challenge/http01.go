package challenge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// userAgent identifies validation requests in the logs of the server being
// validated.
const userAgent = "Strongroom-ACME-validator/1 (+RFC 8555 section 8.3)" // ASCII: some servers refuse other header bytes

// validateHTTP01 implements RFC 8555 §8.3: GET
// http://<identifier>/.well-known/acme-challenge/<token> (on HTTPPort) must
// answer 200 with the key authorization, whitespace trimmed.
func (v *Validator) validateHTTP01(ctx context.Context, id identifier, token, keyAuth string) *Error {
	hostHeader := id.value
	if id.ip.Is6() {
		hostHeader = "[" + id.value + "]"
	}
	u := &url.URL{Scheme: "http", Host: net.JoinHostPort(id.value, strconv.Itoa(v.opts.HTTPPort)),
		Path: "/.well-known/acme-challenge/" + token}
	if v.opts.HTTPPort == 80 {
		u.Host = hostHeader
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return errorf(ErrMalformed, "cannot build the http-01 URL for %s", id.value)
	}
	// The Host header names the identifier as it would on port 80, even when
	// a private deployment validates on another port.
	req.Host = hostHeader
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "*/*")

	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			host, port, err := splitHostPort(addr)
			if err != nil {
				return nil, errorf(ErrConnection, "bad address %q", addr)
			}
			conn, derr := v.dial(ctx, host, port)
			if derr != nil {
				return nil, derr
			}
			return conn, nil
		},
		// Like Let's Encrypt, the certificate of an https redirect target is
		// not checked: the key authorization proves control, not the TLS
		// certificate, which may well be what the client is trying to get.
		TLSClientConfig:        &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 16 << 10,
		Proxy:                  nil,
	}
	defer transport.CloseIdleConnections()
	// current is the request being made: the first, then each redirect
	// once checkRedirect allowed it. Errors name it.
	current := req
	client := &http.Client{Transport: transport, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if err := v.checkRedirect(id.value, r, via); err != nil {
			return err
		}
		current = r
		return nil
	}}

	resp, err := client.Do(req)
	if err != nil {
		return httpError(ctx, shownURL(id.value, current), err)
	}
	defer resp.Body.Close()
	final := shownURL(id.value, resp.Request)
	// The response may come from a host the client does not control (a
	// redirect target, or whatever its name resolves to): errors say what
	// was wrong with it, never what it said, unless that is a key
	// authorization for this token or account (see shownBody).
	if resp.StatusCode != http.StatusOK {
		return errorf(ErrUnauthorized, "GET %s returned HTTP %d, want 200", final, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, v.opts.MaxBodyBytes+1))
	if err != nil {
		return connError(ctx, "reading the response from "+final, err)
	}
	if int64(len(body)) > v.opts.MaxBodyBytes {
		return errorf(ErrUnauthorized, "GET %s returned a body larger than %d bytes", final, v.opts.MaxBodyBytes)
	}
	if got := strings.TrimSpace(string(body)); got != keyAuth {
		return errorf(ErrIncorrectResponse, "GET %s returned %s", final, shownBody(got, len(body), keyAuth))
	}
	return nil
}

// shownBody says what came back instead of keyAuth (got, trimmed from a
// body of n bytes). It is quoted only when it is a key authorization for
// this token or this account key — at most 128 base64url characters around
// one '.', one side equal to the token or the thumbprint — which is what a
// client needs to find a wrong thumbprint or a stale file, and what no page
// of another server holds unless it echoes the request. Anything else, a
// bare base64url string included (a role name, an instance id, a key), is
// described by its length alone, since the validator may have been led to a
// page the client could not read itself.
func shownBody(got string, n int, keyAuth string) string {
	token, thumb, _ := strings.Cut(keyAuth, ".")
	gotToken, gotThumb, dot := strings.Cut(got, ".")
	switch {
	case dot && len(got) <= 128 && gotToken != "" && gotThumb != "" && isBase64URL(gotToken) &&
		isBase64URL(gotThumb) && (gotToken == token || gotThumb == thumb):
		return fmt.Sprintf("%q, want the key authorization %q", got, keyAuth)
	case n == 0:
		return fmt.Sprintf("an empty body, want the key authorization %q", keyAuth)
	default:
		return fmt.Sprintf("%d bytes that are not the key authorization %q", n, keyAuth)
	}
}

// shownURL is how errors name the URL r fetched: whole if it is the first
// request or a redirect the identifier's own server (idHost) chose, but only
// as its origin if another host's Location header chose it — that host may
// be an internal server the client cannot query, and the paths and query
// parameters it redirects to are its own content.
func shownURL(idHost string, r *http.Request) string {
	if r.Response == nil || r.Response.Request == nil ||
		canonicalHost(r.Response.Request.URL.Hostname()) == idHost {
		u := *r.URL
		u.User = nil // a password in a redirect is not repeated to anyone
		return truncate(u.String(), 256)
	}
	return r.URL.Scheme + "://" + truncate(r.URL.Host, 256) + "/…"
}

// checkRedirect allows at most MaxRedirects redirects, only to http on port
// 80 or HTTPPort and https on 443 or TLSPort (RFC 8555 §8.3: "the server
// SHOULD follow redirects", Let's Encrypt's port rule), never in a loop, and
// only to hosts RedirectAllowed accepts. idHost is the identifier.
func (v *Validator) checkRedirect(idHost string, req *http.Request, via []*http.Request) error {
	from := shownURL(idHost, via[len(via)-1])
	target := shownURL(idHost, req)
	if len(via) > v.opts.MaxRedirects {
		return errorf(ErrConnection, "too many redirects (more than %d), last from %s to %s",
			v.opts.MaxRedirects, from, target)
	}
	for _, r := range via {
		if r.URL.String() == req.URL.String() {
			return errorf(ErrConnection, "redirect loop: %s redirects back to %s", from, target)
		}
	}
	port := req.URL.Port()
	var allowed []int
	switch req.URL.Scheme {
	case "http":
		allowed = []int{80, v.opts.HTTPPort}
		if port == "" {
			port = "80"
		}
	case "https":
		allowed = []int{443, v.opts.TLSPort}
		if port == "" {
			port = "443"
		}
	default:
		return errorf(ErrConnection, "redirect from %s to %s: only http and https are allowed", from, target)
	}
	p, err := strconv.Atoi(port)
	if err != nil || (p != allowed[0] && p != allowed[1]) {
		return errorf(ErrConnection, "redirect from %s to %s: port must be %d or %d for %s",
			from, target, allowed[0], allowed[1], req.URL.Scheme)
	}
	host := req.URL.Hostname()
	if _, perr := parseIdentifier(IdentIP, host, false); perr != nil && !validDNSName(strings.ToLower(host)) {
		return errorf(ErrConnection, "redirect from %s to %s: not a valid host name", from, target)
	}
	if req.URL.User != nil {
		return errorf(ErrConnection, "redirect from %s to %s: URLs with credentials are not followed", from, target)
	}
	if v.opts.RedirectAllowed != nil {
		if err := v.opts.RedirectAllowed(req.Context(), canonicalHost(host)); err != nil {
			return errorf(ErrConnection, "redirect from %s to %s refused: %s", from, target, truncate(err.Error(), 256))
		}
	}
	return nil
}

// httpError turns a client.Do error for the request errors name u (see
// shownURL) into a client-safe *Error.
func httpError(ctx context.Context, u string, err error) *Error {
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	var tlsErr tls.RecordHeaderError
	if errors.As(err, &tlsErr) {
		return errorf(ErrTLS, "GET %s: the server did not speak TLS", u)
	}
	if ctx.Err() != nil || isTimeout(err) {
		return errorf(ErrConnection, "GET %s: timed out", u)
	}
	return connError(ctx, "GET "+u, err)
}
