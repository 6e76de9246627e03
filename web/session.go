package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/api"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
)

const (
	// cookieName has the __Host- prefix: browsers take it only from this
	// host over HTTPS with Path=/ and no Domain, so a sibling host cannot
	// plant a session cookie of its own.
	cookieName = "__Host-strongroom_console"
	sessionTTL = 8 * time.Hour
	// sessionBytes of randomness make the secret the cookie holds.
	sessionBytes = 32
)

// operator is who is signed in.
type operator struct {
	keyID  string
	name   string // the API key's name
	scopes []string
	limits *ra.Limits // the API key's names and profiles; nil: only policy
	cookie string     // the session cookie's value (the CSRF token is derived from it)
}

func (o *operator) may(scope string) bool { return api.Grants(o.scopes, scope) }

func (o *operator) principal() string { return api.ConsolePrefix + "apikey:" + o.keyID }

// Name is the API key's name, shown in the header.
func (o *operator) Name() string { return o.name }

var errNoSession = errors.New("no session")

// sessionID is what the database keeps of a session secret.
func sessionID(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// login checks an API key secret, records a new session and returns the
// session cookie value: a random secret.
func (w *Console) login(ctx context.Context, secret string) (string, error) {
	k, err := api.LookupKey(ctx, w.o.Store, secret)
	if err != nil {
		return "", err
	}
	if !slices.ContainsFunc([]string{api.ScopeRead, api.ScopeIssue, api.ScopeRevoke, api.ScopeAdmin}, func(s string) bool { return slices.Contains(k.Scopes, s) }) {
		// A metrics or key-service key would sign in to pages that all
		// refuse it.
		return "", core.Errorf(core.KindForbidden, "this API key's scopes (%s) give nothing in the console: sign in with a key that may read, issue, revoke or administer", strings.Join(k.Scopes, ", "))
	}
	b := make([]byte, sessionBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making a session: %w", err)
	}
	v := base64.RawURLEncoding.EncodeToString(b)
	now := w.now()
	if err := w.o.Store.CreateConsoleSession(ctx, &storage.ConsoleSession{ID: sessionID(v), KeyID: k.ID,
		CreatedAt: now, ExpiresAt: now.Add(sessionTTL)}); err != nil {
		return "", err
	}
	return v, nil
}

// operatorOf checks the session cookie, its session and the key it names.
func (w *Console) operatorOf(c *gin.Context) (*operator, error) {
	v, err := c.Cookie(cookieName)
	if err != nil || base64.RawURLEncoding.DecodedLen(len(v)) != sessionBytes {
		return nil, errNoSession
	}
	ctx := c.Request.Context()
	s, err := w.o.Store.ConsoleSessionByID(ctx, sessionID(v))
	if err != nil || !w.now().Before(s.ExpiresAt) {
		return nil, errNoSession
	}
	k, err := w.o.Store.APIKeyByID(ctx, s.KeyID)
	if err != nil || api.KeyUsable(k, w.now()) != nil {
		return nil, errNoSession
	}
	lim, err := api.KeyLimits(k)
	if err != nil {
		return nil, errNoSession
	}
	if w.o.Touch != nil {
		w.o.Touch(ctx, k.ID)
	}
	return &operator{keyID: k.ID, name: k.Name, scopes: k.Scopes, limits: lim, cookie: v}, nil
}

// endSession signs out: the session is deleted, so its cookie, wherever a
// copy of it is, no longer works on any node.
func (w *Console) endSession(ctx context.Context, op *operator) error {
	return w.o.Store.EndConsoleSession(ctx, sessionID(op.cookie))
}

// csrf is the token every form of the session carries.
func (w *Console) csrf(ctx context.Context, op *operator) (string, error) {
	m, err := w.o.MAC.HMAC(ctx, []byte("csrf|"+op.cookie))
	return base64.RawURLEncoding.EncodeToString(m), err
}

func (w *Console) checkCSRF(c *gin.Context, op *operator) error {
	m, err := base64.RawURLEncoding.DecodeString(c.PostForm("csrf"))
	if err == nil {
		err = w.o.MAC.VerifyHMAC(c.Request.Context(), []byte("csrf|"+op.cookie), m)
	}
	if err != nil {
		return core.Errorf(core.KindForbidden, "the form is stale or did not come from this console; reload the page and try again")
	}
	return nil
}

func setCookie(c *gin.Context, value string, maxAge int) {
	c.SetSameSite(http.SameSiteStrictMode)
	c.SetCookie(cookieName, value, maxAge, "/", "", true, true)
}
