package web

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/api"
	"github.com/strongroom-pki/strongroom/core"
)

// API key management, for admin keys: the list (never a secret: only
// hashes are stored), a new key whose secret is shown once, and
// revocation. What `ca apikey` does on the command line.

type keysData struct {
	Keys   []api.KeyInfo
	Scopes []string
	Self   string // the signed-in key's id: it cannot revoke itself here
	Name   string // a new key's name
	Secret string // a new key's secret, shown once
}

var consoleScopes = []string{api.ScopeIssue, api.ScopeRevoke, api.ScopeRead, api.ScopeKeys, api.ScopeMetrics, api.ScopeAdmin}

func (w *Console) keysPage(c *gin.Context, op *operator, status int, d keysData, errMsg string) {
	keys, err := api.ListKeys(c.Request.Context(), w.o.Store)
	if err != nil {
		w.fail(c, op, err)
		return
	}
	d.Keys, d.Scopes, d.Self = keys, consoleScopes, op.keyID
	w.render(c, status, "keys", page{Title: "API keys", Op: op, Error: errMsg, Data: d})
}

func (w *Console) keys(c *gin.Context, op *operator) {
	if w.requireFullAdmin(c, op) {
		w.keysPage(c, op, http.StatusOK, keysData{}, "")
	}
}

func (w *Console) createKey(c *gin.Context, op *operator) {
	if !w.requireFullAdmin(c, op) {
		return
	}
	var scopes []string
	for _, s := range c.PostFormArray("scope") {
		if !slices.Contains(consoleScopes, s) {
			w.fail(c, op, core.Errorf(core.KindMalformed, "unknown scope %q", s))
			return
		}
		scopes = append(scopes, s)
	}
	name := c.PostForm("name")
	var ttl time.Duration
	var err error
	if e := strings.TrimSpace(c.PostForm("expires")); e != "" {
		if ttl, err = api.ParseKeyExpiry("expires", e); err != nil {
			w.keysPage(c, op, http.StatusBadRequest, keysData{}, core.DetailOf(err))
			return
		}
	}
	secret, id, err := api.CreateKeyWith(c.Request.Context(), w.o.Store, api.KeySpec{Name: name, Scopes: scopes,
		Names: strings.Split(c.PostForm("names"), ","), Profiles: strings.Split(c.PostForm("profiles"), ","),
		KnownProfiles: w.o.Profiles, TTL: ttl})
	if err != nil {
		if core.KindOf(err) == core.KindMalformed {
			w.keysPage(c, op, http.StatusBadRequest, keysData{}, core.DetailOf(err))
			return
		}
		w.fail(c, op, err)
		return
	}
	w.log.InfoContext(c.Request.Context(), "console: API key created", "key", id, "scopes", scopes, "by", op.principal())
	w.keysPage(c, op, http.StatusCreated, keysData{Name: name, Secret: secret}, "")
}

func (w *Console) revokeKey(c *gin.Context, op *operator) {
	if !w.requireFullAdmin(c, op) {
		return
	}
	id := c.Param("id")
	if id == op.keyID {
		w.fail(c, op, core.Errorf(core.KindConflict, "sign in with another admin key to revoke the one you are using"))
		return
	}
	if err := api.RevokeKey(c.Request.Context(), w.o.Store, id); err != nil {
		w.fail(c, op, err)
		return
	}
	w.log.InfoContext(c.Request.Context(), "console: API key revoked", "key", id, "by", op.principal())
	c.Redirect(http.StatusSeeOther, "/ui/keys")
}
