package api

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strongroom-pki/strongroom/core"
)

// pemCSRDER is the DER of a PEM CSR (t starts with -----BEGIN): one
// CERTIFICATE REQUEST (or NEW CERTIFICATE REQUEST) block and nothing after
// it but white space, as DER allows no trailing data.
func pemCSRDER(t []byte) ([]byte, error) {
	blk, rest := pem.Decode(t)
	if blk == nil {
		return nil, core.Errorf(core.KindMalformed, "no complete PEM block (a truncated or damaged PEM CSR?): send the CSR from its -----BEGIN CERTIFICATE REQUEST----- line to its -----END CERTIFICATE REQUEST----- line")
	}
	if blk.Type != "CERTIFICATE REQUEST" && blk.Type != "NEW CERTIFICATE REQUEST" {
		return nil, core.Errorf(core.KindMalformed, "the PEM block is a %q, not a CERTIFICATE REQUEST", blk.Type)
	}
	if rest = bytes.TrimSpace(rest); len(rest) > 0 {
		if bytes.Contains(rest, []byte("-----BEGIN")) {
			return nil, core.Errorf(core.KindMalformed, "another PEM block follows the CSR; send one CSR and nothing else")
		}
		return nil, core.Errorf(core.KindMalformed, "trailing data after the PEM CSR's -----END CERTIFICATE REQUEST----- line; send the CSR and nothing else")
	}
	return blk.Bytes, nil
}

// invalidityDateForm is what a revocation's invalidity_date must be.
const invalidityDateForm = "invalidity_date must be an RFC 3339 time such as 2026-11-01T00:00:00Z"

// checkInvalidityDate refuses a revocation body whose invalidity_date is
// not RFC 3339 text in plain words, before encoding/json would in Go's
// ("parsing time ... as \"2006-01-02T15:04:05Z07:00\""). A body that is not
// JSON is left to the decoder.
func checkInvalidityDate(body []byte) error {
	var probe struct {
		InvalidityDate json.RawMessage `json:"invalidity_date"`
	}
	if json.Unmarshal(body, &probe) != nil || len(probe.InvalidityDate) == 0 || string(probe.InvalidityDate) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(probe.InvalidityDate, &s); err != nil {
		return core.Errorf(core.KindMalformed, "%s, as a JSON string", invalidityDateForm)
	}
	var t time.Time
	if err := t.UnmarshalJSON(probe.InvalidityDate); err != nil {
		if len(s) > 64 {
			s = s[:64] + "…"
		}
		return core.Wrap(core.KindMalformed, err, fmt.Sprintf("%s (not %q)", invalidityDateForm, s))
	}
	return nil
}

// postOnly answers 405 for GET (and HEAD) of the POST-only resources that
// GET /certificates/{serial} would otherwise take for a serial ("serial
// \"dry-run\" is not hex"), before authentication, as a method that is
// not allowed does not depend on who asks.
func (a *API) postOnly(c *gin.Context) {
	switch s := c.Param("serial"); s {
	case "dry-run", "renew":
		c.Header("Allow", http.MethodPost)
		writeProblem(c, Problem{Type: problemBase + "methodNotAllowed", Title: http.StatusText(http.StatusMethodNotAllowed),
			Status: http.StatusMethodNotAllowed, Detail: c.Request.Method + " is not allowed on /certificates/" + s + ": use POST"})
		return
	}
	c.Next()
}
