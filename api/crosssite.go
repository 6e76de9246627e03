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
// The console runs the same check on its forms (CrossSite).
var crossSite = http.NewCrossOriginProtection()

// CrossSite reports whether r is a state-changing request a browser sent
// from another site: an error for a POST, PUT, PATCH or DELETE whose
// Sec-Fetch-Site is not same-origin or none, or, without that header,
// whose Origin names another host than Host (Origin: null included).
func CrossSite(r *http.Request) error { return crossSite.Check(r) }

func refuseCrossSite(c *gin.Context) {
	if err := CrossSite(c.Request); err != nil {
		writeProblem(c, Problem{Type: problemBase + "crossSite", Title: "Cross-site request refused", Status: http.StatusForbidden,
			Detail: "a browser sent this " + c.Request.Method + " from another site (Sec-Fetch-Site or Origin); the API takes state-changing requests from programs and from its own origin only"})
		return
	}
	c.Next()
}
