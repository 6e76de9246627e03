package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// crossSite refuses a state-changing request a browser sent on behalf of
// another site (net/http's CrossOriginProtection: Sec-Fetch-Site, else
// Origin against Host). Browsers attach a TLS client certificate to any
// request to this host, so without this check a page elsewhere could
// revoke, renew or rotate with the visitor's api-client certificate by a
// form or a no-cors fetch, which needs no preflight (found by a security
// review). Programs send neither header and are not affected; bearer keys
// are never sent by a browser on its own.
var crossSite = http.NewCrossOriginProtection()

func refuseCrossSite(c *gin.Context) {
	if err := crossSite.Check(c.Request); err != nil {
		writeProblem(c, Problem{Type: problemBase + "crossSite", Title: "Cross-site request refused", Status: http.StatusForbidden,
			Detail: "a browser sent this " + c.Request.Method + " from another site (Sec-Fetch-Site or Origin); the API takes state-changing requests from programs and from its own origin only"})
		return
	}
	c.Next()
}
