package api

import (
	"bytes"
	"cmp"
	"context"
	"crypto/subtle"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
)

// Authority is what the API needs from package ra (*ra.Authority).
type Authority interface {
	Issue(ctx context.Context, req ra.Request) (*ca.Issued, error)
	DryRun(ctx context.Context, req ra.Request) (*ra.DryRunResult, error)
	Revoke(ctx context.Context, serial core.Serial, reason core.RevocationReason, invalidity time.Time, who string) error
	RevokeAndBlockKey(ctx context.Context, serial core.Serial, invalidity time.Time, who string) error
	Certificate(ctx context.Context, serial core.Serial) (*core.Certificate, error)
	CheckRenewal(ctx context.Context, rr ra.RenewRequest) (origin string, err error)
	Renew(ctx context.Context, rr ra.RenewRequest) (*ca.Issued, error)
	// ProfileOf is the profile a request naming profile gets (the
	// default for "").
	ProfileOf(profile string) string
}

// Store is what the API reads directly (*storage.DB).
type Store interface {
	APIKeyByHash(ctx context.Context, hash []byte) (*storage.APIKey, error)
	APIKeyByID(ctx context.Context, id string) (*storage.APIKey, error)
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
	ListCertificates(ctx context.Context, f storage.CertFilter) ([]core.Certificate, core.Serial, error)

	// Idempotency-Key (idempotency.go).
	ClaimIdempotencyKey(ctx context.Context, principal, key string, hash []byte, at, abandonedBefore, expiredBefore, keepUntil time.Time) (*storage.IdempotencyRecord, error)
	FinishIdempotencyKey(ctx context.Context, principal, key string, serial core.Serial) error
	ReleaseIdempotencyKey(ctx context.Context, principal, key string) error
	PruneIdempotencyKeys(ctx context.Context, before, now time.Time) (int64, error)
}

// IssuerSource lists the issuers (*ca.CA).
type IssuerSource interface {
	Issuers() []*ca.Issuer
	// DefaultIssuer is the issuer a request naming none gets; "" when
	// none may issue.
	DefaultIssuer() string
	// IssuerStatus says whether an issuer's certificate is revoked or
	// expired.
	IssuerStatus(id string) ca.IssuerStatus
}

// Options configures the API.
type Options struct {
	Authority Authority    // required
	Store     Store        // required
	Issuers   IssuerSource // required
	// Keys is the HSM session of the applications' crypto user that the
	// key service (/keys, /hash, /random) runs in. Nil: those routes
	// answer 503 until SetKeyService gives them one.
	Keys KeyService
	// KeysPerCredential caps the keys one API key or client certificate
	// may keep in the key service (created or imported, not yet
	// destroyed); at the cap, creating or importing one is 409. Zero:
	// 1,000.
	KeysPerCredential int
	// VersionsPerKey caps the versions of one key; rotating a key that
	// has them all is 409 (a new key is the way on). Zero: 100.
	VersionsPerKey int
	// ClientCertScopes grants scopes to TLS client certificates (already
	// verified by the server against our CAs), by principal pattern:
	// "mtls:deploy.corp.internal" or a prefix ending in "*" ("mtls:*").
	// A certificate matching no pattern has no scopes. Zero: mTLS gives
	// no access.
	ClientCertScopes map[string][]string
	// ClientCertLimits narrows what client certificates may ask for, by
	// the same patterns: names (DNS suffixes, IP prefixes) and profiles, as
	// an API key's --names and --profiles. The exact pattern wins, then the
	// longest prefix. Zero: only the policy.
	ClientCertLimits map[string]Limits
	// IssuePerHour caps the certificates one principal (API key or
	// client certificate) may issue through POST /certificates per hour,
	// counted by RateLimiter (shared by every node with Redis); over it the
	// answer is 429 with Retry-After. Replays of an Idempotency-Key do not
	// count. Zero, or no RateLimiter: no cap.
	IssuePerHour int
	RateLimiter  RateLimiter
	// MaxBodyBytes limits request bodies. Zero: 64 KiB.
	MaxBodyBytes int64
	Now          func() time.Time // zero: time.Now
	Logger       *slog.Logger     // zero: discard
}

// RateLimiter counts one event for key and says whether it is within
// limit per window, and if not how long to wait; Refund takes one back
// (storage.MemoryLimiter, storage.RedisLimiter).
type RateLimiter interface {
	Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error)
	Refund(ctx context.Context, key string, window time.Duration) error
}

// Limits is what one credential may ask for (ra.Limits, from config).
type Limits struct {
	Names    []string `yaml:"names"`
	Profiles []string `yaml:"profiles"`
}

// API holds the handlers. It is safe for concurrent use.
type API struct {
	// failures logs requests failed on our side (503s bounded).
	failures core.FailureLog
	auth     Authority
	store    Store
	issuers  IssuerSource
	mtls     map[string][]string
	maxBody  int64
	now      func() time.Time
	log      *slog.Logger
	touched  sync.Map // key id → time.Time of the last recorded use
	openapi  []byte
	query    map[string][]string // query parameters by operation (query.go)
	// idemPrune is when (unix seconds) expired idempotency keys are next
	// pruned.
	idemPrune atomic.Int64
	// keys is the key service's HSM session; nil: off here. It changes
	// while requests run (SetKeyService), so it is read once per request.
	keys atomic.Pointer[KeyService]
	// maxKeys and maxVersions are the key service's quotas (kms_scope.go).
	maxKeys, maxVersions int
	// roots and inters verify client certificates (clientcert.go).
	roots, inters *x509.CertPool
	mtlsLimits    map[string]*ra.Limits
	issuePerHour  int
	limiter       RateLimiter
}

// New checks the options and returns the API.
func New(o Options) (*API, error) {
	if o.Authority == nil || o.Store == nil || o.Issuers == nil {
		return nil, errors.New("api: Authority, Store and Issuers are required")
	}
	for pat, scopes := range o.ClientCertScopes {
		if !strings.HasPrefix(pat, "mtls:") {
			return nil, fmt.Errorf("api.client_cert_scopes: %q: a client certificate pattern starts with mtls:", pat)
		}
		for _, s := range scopes {
			if !slices.Contains(allScopes, s) {
				return nil, fmt.Errorf("api.client_cert_scopes: %q: unknown scope %q (want %s)", pat, s, strings.Join(allScopes, ", "))
			}
		}
	}
	a := &API{auth: o.Authority, store: o.Store, issuers: o.Issuers, mtls: o.ClientCertScopes,
		maxBody: o.MaxBodyBytes, now: o.Now, log: o.Logger, openapi: openAPIDocument}
	a.SetKeyService(o.Keys)
	if a.maxBody <= 0 {
		a.maxBody = 64 << 10
	}
	if o.KeysPerCredential < 0 {
		return nil, fmt.Errorf("api.keys_per_credential: %d is negative", o.KeysPerCredential)
	}
	if o.VersionsPerKey < 0 {
		return nil, fmt.Errorf("api.versions_per_key: %d is negative", o.VersionsPerKey)
	}
	a.maxKeys, a.maxVersions = cmp.Or(o.KeysPerCredential, 1000), cmp.Or(o.VersionsPerKey, 100)
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var err error
	if a.query, err = queryParams(a.openapi); err != nil {
		return nil, err
	}
	a.roots, a.inters = a.verifyPool()
	a.mtlsLimits = map[string]*ra.Limits{}
	for pat, l := range o.ClientCertLimits {
		if !strings.HasPrefix(pat, "mtls:") {
			return nil, errors.New("api: client certificate patterns start with mtls: (" + pat + ")")
		}
		lim, err := ra.ParseLimits(l.Names, l.Profiles)
		if err != nil {
			return nil, fmt.Errorf("api: client_cert_limits %s: %s", pat, core.DetailOf(err))
		}
		a.mtlsLimits[pat] = lim
	}
	if o.IssuePerHour > 0 && o.RateLimiter != nil {
		a.issuePerHour, a.limiter = o.IssuePerHour, o.RateLimiter
	}
	return a, nil
}

// Register mounts the routes on r (the server passes its /api/v1 group).
func (a *API) Register(r gin.IRouter) {
	r.GET("/openapi.json", a.openAPI)
	g := r.Group("", refuseCrossSite, a.limitBody, a.knownQuery(basePath(r)))
	g.POST("/certificates", a.require(ScopeIssue), a.issue)
	g.POST("/certificates/dry-run", a.require(ScopeIssue), a.dryRun)
	g.POST("/certificates/renew", a.renew) // the certificate itself authenticates
	g.GET("/certificates", a.require(ScopeRead), a.list)
	g.GET("/certificates/:serial", a.postOnly, a.require(ScopeRead), a.get)
	g.POST("/certificates/:serial/revoke", a.require(ScopeRevoke), a.revoke)
	g.GET("/issuers", a.require(ScopeRead), a.listIssuers)

	g.GET("/jwks/:id", a.jwks)
	k := g.Group("", a.require(ScopeKeys))
	k.GET("/keys", a.listKeys)
	k.POST("/keys", a.createKey)
	k.POST("/keys/import", a.importKey)
	k.POST("/keys/:id/export", a.exportKey)
	k.GET("/keys/:id", a.getKey)
	k.DELETE("/keys/:id", a.destroyKey)
	k.POST("/keys/:id/rotate", a.rotateKey)
	k.POST("/keys/:id/encrypt", a.encrypt)
	k.POST("/keys/:id/decrypt", a.decrypt)
	k.POST("/keys/:id/sign", a.sign)
	k.POST("/keys/:id/verify", a.verify)
	k.POST("/keys/:id/mac", a.mac)
	k.POST("/keys/:id/verify-mac", a.verifyMAC)
	k.POST("/keys/:id/data-key", a.dataKey)
	k.POST("/keys/:id/decrypt-data-key", a.decryptDataKey)
	k.POST("/keys/:id/jwt", a.signJWT)
	k.POST("/hash", a.hash)
	k.POST("/random", a.random)
}

// RegisterMetrics serves h (Prometheus) at GET /metrics on r, to
// credentials given the metrics scope, or admins without limits:
// issuance volumes, profile and issuer names and key ids are not for
// anyone who can reach the port, and they cover every team, so an admin
// limited to some names does not read them.
func (a *API) RegisterMetrics(r gin.IRouter, h http.Handler) {
	r.GET("/metrics", func(c *gin.Context) {
		p, err := a.authenticate(c)
		if err == nil && !slices.Contains(p.scopes, ScopeMetrics) && !ra.FullAdmin(p.limits, p.has(ScopeAdmin)) {
			err = core.Errorf(core.KindForbidden, "/metrics needs the %q scope, or an admin credential without name or profile limits", ScopeMetrics)
		}
		if err != nil {
			a.fail(c, err)
			return
		}
		c.Next()
	}, gin.WrapH(h))
}

// principal is who is calling and what they may do.
type principal struct {
	name   string
	scopes []string
	limits *ra.Limits // nil: only the policy
}

func (p principal) has(scope string) bool { return Grants(p.scopes, scope) }

// Grants says whether a credential with scopes may do what scope allows:
// admin allows everything.
func Grants(scopes []string, scope string) bool {
	return slices.Contains(scopes, scope) || slices.Contains(scopes, ScopeAdmin)
}

const principalKey = "strongroom.principal"

// require authenticates the caller (API key, else client certificate) and
// checks the scope.
func (a *API) require(scope string) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, err := a.authenticate(c)
		if err != nil {
			a.fail(c, err)
			return
		}
		core.SetPrincipal(c.Request.Context(), p.name) // for the request's log event
		if !p.has(scope) {
			a.fail(c, core.Errorf(core.KindForbidden, "this credential lacks the %q scope", scope))
			return
		}
		c.Set(principalKey, p)
		c.Next()
	}
}

// KeyLimits are the names and profiles key is kept to (nil: none).
func KeyLimits(k *storage.APIKey) (*ra.Limits, error) {
	lim, err := ra.ParseLimits(k.Names, k.Profiles)
	if err != nil {
		return nil, core.Wrap(core.KindInternal, err, "API key "+k.ID+" has unreadable limits")
	}
	return lim, nil
}

// KeyLookup finds API keys by the hash of their secret (*storage.DB).
type KeyLookup interface {
	APIKeyByHash(ctx context.Context, hash []byte) (*storage.APIKey, error)
}

// LookupKey returns the live API key whose secret this is: unknown and
// revoked keys are KindUnauthenticated. The REST API and the console sign
// in through it.
func LookupKey(ctx context.Context, store KeyLookup, secret string) (*storage.APIKey, error) {
	hash := hashKey(strings.TrimSpace(secret))
	k, err := store.APIKeyByHash(ctx, hash)
	if core.IsNotFound(err) {
		return nil, core.Errorf(core.KindUnauthenticated, "unknown API key")
	}
	if err != nil {
		return nil, err
	}
	// The lookup was by hash; compare again in constant time so a lookup
	// quirk can never let a different key through.
	if subtle.ConstantTimeCompare(k.Hash, hash) != 1 {
		return nil, core.Errorf(core.KindUnauthenticated, "unknown API key")
	}
	if err := KeyUsable(k, time.Now()); err != nil {
		return nil, err
	}
	return k, nil
}

// KeyUsable refuses a revoked or expired key (for every front end that
// takes API keys: the API, and the console's sessions).
func KeyUsable(k *storage.APIKey, now time.Time) error {
	if !k.RevokedAt.IsZero() {
		return core.Errorf(core.KindUnauthenticated, "this API key has been revoked")
	}
	if !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) {
		return core.Errorf(core.KindUnauthenticated, "this API key expired at %s", k.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

func (a *API) authenticate(c *gin.Context) (principal, error) {
	ctx := c.Request.Context()
	if h := c.GetHeader("Authorization"); h != "" {
		scheme, secret, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
			return principal{}, core.Errorf(core.KindUnauthenticated, "use Authorization: Bearer <API key>")
		}
		k, err := LookupKey(ctx, a.store, secret)
		if err != nil {
			return principal{}, err
		}
		a.Touch(ctx, k.ID)
		lim, err := KeyLimits(k)
		if err != nil {
			return principal{}, err
		}
		return principal{name: "apikey:" + k.ID, scopes: k.Scopes, limits: lim}, nil
	}
	leaf, err := a.clientCert(c, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return principal{}, err
	}
	if leaf != nil {
		// Fail closed: a certificate we hold no record of (a database
		// restored from before it was issued) or whose status cannot be
		// read now could be revoked.
		rec, err := a.auth.Certificate(ctx, core.SerialFromBig(leaf.SerialNumber))
		switch {
		case core.IsNotFound(err):
			return principal{}, core.Errorf(core.KindUnauthenticated, "this client certificate is not one we know")
		case err != nil:
			return principal{}, core.Wrap(core.KindUnavailable, err, "the client certificate's status cannot be checked now")
		case !bytes.Equal(rec.DER, leaf.Raw):
			// The serial of one of ours on another certificate (one made
			// with a leaked CA key, say) is not that certificate.
			return principal{}, core.Errorf(core.KindUnauthenticated, "this client certificate is not one we know")
		case rec.Status == core.StatusRevoked:
			return principal{}, core.Errorf(core.KindUnauthenticated, "this client certificate has been revoked")
		case rec.Status != core.StatusValid:
			return principal{}, core.Errorf(core.KindUnauthenticated, "this client certificate is not valid")
		case rec.Profile != ClientProfile:
			// Anyone allowed to issue a tls-client certificate chooses its
			// common name; only the closed api-client profile may log in.
			return principal{}, core.Errorf(core.KindUnauthenticated, "client certificates for this API must be issued with the %s profile", ClientProfile)
		}
		if strings.Contains(leaf.Subject.CommonName, "/") {
			// The key service keeps a principal's keys under "principal/":
			// "mtls:team/x" would own keys that "mtls:team" could list.
			return principal{}, core.Errorf(core.KindUnauthenticated, "a client certificate's common name may not contain \"/\"")
		}
		name := "mtls:" + leaf.Subject.CommonName
		return principal{name: name, scopes: a.scopesFor(name), limits: a.limitsFor(name)}, nil
	}
	return principal{}, core.Errorf(core.KindUnauthenticated, "authentication required: Authorization: Bearer <API key>, or a client certificate")
}

// Touch records a key's use at most once a minute (not a write per
// request); the console calls it too.
func (a *API) Touch(ctx context.Context, id string) {
	now := a.now()
	if last, ok := a.touched.Load(id); ok && now.Sub(last.(time.Time)) < time.Minute {
		return
	}
	a.touched.Store(id, now)
	if err := a.store.TouchAPIKey(ctx, id, now.UTC()); err != nil {
		a.log.WarnContext(ctx, "recording API key use failed", "err", err)
	}
}

// ClientProfile is the CA profile whose certificates may authenticate to
// the API over mTLS (closed by default in ra; grant it per principal).
const ClientProfile = ra.CredentialProfile

func principalOf(c *gin.Context) principal {
	v, _ := c.Get(principalKey)
	p, _ := v.(principal)
	return p
}

// limitBody refuses bodies over the limit with 413, whether announced by
// Content-Length or discovered while reading.
func (a *API) limitBody(c *gin.Context) {
	if c.Request.ContentLength > a.maxBody {
		writeProblem(c, Problem{Type: problemBase + "tooLarge", Title: "Request body too large",
			Status: http.StatusRequestEntityTooLarge, Detail: "the body is over the limit"})
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, a.maxBody)
	c.Next()
}

func (a *API) openAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", a.openapi)
}

func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func patternMatches(pat, name string) bool {
	return pat == name || (strings.HasSuffix(pat, "*") && strings.HasPrefix(name, strings.TrimSuffix(pat, "*")))
}

// scopesFor is what api.client_cert_scopes grants name: the scopes of
// every pattern it matches.
func (a *API) scopesFor(name string) []string {
	var scopes []string
	for pat, s := range a.mtls {
		if patternMatches(pat, name) {
			scopes = append(scopes, s...)
		}
	}
	return scopes
}

// limitsFor picks the client certificate limits for name: the exact
// pattern, else the longest matching prefix pattern.
func (a *API) limitsFor(name string) *ra.Limits {
	if l, ok := a.mtlsLimits[name]; ok {
		return l
	}
	var best string
	for pat := range a.mtlsLimits {
		if patternMatches(pat, name) && len(pat) > len(best) {
			best = pat
		}
	}
	if best == "" {
		return nil
	}
	return a.mtlsLimits[best]
}
