package acme

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

// Problem documents (RFC 8555 §6.7). Handlers return errors; the edge turns
// them into problems here and only here: a *problem passes through, a
// core.Error maps by Kind, anything else is serverInternal with a generic
// detail (the cause is logged, never sent).

const errNS = "urn:ietf:params:acme:error:"

// allowedAlgs is the JWS algorithm allow-list (RFC 8555 §6.2: no MAC, no none).
var allowedAlgs = []string{"RS256", "ES256", "ES384", "EdDSA"}

type subproblem struct {
	Type       string      `json:"type"`
	Detail     string      `json:"detail"`
	Identifier *Identifier `json:"identifier,omitempty"`
}

type problem struct {
	Type        string       `json:"type"`
	Detail      string       `json:"detail"`
	Status      int          `json:"status"`
	Subproblems []subproblem `json:"subproblems,omitempty"`
	Algorithms  []string     `json:"algorithms,omitempty"` // badSignatureAlgorithm (§6.2)

	retryAfter time.Duration
	location   string // e.g. the existing account on keyChange conflict
}

func (p *problem) Error() string { return p.Type + ": " + p.Detail }

func prob(typ string, status int, detail string) *problem {
	return &problem{Type: errNS + typ, Status: status, Detail: detail}
}

func malformed(detail string) *problem { return prob("malformed", http.StatusBadRequest, detail) }
func unauthorized(detail string) *problem {
	return prob("unauthorized", http.StatusForbidden, detail)
}
func notFoundProblem(what string) *problem {
	return prob("malformed", http.StatusNotFound, what+" not found")
}

// identifierErrors collects every *IdentifierError in err's tree.
func identifierErrors(err error) []*IdentifierError {
	var out []*IdentifierError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if ie, ok := e.(*IdentifierError); ok {
			out = append(out, ie)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// rejected builds rejectedIdentifier with one subproblem per refused
// identifier; detail is the client-safe summary.
func rejected(err error, detail string) *problem {
	p := prob("rejectedIdentifier", http.StatusBadRequest, detail)
	ies := identifierErrors(err)
	for _, ie := range ies {
		id := ie.Identifier
		p.Subproblems = append(p.Subproblems, subproblem{Type: errNS + "rejectedIdentifier", Detail: ie.Detail, Identifier: &id})
	}
	if len(ies) == 1 {
		// The subproblem's detail may read on from its identifier ("is
		// outside the permitted DNS subtrees …"): name it.
		p.Detail = ies[0].Error()
	}
	return p
}

// toProblem is the one mapping from errors to problem documents.
func toProblem(err error) *problem {
	err = storage.Classify(err) // a database outage is 503, not 500
	var p *problem
	if errors.As(err, &p) {
		return p
	}
	if len(identifierErrors(err)) > 0 {
		return rejected(err, "identifiers refused by policy")
	}
	detail := core.DetailOf(err)
	switch core.KindOf(err) {
	case core.KindMalformed:
		return malformed(detail)
	case core.KindBadCSR:
		return prob("badCSR", http.StatusBadRequest, detail)
	case core.KindBadKey:
		return prob("badPublicKey", http.StatusBadRequest, detail)
	case core.KindRejected:
		return prob("rejectedIdentifier", http.StatusBadRequest, detail)
	case core.KindUnauthenticated, core.KindForbidden:
		return unauthorized(detail)
	case core.KindNotFound:
		return prob("malformed", http.StatusNotFound, detail)
	case core.KindConflict:
		return prob("malformed", http.StatusConflict, detail)
	case core.KindRateLimited:
		p := prob("rateLimited", http.StatusTooManyRequests, detail)
		p.retryAfter = time.Minute
		return p
	case core.KindUnavailable:
		p := prob("serverInternal", http.StatusServiceUnavailable, "service temporarily unavailable")
		p.retryAfter = 30 * time.Second
		return p
	default:
		return prob("serverInternal", http.StatusInternalServerError, "internal error")
	}
}

func writeProblem(w http.ResponseWriter, p *problem) {
	if p.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((p.retryAfter+time.Second-1)/time.Second)))
	}
	if p.location != "" {
		w.Header().Set("Location", p.location)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// problemJSON encodes a problem for storage in an order or challenge.
func problemJSON(p *problem) []byte {
	b, _ := json.Marshal(p)
	return b
}

// validationProblem maps a Validator error: its ProblemType if it has one,
// else incorrectResponse. The validator's message describes what it saw and
// is meant for the client.
func validationProblem(err error) *problem {
	typ := "incorrectResponse"
	var pt interface{ ProblemType() string }
	if errors.As(err, &pt) && pt.ProblemType() != "" {
		typ = strings.TrimPrefix(pt.ProblemType(), errNS)
	}
	return prob(typ, http.StatusForbidden, err.Error())
}
