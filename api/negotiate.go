package api

import (
	"fmt"
	"mime"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

// negotiate picks the media type to answer with from offers (in the
// server's order of preference) by the request's Accept header (RFC 9110
// §12.5.1): the offer with the highest quality, a more specific range
// deciding an offer's quality over a less specific one; ties go to the
// earlier offer. No Accept header is offers[0]. An offer no range accepts
// (q=0, or not listed) is never chosen; if none is acceptable the error is
// a 406 problem.
func negotiate(c *gin.Context, offers ...string) (string, error) {
	accept := strings.Join(c.Request.Header.Values("Accept"), ",")
	if strings.TrimSpace(accept) == "" {
		return offers[0], nil
	}
	var ranges []acceptRange
	for _, part := range strings.Split(accept, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		r, ok := parseAcceptRange(part)
		if ok {
			ranges = append(ranges, r)
		}
	}
	best, bestQ := "", 0.0
	for _, offer := range offers {
		if q := qualityOf(offer, ranges); q > bestQ {
			best, bestQ = offer, q
		}
	}
	if best == "" {
		return "", &notAcceptable{accept: accept, offers: offers}
	}
	return best, nil
}

type acceptRange struct {
	typ, sub string
	q        float64
}

func parseAcceptRange(s string) (acceptRange, bool) {
	mt, params, err := mime.ParseMediaType(strings.TrimSpace(s))
	if err != nil {
		return acceptRange{}, false // an unparsable range accepts nothing
	}
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || (typ == "*" && sub != "*") {
		return acceptRange{}, false
	}
	r := acceptRange{typ: typ, sub: sub, q: 1}
	if qs, ok := params["q"]; ok {
		q, err := strconv.ParseFloat(qs, 64)
		if err != nil || q < 0 || q > 1 {
			return acceptRange{}, false
		}
		r.q = q
	}
	return r, true
}

// qualityOf is the quality the most specific matching range gives offer.
func qualityOf(offer string, ranges []acceptRange) float64 {
	typ, sub, _ := strings.Cut(offer, "/")
	q, spec := 0.0, -1
	for _, r := range ranges {
		s := -1
		switch {
		case r.typ == typ && r.sub == sub:
			s = 2
		case r.typ == typ && r.sub == "*":
			s = 1
		case r.typ == "*":
			s = 0
		}
		if s > spec {
			q, spec = r.q, s
		}
	}
	return q
}

// notAcceptable is an Accept header no offered type satisfies (406, RFC
// 9110 §15.5.7).
type notAcceptable struct {
	accept string
	offers []string
}

func (n *notAcceptable) Error() string {
	return fmt.Sprintf("no response type matches Accept %q (this operation answers %s)", n.accept, strings.Join(n.offers, ", "))
}
