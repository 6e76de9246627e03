package api

import (
	"errors"
	"fmt"
	"mime"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/hsm"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
)

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Identifiers lists refused names, one entry each, when policy
	// refused some.
	Identifiers []IdentifierProblem `json:"identifiers,omitempty"`
}

// IdentifierProblem is one refused name.
type IdentifierProblem struct {
	Type   string `json:"type"`
	Value  string `json:"value"`
	Detail string `json:"detail"`
}

const problemBase = "urn:strongroom:problem:"

// Statuses by kind: the one mapping from core.Error kinds to HTTP.
var kindStatus = map[core.Kind]int{
	core.KindMalformed:       http.StatusBadRequest,
	core.KindBadCSR:          http.StatusBadRequest,
	core.KindBadKey:          http.StatusBadRequest,
	core.KindRejected:        http.StatusUnprocessableEntity,
	core.KindUnauthenticated: http.StatusUnauthorized,
	core.KindForbidden:       http.StatusForbidden,
	core.KindNotFound:        http.StatusNotFound,
	core.KindConflict:        http.StatusConflict,
	core.KindRateLimited:     http.StatusTooManyRequests,
	core.KindUnavailable:     http.StatusServiceUnavailable,
	core.KindInternal:        http.StatusInternalServerError,
}

// StatusOf is the HTTP status of an error's kind (500 for an error without
// one), for other front ends (the console) answering the same errors.
func StatusOf(err error) int {
	if s, ok := kindStatus[core.KindOf(storage.Classify(err))]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// problemFor builds the document for err. Internal detail never reaches
// the client.
func problemFor(err error) Problem {
	err = storage.Classify(err) // a database outage is 503, not 500
	k := core.KindOf(err)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return Problem{Type: problemBase + "tooLarge", Title: "Request body too large",
			Status: http.StatusRequestEntityTooLarge, Detail: err.Error()}
	}
	var um *unsupportedMedia
	if errors.As(err, &um) {
		return Problem{Type: problemBase + "unsupportedMediaType", Title: http.StatusText(http.StatusUnsupportedMediaType),
			Status: http.StatusUnsupportedMediaType, Detail: um.Error()}
	}
	var na *notAcceptable
	if errors.As(err, &na) {
		return Problem{Type: problemBase + "notAcceptable", Title: http.StatusText(http.StatusNotAcceptable),
			Status: http.StatusNotAcceptable, Detail: na.Error()}
	}
	if errors.Is(err, hsm.ErrCorrupt) {
		// Still a 500 (the server's state, not the request, is wrong), but
		// one the application's developer can act on: the key is refused
		// until an operator deals with it.
		return Problem{Type: problemBase + "keyDamaged", Title: http.StatusText(http.StatusInternalServerError), Status: http.StatusInternalServerError,
			Detail: damagedKeyReason}
	}
	status, ok := kindStatus[k]
	if !ok {
		status = http.StatusInternalServerError
	}
	p := Problem{Type: problemBase + k.String(), Title: http.StatusText(status), Status: status, Detail: core.DetailOf(err)}
	var ie *ra.IdentifierError
	if errors.As(err, &ie) {
		for _, ip := range ie.Problems {
			p.Identifiers = append(p.Identifiers, IdentifierProblem{Type: ip.Identifier.Type, Value: ip.Identifier.Value, Detail: ip.Detail})
		}
	}
	return p
}

// fail writes the problem for err and stops the handler chain.
func (a *API) fail(c *gin.Context, err error) {
	if core.ClientGone(c.Request.Context(), err) {
		a.log.DebugContext(c.Request.Context(), "request abandoned by its client", "err", err, "path", c.FullPath())
		c.AbortWithStatus(core.StatusClientClosed)
		return
	}
	p := problemFor(err)
	if p.Status >= 500 {
		a.failures.Log(c.Request.Context(), a.log, p.Status, "request failed", "err", err, "path", c.FullPath())
	} else {
		a.log.DebugContext(c.Request.Context(), "request refused", "err", err, "path", c.FullPath())
	}
	writeProblem(c, p)
}

func writeProblem(c *gin.Context, p Problem) {
	if p.Status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="strongroom"`)
	}
	if p.Status == http.StatusServiceUnavailable && c.Writer.Header().Get("Retry-After") == "" {
		c.Header("Retry-After", "5")
	}
	c.Header("Cache-Control", "no-store")
	c.Abort()
	c.Render(p.Status, problemRender{p})
}

// problemRender writes JSON with the problem+json media type.
type problemRender struct{ p Problem }

func (r problemRender) Render(w http.ResponseWriter) error {
	r.WriteContentType(w)
	return encodeJSON(w, r.p)
}

func (r problemRender) WriteContentType(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/problem+json")
}

// unsupportedMedia is a request body of a type the operation does not take
// (415, RFC 9110 §15.5.16).
type unsupportedMedia struct{ got, want string }

func (u *unsupportedMedia) Error() string {
	return fmt.Sprintf("unsupported Content-Type %q (use %s)", u.got, u.want)
}

// issueMediaTypes are the bodies issuance and renewal take.
const issueMediaTypes = "application/json or application/pkcs10"

// mediaType is the request's Content-Type without parameters ("" when
// absent); one that does not parse is a 415 naming want.
func mediaType(c *gin.Context, want string) (string, error) {
	ct := c.GetHeader("Content-Type")
	if ct == "" {
		return "", nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", &unsupportedMedia{got: ct, want: want}
	}
	return mt, nil
}

// jsonMediaType refuses (415) a body sent as anything but JSON (none
// given is taken as JSON). A form or text/plain body is what a browser
// may send cross-site without asking first, and what curl -d sends: an
// operation that reads JSON does not read it as JSON anyway.
func jsonMediaType(c *gin.Context) error {
	mt, err := mediaType(c, "application/json")
	if err != nil || mt == "" || mt == "application/json" {
		return err
	}
	return &unsupportedMedia{got: mt, want: "application/json"}
}
