package web

import (
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/core"
)

// Failed sign-ins allowed per client address in loginWindow. API keys hold
// 256 random bits, so this does not protect them from guessing; it slows
// and makes visible (a WARN per refusal) whoever is trying.
const (
	loginFailures = 20
	loginWindow   = 10 * time.Minute
)

func loginLimitKey(c *gin.Context) string { return "console-login:" + core.ClientIP(c.Request) }

// loginAllowed counts a sign-in attempt from the client's address; false
// and the wait when the address has used up its failures. The attempt is
// given back if it succeeds (loginSucceeded), so only failures count. A
// limiter that cannot answer lets the attempt through (logged): the keys'
// strength, not this count, is what keeps them safe.
func (w *Console) loginAllowed(c *gin.Context) (time.Duration, bool) {
	if w.o.RateLimiter == nil {
		return 0, true
	}
	ctx := c.Request.Context()
	ok, retry, err := w.o.RateLimiter.Allow(ctx, loginLimitKey(c), loginFailures, loginWindow)
	if err != nil {
		w.log.WarnContext(ctx, "console sign-in: the failure count cannot be checked", "err", err)
		return 0, true
	}
	if !ok {
		w.log.WarnContext(ctx, "console sign-in refused: too many failures from this address", "remote", c.Request.RemoteAddr)
	}
	return retry, ok
}

func (w *Console) loginSucceeded(c *gin.Context) {
	if w.o.RateLimiter == nil {
		return
	}
	if err := w.o.RateLimiter.Refund(c.Request.Context(), loginLimitKey(c), loginWindow); err != nil {
		w.log.WarnContext(c.Request.Context(), "console sign-in: giving back the attempt", "err", err)
	}
}
