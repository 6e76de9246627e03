package web

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"encoding/pem"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/api"
	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/hsm"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Authority issues and revokes (*ra.Authority).
type Authority interface {
	Issue(ctx context.Context, req ra.Request) (*ca.Issued, error)
	Revoke(ctx context.Context, serial core.Serial, reason core.RevocationReason, invalidity time.Time, who string) error
	RevokeAndBlockKey(ctx context.Context, serial core.Serial, invalidity time.Time, who string) error
	Certificate(ctx context.Context, serial core.Serial) (*core.Certificate, error)
}

// Store reads and manages API keys and reads certificates (*storage.DB).
type Store interface {
	api.KeyStore
	APIKeyByHash(ctx context.Context, hash []byte) (*storage.APIKey, error)
	APIKeyByID(ctx context.Context, id string) (*storage.APIKey, error)
	ListCertificates(ctx context.Context, f storage.CertFilter) ([]core.Certificate, core.Serial, error)
	CreateConsoleSession(ctx context.Context, s *storage.ConsoleSession) error
	ConsoleSessionByID(ctx context.Context, id []byte) (*storage.ConsoleSession, error)
	EndConsoleSession(ctx context.Context, id []byte) error
}

// IssuerSource lists the issuers (*ca.CA).
type IssuerSource interface {
	Issuers() []*ca.Issuer
	DefaultIssuer() string
	IssuerStatus(id string) ca.IssuerStatus
}

// MAC signs and checks session cookies and CSRF tokens: an HMAC key in the
// HSM (cmd/ca finds or makes it), so every node shares it.
type MAC interface {
	HMAC(ctx context.Context, data []byte) ([]byte, error)
	VerifyHMAC(ctx context.Context, data, mac []byte) error
}

// Options configures the console. All but Now and Logger are required.
type Options struct {
	Authority Authority
	Store     Store
	Issuers   IssuerSource
	MAC       MAC
	Profiles  []string // offered on the issue page; the first is the default
	// Audit and VerifyAudit show the HSM's audit log to admin keys
	// (audit.go). Nil: the page says it is not available.
	Audit       AuditLog
	VerifyAudit func(ctx context.Context) (hsm.AuditReport, error)
	// WithinCap runs an issuance under the key's hourly cap, shared with
	// the REST API (api.API.WithinCap); nil: no cap.
	WithinCap func(ctx context.Context, principal string, issue func() (*ca.Issued, error)) (*ca.Issued, time.Duration, error)
	// Touch records that an API key was used (api.API.Touch), so its
	// "last used" covers the console too; nil: not recorded.
	Touch func(ctx context.Context, keyID string)
	// RateLimiter bounds failed sign-ins per client address
	// (loginFailures in loginWindow); nil: not bounded.
	RateLimiter api.RateLimiter
	Now         func() time.Time
	Logger      *slog.Logger
}

// Console serves /ui.
type Console struct {
	o     Options
	pages map[string]*template.Template
	log   *slog.Logger
}

// New parses the templates.
func New(o Options) (*Console, error) {
	if o.Authority == nil || o.Store == nil || o.Issuers == nil || o.MAC == nil {
		return nil, errors.New("web: Authority, Store, Issuers and MAC are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Console{o: o, pages: map[string]*template.Template{}, log: o.Logger}
	funcs := template.FuncMap{"date": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	}, "join": strings.Join}
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		page := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if page == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", n)
		if err != nil {
			return nil, err
		}
		w.pages[page] = t
	}
	return w, nil
}

func (w *Console) now() time.Time { return w.o.Now() }

// Register mounts the console on r (the /ui group).
func (w *Console) Register(r gin.IRouter) {
	r.Use(securityHeaders, w.sameOrigin, w.readForm)
	// Each file on its own route: a directory is not listed.
	files, _ := fs.Glob(assets, "static/*")
	for _, f := range files {
		r.StaticFileFS("/"+f, f, http.FS(assets))
	}
	home := func(c *gin.Context) { c.Redirect(http.StatusSeeOther, "/ui/certificates") }
	r.GET("", home)
	r.GET("/", home) // /ui/ as well: the server does not redirect trailing slashes
	r.GET("/login", w.loginPage)
	r.POST("/login", w.loginPost)
	r.POST("/logout", w.signedIn(w.logout))
	r.GET("/certificates", w.signedIn(w.list))
	r.GET("/certificates/:serial", w.signedIn(w.detail))
	r.POST("/certificates/:serial/revoke", w.signedIn(w.revoke))
	r.GET("/issue", w.signedIn(w.issuePage))
	r.POST("/issue", w.signedIn(w.issuePost))
	r.GET("/issuers", w.signedIn(w.issuers))
	r.GET("/keys", w.signedIn(w.keys))
	r.POST("/keys", w.signedIn(w.createKey))
	r.POST("/keys/:id/revoke", w.signedIn(w.revokeKey))
	r.GET("/audit", w.signedIn(w.audit))
}

// sameOrigin refuses a POST a browser sent from another site, by the
// REST API's check (api.CrossSite: Sec-Fetch-Site, else Origin against
// Host): with the CSRF tokens of signed-in forms, this also stops a
// foreign page from signing a visitor in with its own key (login CSRF). A
// POST with neither header (curl, old browsers) is left to the tokens.
func (w *Console) sameOrigin(c *gin.Context) {
	if err := api.CrossSite(c.Request); err != nil {
		// A proxy that rewrites Host makes every form land here: say
		// which two names differ.
		w.render(c, http.StatusForbidden, "error", page{Title: "Forbidden", Error: fmt.Sprintf(
			"the form was sent from %q, not from this console (%s); open the console at its own address, or have the proxy keep the Host header",
			cmp.Or(c.GetHeader("Origin"), "another site"), c.Request.Host)})
		c.Abort()
		return
	}
	c.Next()
}

// readForm reads a POST's form before any handler: c.PostForm swallows
// read errors, so a form over the body limit was answered "unknown API
// key" or "the form is stale", and a body that stalled until the read
// timeout a 503 with an error logged.
func (w *Console) readForm(c *gin.Context) {
	if c.Request.Method != http.MethodPost {
		c.Next()
		return
	}
	// The console's forms are URL-encoded; ParseForm reads no other body
	// (a multipart one was read by c.PostForm, which swallows its errors).
	if mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type")); mt != "application/x-www-form-urlencoded" && c.Request.ContentLength != 0 {
		w.render(c, http.StatusUnsupportedMediaType, "error", page{Title: http.StatusText(http.StatusUnsupportedMediaType),
			Error: "the console's forms are sent as application/x-www-form-urlencoded"})
		c.Abort()
		return
	}
	if err := c.Request.ParseForm(); err != nil {
		status, msg := http.StatusBadRequest, "the form could not be read (the upload was cut off or malformed); try again"
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			status, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("the form is over the %d-byte limit", mbe.Limit)
		}
		w.render(c, status, "error", page{Title: http.StatusText(status), Error: msg})
		c.Abort()
		return
	}
	c.Next()
}

// Unmatched answers a request under /ui that matches no route (404) or
// none for its method (405) as a console page, with the console's headers
// (server.Unmatched): not the API's problem document, which a browser
// shows as raw JSON.
func (w *Console) Unmatched(c *gin.Context, status int) {
	securityHeaders(c)
	msg := "there is no such page in the console"
	if status == http.StatusMethodNotAllowed {
		msg = c.Request.Method + " is not allowed here"
	}
	w.render(c, status, "error", page{Title: http.StatusText(status), Error: msg})
}

// securityHeaders: no script at all, nothing framed, nothing cached.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin") // no-referrer would make browsers send Origin: null on our own forms
	h.Set("Cache-Control", "no-store")
	if !localHost(c.Request.Host) {
		// Not for localhost or an IP address: a browser would then refuse
		// plain HTTP to every other local service on that name.
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	c.Next()
}

// localHost reports whether host (with or without a port) is localhost, a
// name under .localhost, or an IP address.
func localHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	return host == "localhost" || strings.HasSuffix(host, ".localhost") || net.ParseIP(strings.Trim(host, "[]")) != nil
}

// page is what every template gets.
type page struct {
	Title string
	Op    *operator
	CSRF  string
	Error string
	Data  any
}

func (w *Console) render(c *gin.Context, status int, name string, p page) {
	if p.Op != nil && p.CSRF == "" {
		tok, err := w.csrf(c.Request.Context(), p.Op)
		if err != nil {
			w.log.ErrorContext(c.Request.Context(), "console: CSRF token", "err", err)
			status, name, p = http.StatusServiceUnavailable, "error", page{Title: "Unavailable", Error: "the HSM cannot sign this session now"}
		}
		p.CSRF = tok
	}
	var buf bytes.Buffer
	if err := w.pages[name].ExecuteTemplate(&buf, "layout.html", p); err != nil {
		w.log.ErrorContext(c.Request.Context(), "console: rendering", "page", name, "err", err)
		c.String(http.StatusInternalServerError, "the page could not be rendered; the log has the details")
		return
	}
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// fail shows err on the error page with the status its kind maps to;
// internal detail is logged, never shown.
func (w *Console) fail(c *gin.Context, op *operator, err error) {
	status, msg := w.statusOf(c, err)
	w.render(c, status, "error", page{Title: http.StatusText(status), Op: op, Error: msg})
}

// statusOf is the REST API's status for err and what the operator is told:
// an internal error is logged, not shown.
func (w *Console) statusOf(c *gin.Context, err error) (int, string) {
	status := api.StatusOf(err)
	if status == http.StatusInternalServerError {
		w.log.ErrorContext(c.Request.Context(), "console request failed", "path", c.FullPath(), "err", err)
		return status, "something went wrong on our side; the log has the details"
	}
	return status, core.DetailOf(err)
}

// signedIn runs h for a signed-in operator, else sends to the login page.
func (w *Console) signedIn(h func(*gin.Context, *operator)) gin.HandlerFunc {
	return func(c *gin.Context) {
		op, err := w.operatorOf(c)
		if err != nil {
			if c.Request.Method == http.MethodGet {
				c.Redirect(http.StatusSeeOther, "/ui/login")
				return
			}
			w.fail(c, nil, core.Errorf(core.KindUnauthenticated, "sign in first"))
			return
		}
		if c.Request.Method == http.MethodPost {
			if err := w.checkCSRF(c, op); err != nil {
				w.fail(c, op, err)
				return
			}
		}
		h(c, op)
	}
}

func (w *Console) require(c *gin.Context, op *operator, scope string) bool {
	if op.may(scope) {
		return true
	}
	w.fail(c, op, core.Errorf(core.KindForbidden, "your API key lacks the %q scope", scope))
	return false
}

// requireFullAdmin: managing API keys and reading the audit log need an
// admin key without name or profile limits (ra.FullAdmin): an admin
// limited to names could otherwise create itself a key without limits.
func (w *Console) requireFullAdmin(c *gin.Context, op *operator) bool {
	if !w.require(c, op, api.ScopeAdmin) {
		return false
	}
	if !ra.FullAdmin(op.limits, true) {
		w.fail(c, op, core.Errorf(core.KindForbidden, "your admin key is limited to some names or profiles: managing API keys and reading the audit log need one without limits"))
		return false
	}
	return true
}

func (w *Console) loginPage(c *gin.Context) {
	w.render(c, http.StatusOK, "login", page{Title: "Sign in"})
}

func (w *Console) loginPost(c *gin.Context) {
	ctx := c.Request.Context()
	retry, allowed := w.loginAllowed(c)
	v, err := w.login(ctx, c.PostForm("key"))
	if !allowed && err == nil {
		// The count is of an address, which operators may share (a proxy,
		// a NAT, a bastion): a right key still signs in, so that whoever
		// fails there cannot keep the others out.
		w.log.InfoContext(ctx, "console sign-in from an address over its failure limit", "remote", c.Request.RemoteAddr)
	}
	if !allowed && err != nil {
		api.SetRetryAfter(c.Writer.Header(), retry)
		w.render(c, http.StatusTooManyRequests, "login", page{Title: "Sign in",
			Error: fmt.Sprintf("too many failed sign-ins from your address; try again in %s", retry.Round(time.Second))})
		return
	}
	if err != nil {
		status := http.StatusUnauthorized
		switch core.KindOf(err) {
		case core.KindUnauthenticated:
			w.log.WarnContext(ctx, "console sign-in refused", "remote", c.Request.RemoteAddr, "reason", core.DetailOf(err))
		case core.KindForbidden:
			status = http.StatusForbidden
		default:
			status = http.StatusServiceUnavailable
			w.log.ErrorContext(ctx, "console sign-in", "err", err)
			err = errors.New("sign-in is not possible now")
		}
		w.render(c, status, "login", page{Title: "Sign in", Error: core.DetailOf(err)})
		return
	}
	if allowed {
		w.loginSucceeded(c)
	}
	setCookie(c, v, int(sessionTTL.Seconds()))
	c.Redirect(http.StatusSeeOther, "/ui/certificates")
}

func (w *Console) logout(c *gin.Context, op *operator) {
	if err := w.endSession(c.Request.Context(), op); err != nil {
		// The cookie is kept: dropping only the browser's copy would look
		// like a sign-out and leave the session working.
		w.log.ErrorContext(c.Request.Context(), "console sign-out", "err", err)
		w.fail(c, op, core.Errorf(core.KindUnavailable, "signing out is not possible now; try again"))
		return
	}
	setCookie(c, "", -1)
	c.Redirect(http.StatusSeeOther, "/ui/login")
}

func pemOf(ders ...[]byte) string {
	var b strings.Builder
	for _, d := range ders {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d}))
	}
	return b.String()
}

func chainPEM(iss *ca.Issued) string {
	ders := make([][]byte, 0, len(iss.Chain))
	for _, c := range iss.Chain {
		ders = append(ders, c.Raw)
	}
	return pemOf(ders...)
}
