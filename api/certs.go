package api

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
)

// IssueRequest is the JSON body of POST /certificates and /dry-run.
type IssueRequest struct {
	CSR       string          `json:"csr"`                  // PEM, or base64 of the DER
	Profile   string          `json:"profile,omitempty"`    // zero: the default profile
	Lifetime  json.RawMessage `json:"lifetime,omitempty"`   // "720h", "30d" or seconds; zero: the profile's default
	ExtraSANs []string        `json:"extra_sans,omitempty"` // only where policy allows
	Issuer    string          `json:"issuer,omitempty"`     // zero: the default issuer
}

// CertificateResponse describes one certificate.
type CertificateResponse struct {
	Serial           string    `json:"serial"`
	Status           string    `json:"status"`
	Issuer           string    `json:"issuer"`
	Profile          string    `json:"profile"`
	Requester        string    `json:"requester,omitempty"`
	Origin           string    `json:"origin,omitempty"` // a renewal's: who asked for the first certificate of its line
	Subject          string    `json:"subject,omitempty"`
	Names            []string  `json:"names"`
	NotBefore        time.Time `json:"not_before"`
	NotAfter         time.Time `json:"not_after"`
	RevokedAt        time.Time `json:"revoked_at,omitzero"`
	RevocationReason string    `json:"revocation_reason,omitempty"`
	InvalidityDate   time.Time `json:"invalidity_date,omitzero"`
	Certificate      string    `json:"certificate,omitempty"` // PEM
	Chain            string    `json:"chain,omitempty"`       // PEM: the certificate, then intermediates
}

func pemOf(certs ...*x509.Certificate) string {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.String()
}

// readBody reads the request body. A body over the limit stays a
// MaxBytesError (413); any other read failure is the client's connection
// breaking, a 400, never a 500.
func readBody(c *gin.Context) ([]byte, error) {
	body, err := io.ReadAll(c.Request.Body)
	var mbe *http.MaxBytesError
	if err != nil && !errors.As(err, &mbe) {
		return nil, core.Wrap(core.KindMalformed, err, "reading the request body failed")
	}
	return body, err
}

func pemDER(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// readIssueRequest parses either JSON or a raw application/pkcs10 body.
func (a *API) readIssueRequest(c *gin.Context) (ra.Request, error) {
	body, err := readBody(c)
	if err != nil {
		return ra.Request{}, err
	}
	mt, err := mediaType(c, issueMediaTypes)
	if err != nil {
		return ra.Request{}, err
	}
	var ir IssueRequest
	var csrBytes []byte
	switch mt {
	case "application/pkcs10":
		csrBytes = body
		ir.Profile, ir.Issuer = c.Query("profile"), c.Query("issuer")
		if l := c.Query("lifetime"); l != "" {
			ir.Lifetime, _ = json.Marshal(l)
		}
		if s := c.Query("extra_sans"); s != "" {
			ir.ExtraSANs = strings.Split(s, ",")
		}
	case "application/json", "":
		// The query parameters are for bodies that cannot carry them; with
		// JSON they would be ignored, and a profile or lifetime asked for
		// that way silently not applied.
		if c.Request.URL.RawQuery != "" {
			return ra.Request{}, core.Errorf(core.KindMalformed, "query parameters (profile, lifetime, issuer, extra_sans) apply only to application/pkcs10 bodies; with JSON put them in the body")
		}
		if err := decodeStrict(body, &ir); err != nil {
			return ra.Request{}, withFields(err, "csr, profile, lifetime, extra_sans, issuer")
		}
		csrBytes = []byte(ir.CSR)
	default:
		return ra.Request{}, &unsupportedMedia{got: mt, want: issueMediaTypes}
	}
	der, err := csrDER(csrBytes)
	if err != nil {
		return ra.Request{}, err
	}
	csr, err := ra.ParseCSR(der)
	if err != nil {
		return ra.Request{}, err
	}
	life, err := parseLifetime(ir.Lifetime)
	if err != nil {
		return ra.Request{}, err
	}
	p := principalOf(c)
	return ra.Request{CSR: csr, Profile: ir.Profile, Lifetime: life, ExtraSANs: ir.ExtraSANs,
		Issuer: ir.Issuer, Principal: p.name, Limits: p.limits, Admin: p.has(ScopeAdmin)}, nil
}

// CSRDER is csrDER for other front ends (the console).
func CSRDER(b []byte) ([]byte, error) { return csrDER(b) }

// csrDER accepts PEM (CERTIFICATE REQUEST or NEW CERTIFICATE REQUEST),
// base64 of DER, or DER.
func csrDER(b []byte) ([]byte, error) {
	if len(b) > 0 && b[0] == 0x30 { // DER SEQUENCE: taken as sent, never trimmed
		return b, nil
	}
	// Only text forms are trimmed: DER may well end in a byte that is ASCII
	// whitespace (one CSR in about forty did, and lost it).
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return nil, core.Errorf(core.KindMalformed, "no CSR in the request")
	}
	if bytes.HasPrefix(t, []byte("-----BEGIN")) {
		return pemCSRDER(t)
	}
	s := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' {
			return -1
		}
		return r
	}, string(t))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if der, err := enc.DecodeString(s); err == nil {
			return der, nil
		}
	}
	return nil, core.Errorf(core.KindMalformed, "the CSR is neither PEM, DER nor base64 of DER")
}

// parseLifetime reads the lifetime of a JSON request: a number of seconds,
// or a string as lifetimeText reads it (the query parameter's form).
func parseLifetime(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return lifetimeText(s)
	}
	if t := bytes.TrimSpace(raw); len(t) > 0 && (t[0] == '-' || t[0] >= '0' && t[0] <= '9') {
		return lifetimeText(string(t)) // a JSON number
	}
	return 0, core.Errorf(core.KindMalformed, "lifetime must be a duration string (720h, 30d) or a number of seconds")
}

// maxLifetimeDays bounds a lifetime before policy sees it (100 years).
const maxLifetimeDays = 36500

// lifetimeText reads a lifetime as text, for the JSON field and the
// ?lifetime= query parameter alike: a number of seconds (3600, 1.5e3), a
// number of days (30d) or a Go duration (720h). Zero in any form (0,
// "0s", "0d", "-0d", -0.0) is the profile's default.
func lifetimeText(s string) (time.Duration, error) {
	if s != "" && (s[0] == '-' || s[0] >= '0' && s[0] <= '9') && json.Valid([]byte(s)) {
		secs, err := strconv.ParseFloat(s, 64)
		switch {
		case err != nil && !errors.Is(err, strconv.ErrRange):
			return 0, core.Errorf(core.KindMalformed, "lifetime %q is not a number of seconds, a number of days (30d) or a duration (720h)", s)
		case secs < 0:
			return 0, core.Errorf(core.KindMalformed, "lifetime %s seconds is negative; give a positive duration", s)
		case err != nil || secs > maxLifetimeDays*24*3600:
			return 0, core.Errorf(core.KindMalformed, "lifetime %s seconds is out of range: at most %d days (%d seconds), and the profile's maximum", s, maxLifetimeDays, maxLifetimeDays*24*3600)
		}
		// A positive lifetime too short to count in nanoseconds is still
		// not the default (zero): the profile's minimum refuses it.
		d := time.Duration(secs * float64(time.Second))
		if d == 0 && secs > 0 {
			d = 1
		}
		return d, nil
	}
	return ParseDuration("lifetime", s)
}

// ParseDuration reads a non-negative duration as a number of days ("30d")
// or a Go duration ("720h"); what names it in the error. "-0d" and "-0s"
// are zero.
func ParseDuration(what, s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		switch {
		case err == nil && n < 0, errors.Is(err, strconv.ErrRange) && strings.HasPrefix(d, "-"):
			return 0, negativeDuration(what, s)
		case err == nil && n > maxLifetimeDays, errors.Is(err, strconv.ErrRange):
			return 0, core.Errorf(core.KindMalformed, "%s %q is out of range: at most %dd", what, s, maxLifetimeDays)
		case err != nil:
			return 0, core.Errorf(core.KindMalformed, "%s %q is neither a number of days nor a duration (e.g. 30d or 720h)", what, s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, core.Errorf(core.KindMalformed, "%s %q is not a duration (e.g. 720h or 30d)", what, s)
	}
	if d < 0 {
		return 0, negativeDuration(what, s)
	}
	return d, nil
}

// negativeDuration refuses a duration that parses but is negative: saying
// it is not a duration would send the client looking for a typo.
func negativeDuration(what, s string) error {
	return core.Errorf(core.KindMalformed, "%s %q is negative; give a positive duration (e.g. 720h or 30d)", what, s)
}

func (a *API) issue(c *gin.Context) {
	if _, err := issuedType(c); err != nil { // refused before anything is issued
		a.fail(c, err)
		return
	}
	key, keyed, err := idempotencyKey(c)
	if err != nil {
		a.fail(c, err)
		return
	}
	req, err := a.readIssueRequest(c)
	if err != nil {
		a.fail(c, err)
		return
	}
	var claim *idem
	if keyed {
		var issue bool
		mismatch := "this " + idemHeader + " was used for a different request (another CSR, profile, issuer, lifetime or extra SANs)"
		// A request naming the default profile is the same request as one
		// naming none. The claim records the request as written, as the
		// previous release does, so a retry after an upgrade, or after going
		// back, still finds it; either form matches it.
		var same [][]byte
		if def := a.auth.ProfileOf(""); req.Profile == "" || req.Profile == def {
			alt := req
			if alt.Profile = ""; req.Profile == "" {
				alt.Profile = def
			}
			same = append(same, fingerprint(alt))
		}
		if claim, issue = a.claimIdempotent(c, req, key, fingerprint(req), mismatch, time.Time{}, same...); !issue {
			return
		}
	}
	iss, retry, err := a.WithinCap(c.Request.Context(), req.Principal, func() (*ca.Issued, error) {
		return a.auth.Issue(c.Request.Context(), req)
	})
	if retry > 0 {
		SetRetryAfter(c.Writer.Header(), retry)
	}
	if claim != nil {
		claim.finish(c, iss, err)
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	a.writeIssued(c, req, iss, core.StatusValid)
}

// ConsolePrefix begins the principal of what an API key does in the web
// console ("console:apikey:ID"), which web sets.
const ConsolePrefix = ra.ConsolePrefix

// WithinCap runs issue under a credential's hourly cap
// (Options.IssuePerHour), shared by the API and the console: the
// issuance is counted first, so concurrent requests never pass the cap,
// and given back if issue fails (refused by policy, or failed), so the cap
// is on certificates issued. Over the cap, KindRateLimited and how long
// until one more is allowed.
func (a *API) WithinCap(ctx context.Context, principal string, issue func() (*ca.Issued, error)) (*ca.Issued, time.Duration, error) {
	if a.limiter == nil {
		iss, err := issue()
		return iss, 0, err
	}
	cred := strings.TrimPrefix(principal, ConsolePrefix)
	key := issueLimitKey(cred)
	ok, retry, err := a.limiter.Allow(ctx, key, a.issuePerHour, time.Hour)
	if err != nil {
		return nil, 0, core.Wrap(core.KindUnavailable, err, "the issuance rate limit cannot be checked now")
	}
	if !ok {
		return nil, max(retry, time.Second), core.Errorf(core.KindRateLimited, "%s may issue at most %d certificates an hour; try again later", cred, a.issuePerHour)
	}
	iss, err := issue()
	if err != nil {
		if rerr := a.limiter.Refund(context.WithoutCancel(ctx), key, time.Hour); rerr != nil {
			a.log.WarnContext(ctx, "giving back an issuance's rate-limit count", "err", rerr)
		}
	}
	return iss, 0, err
}

// SetRetryAfter sets Retry-After to d in whole seconds, at least one.
func SetRetryAfter(h http.Header, d time.Duration) {
	h.Set("Retry-After", strconv.Itoa(max(1, int(d.Seconds()+0.5))))
}

func issueLimitKey(cred string) string { return "rest-issue:" + cred }

// writeIssued answers an issuance (or its replay): 201 with the PEM chain
// or the JSON description.
func (a *API) writeIssued(c *gin.Context, req ra.Request, iss *ca.Issued, status core.CertStatus) {
	// POST /certificates or /certificates/renew: the new certificate is
	// /certificates/{serial}.
	c.Header("Location", strings.TrimSuffix(c.Request.URL.Path, "/renew")+"/"+string(iss.Serial))
	if t, _ := issuedType(c); t != "application/json" {
		c.Data(http.StatusCreated, "application/pem-certificate-chain", []byte(pemOf(iss.Chain...)))
		return
	}
	cert := iss.Certificate
	c.JSON(http.StatusCreated, CertificateResponse{Serial: string(iss.Serial), Status: string(status),
		Issuer: iss.IssuerID, Profile: iss.Profile, Requester: req.Principal, Origin: iss.Origin, Subject: cert.Subject.CommonName,
		Names: namesOf(cert), NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
		Certificate: pemOf(cert), Chain: pemOf(iss.Chain...)})
}

// issuedType is the type an issuance or renewal answers with: JSON, or
// the PEM chain (application/x-pem-file is an alias some clients send).
func issuedType(c *gin.Context) (string, error) {
	return negotiate(c, "application/json", "application/pem-certificate-chain", "application/x-pem-file")
}

func namesOf(c *x509.Certificate) []string {
	out := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	out = append(out, c.EmailAddresses...)
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out
}

// DryRunResponse is the answer of POST /certificates/dry-run.
type DryRunResponse struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason,omitempty"`
	// Certificate is the certificate that would be signed, signed here by
	// a throwaway key (its signature is worthless), PEM.
	Certificate string      `json:"certificate,omitempty"`
	Issuer      string      `json:"issuer,omitempty"`
	Subject     string      `json:"subject,omitempty"`
	Names       []string    `json:"names,omitempty"`
	NotBefore   *time.Time  `json:"not_before,omitempty"`
	NotAfter    *time.Time  `json:"not_after,omitempty"`
	Findings    ca.Findings `json:"lint_findings"`
}

func (a *API) dryRun(c *gin.Context) {
	if _, err := negotiate(c, "application/json"); err != nil { // 406, as issuance
		a.fail(c, err)
		return
	}
	req, err := a.readIssueRequest(c)
	if err != nil {
		a.fail(c, err)
		return
	}
	res, err := a.auth.DryRun(c.Request.Context(), req)
	if err != nil {
		a.fail(c, err)
		return
	}
	out := DryRunResponse{Allowed: res.Allowed, Reason: res.Reason, Findings: ca.Findings{}}
	if d := res.Draft; d != nil {
		cert := d.Certificate
		out.Certificate, out.Issuer, out.Subject, out.Names = pemOf(cert), d.IssuerID, cert.Subject.CommonName, namesOf(cert)
		out.NotBefore, out.NotAfter = &cert.NotBefore, &cert.NotAfter
		if d.Findings != nil {
			out.Findings = d.Findings
		}
	}
	c.JSON(http.StatusOK, out)
}

func recordResponse(r *core.Certificate, withPEM bool) CertificateResponse {
	out := CertificateResponse{Serial: string(r.Serial), Status: string(r.Status), Issuer: r.IssuerID,
		Profile: r.Profile, Requester: r.Requester, Origin: r.Origin, Subject: r.Subject, Names: r.Names,
		NotBefore: r.NotBefore, NotAfter: r.NotAfter, RevokedAt: r.RevokedAt}
	if out.Names == nil {
		out.Names = []string{}
	}
	if r.Status == core.StatusRevoked {
		out.RevocationReason = r.RevocationReason.String()
		out.InvalidityDate = r.InvalidityDate
	}
	if withPEM && len(r.DER) > 0 {
		out.Certificate = pemDER(r.DER)
	}
	return out
}

// sentAfter is what follows a leaf of issuerID in a chain: its issuer's
// certificate and any intermediates above it, not the root. Nothing for an
// issuer no longer configured.
func (a *API) sentAfter(issuerID string) []*x509.Certificate {
	for _, is := range a.issuers.Issuers() {
		if is.ID() == issuerID {
			return is.Sent()
		}
	}
	return nil
}

// lookup returns a handed-out certificate; reserved rows (never handed
// out) are not found.
func (a *API) lookup(c *gin.Context) (*core.Certificate, bool) {
	serial, err := core.ParseSerial(c.Param("serial"))
	if err != nil {
		a.fail(c, err)
		return nil, false
	}
	r, err := a.auth.Certificate(c.Request.Context(), serial)
	if err == nil && r.Status == core.StatusReserved {
		err = core.Errorf(core.KindNotFound, "no certificate has serial %s", serial)
	}
	if err != nil {
		a.fail(c, err)
		return nil, false
	}
	return r, true
}

// readable is lookup for a certificate the caller may see (ra.MayRead):
// another team's is not found, whatever is asked of it.
func (a *API) readable(c *gin.Context) (*core.Certificate, bool) {
	r, ok := a.lookup(c)
	if ok && !ra.MayRead(principalOf(c).limits, r) {
		a.fail(c, core.Errorf(core.KindNotFound, "no certificate has serial %s", r.Serial))
		return nil, false
	}
	return r, ok
}

func (a *API) get(c *gin.Context) {
	r, ok := a.readable(c)
	if !ok {
		return
	}
	format := c.Query("format")
	if format == "" {
		t, err := negotiate(c, "application/json", "application/pem-certificate-chain", "application/x-pem-file", "application/pkix-cert")
		if err != nil {
			a.fail(c, err)
			return
		}
		format = map[string]string{"application/json": "json", "application/pkix-cert": "der"}[t]
		if format == "" {
			format = "pem"
		}
	}
	chain := pemOf(a.sentAfter(r.IssuerID)...)
	switch format {
	case "json":
		out := recordResponse(r, true)
		out.Chain = out.Certificate + chain
		c.JSON(http.StatusOK, out)
	case "pem":
		c.Data(http.StatusOK, "application/pem-certificate-chain", []byte(pemDER(r.DER)+chain))
	case "der":
		c.Data(http.StatusOK, "application/pkix-cert", r.DER)
	default:
		a.fail(c, core.Errorf(core.KindMalformed, "format must be json, pem or der"))
	}
}

// RevokeRequest is the JSON body of POST /certificates/{serial}/revoke.
type RevokeRequest struct {
	// Reason is an RFC 5280 reason name ("keyCompromise") or code; zero:
	// unspecified.
	Reason json.RawMessage `json:"reason,omitempty"`
	// InvalidityDate is when the key was known or suspected compromised or
	// the certificate otherwise became invalid (RFC 3339; RFC 5280 §5.3.2);
	// it goes into the CRL entry. Absent: not given. Not in the future,
	// nor before 1970.
	InvalidityDate *time.Time `json:"invalidity_date,omitempty"`
}

func (a *API) revoke(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		a.fail(c, err)
		return
	}
	var rr RevokeRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := jsonMediaType(c); err != nil {
			a.fail(c, err)
			return
		}
		if err := checkInvalidityDate(body); err != nil {
			a.fail(c, err)
			return
		}
		if err := decodeObject(body, &rr); err != nil {
			a.fail(c, withFields(err, "reason, invalidity_date"))
			return
		}
	}
	reason := core.ReasonUnspecified
	if len(rr.Reason) > 0 {
		var s string
		var n int
		switch {
		case json.Unmarshal(rr.Reason, &n) == nil:
			reason, err = core.ReasonFromCode(n)
		case json.Unmarshal(rr.Reason, &s) == nil:
			reason, err = core.ParseReason(s)
		default:
			err = core.Errorf(core.KindMalformed, "reason must be an RFC 5280 reason name or code")
		}
		if err != nil {
			a.fail(c, err)
			return
		}
	}
	r, ok := a.readable(c)
	if !ok {
		return
	}
	if err := ra.MayRevoke(principalOf(c).limits, r); err != nil {
		a.fail(c, err)
		return
	}
	var invalidity time.Time
	if rr.InvalidityDate != nil { // given: 0001-01-01 is refused, not taken for "not given"
		invalidity = *rr.InvalidityDate
		if err := ca.CheckInvalidityDate(invalidity, time.Now()); err != nil {
			a.fail(c, err)
			return
		}
	}
	p := principalOf(c)
	revoke := func() error { return a.auth.Revoke(c.Request.Context(), r.Serial, reason, invalidity, p.name) }
	if reason == core.ReasonKeyCompromise && ra.FullAdmin(p.limits, p.has(ScopeAdmin)) {
		revoke = func() error { return a.auth.RevokeAndBlockKey(c.Request.Context(), r.Serial, invalidity, p.name) }
	}
	if err := revoke(); err != nil {
		a.fail(c, err)
		return
	}
	r, ok = a.lookup(c)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, recordResponse(r, false))
}

// withFields adds to decodeStrict's refusal the fields the request takes.
func withFields(err error, fields string) error {
	return core.Wrap(core.KindMalformed, err, fmt.Sprintf("%s (this request takes %s)", core.DetailOf(err), fields))
}

// jsonProblem says what is wrong with a body encoding/json refused, in
// the client's terms: a value of the wrong type names the field and the
// JSON type it takes, not the Go type behind it.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	want := "an object"
	switch te.Type.Kind() {
	case reflect.String:
		want = "a string"
	case reflect.Bool:
		want = "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8,
		reflect.Uint16, reflect.Uint32, reflect.Uint64:
		// A number here that is not taken has a fraction or exponent
		// (1.5, 1e3), or is out of range: "it must be a number" would not
		// say what is wrong with it.
		want = "a whole number"
		if lit, isNum := strings.CutPrefix(te.Value, "number "); isNum {
			if strings.ContainsAny(lit, ".eE") {
				want = "a whole number, written without a fraction or exponent"
			} else {
				want = "a whole number within range"
			}
		}
	case reflect.Float32, reflect.Float64:
		want = "a number"
	case reflect.Slice, reflect.Array:
		want = "an array"
	}
	if te.Field == "" {
		return fmt.Sprintf("the body is %s %s; it must be %s", article(te.Value), te.Value, want)
	}
	return fmt.Sprintf("%q is %s %s; it must be %s", te.Field, article(te.Value), te.Value, want)
}

func article(jsonType string) string {
	if jsonType != "" && strings.ContainsRune("aeiou", rune(jsonType[0])) {
		return "an"
	}
	return "a"
}

// decodeStrict decodes one JSON value with no unknown fields and nothing
// after it.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return core.Wrap(core.KindMalformed, err, "the body is not valid JSON for this request: "+jsonProblem(err))
	}
	// dec.More says false before a stray '}' or ']' as well as at the
	// end: only io.EOF from the next token means nothing follows.
	if _, err := dec.Token(); err != io.EOF {
		return core.Errorf(core.KindMalformed, "trailing data after the JSON request")
	}
	return exactFieldNames(body, v)
}
