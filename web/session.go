package web

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/api"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
)

const (
	cookieName = "strongroom_console"
	sessionTTL = 8 * time.Hour
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

// login checks an API key secret and returns the session cookie value.
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
	body := k.ID + "." + strconv.FormatInt(w.now().Add(sessionTTL).Unix(), 10)
	mac, err := w.o.MAC.HMAC(ctx, []byte("session|"+body))
	if err != nil {
		return "", err
	}
	return body + "." + base64.RawURLEncoding.EncodeToString(mac), nil
}

// operatorOf checks the session cookie and the key it names.
func (w *Console) operatorOf(c *gin.Context) (*operator, error) {
	v, err := c.Cookie(cookieName)
	if err != nil || v == "" {
		return nil, errNoSession
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return nil, errNoSession
	}
	mac, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, errNoSession
	}
	ctx := c.Request.Context()
	if err := w.o.MAC.VerifyHMAC(ctx, []byte("session|"+parts[0]+"."+parts[1]), mac); err != nil {
		return nil, errNoSession
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || w.now().Unix() >= exp {
		return nil, errNoSession
	}
	k, err := w.o.Store.APIKeyByID(ctx, parts[0])
	if err != nil || api.KeyUsable(k, w.now()) != nil {
		return nil, errNoSession
	}
	lim, err := ra.ParseLimits(k.Names, k.Profiles)
	if err != nil {
		return nil, errNoSession
	}
	return &operator{keyID: k.ID, name: k.Name, scopes: k.Scopes, limits: lim, cookie: v}, nil
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
	c.SetCookie(cookieName, value, maxAge, "/ui", "", true, true)
}
