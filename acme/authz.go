package acme

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

// Authorizations and challenges (RFC 8555 §7.5, §8). The first challenge
// POST moves the challenge to processing and starts the Validator, which
// settles challenge and authorization to valid or invalid (a failed attempt
// invalidates the authorization, §7.5.1); the POST answers with the result
// if it comes within ValidationWait, else processing. Later POSTs answer
// the challenge's state and validate nothing (validate.go).

type challengeJSON struct {
	Type      string          `json:"type"`
	URL       string          `json:"url"`
	Status    string          `json:"status"`
	Token     string          `json:"token"`
	Validated string          `json:"validated,omitempty"`
	Error     json.RawMessage `json:"error,omitempty"`
}

type authzJSON struct {
	Identifier Identifier      `json:"identifier"`
	Status     string          `json:"status"`
	Expires    string          `json:"expires"`
	Challenges []challengeJSON `json:"challenges"`
	Wildcard   bool            `json:"wildcard,omitempty"`
}

// newAuthz offers the challenges that can prove id: dns-01 only for a
// wildcard (§7.1.3), no dns-01 for an IP address (RFC 8738 §7).
func newAuthz(id Identifier, expires time.Time) (*storage.ACMEAuthz, error) {
	a := &storage.ACMEAuthz{Identifier: storage.ACMEIdentifier(id), Status: "pending", Expires: expires}
	types := []string{"http-01", "dns-01", "tls-alpn-01"}
	if base, ok := cutWildcard(id); ok {
		a.Identifier.Value, a.Wildcard, types = base, true, []string{"dns-01"}
	} else if id.Type == "ip" {
		types = []string{"http-01", "tls-alpn-01"}
	}
	var err error
	if a.ID, err = randomID(); err != nil {
		return nil, err
	}
	for _, t := range types {
		c := storage.ACMEChallenge{Type: t, Status: "pending"}
		if c.ID, err = randomID(); err != nil {
			return nil, err
		}
		tok := make([]byte, 32) // §8.3: at least 128 bits of entropy
		if _, err := rand.Read(tok); err != nil {
			return nil, err
		}
		c.Token = base64.RawURLEncoding.EncodeToString(tok)
		a.Challenges = append(a.Challenges, c)
	}
	return a, nil
}

// reusedAuthz returns, for a new order, a valid copy of the account's
// authorization for id whose challenge was validated within AuthzReuse
// and which is still valid; nil when there is none (or reuse is off). The
// copy keeps the original's expiry and its one valid challenge, token
// included, so the client sees the identifier already authorized (certbot
// and lego then skip it); the shared token is how deactivating one copy
// finds the others (storage.DeactivateACMEAuthz). A copy rather than a
// reference: an order's authorizations are its own rows, which is what
// the schema and a node of the previous release expect.
func (s *Server) reusedAuthz(ctx context.Context, accountID string, id Identifier, now time.Time) (*storage.ACMEAuthz, error) {
	if s.o.AuthzReuse < 0 {
		return nil, nil
	}
	key, wildcard := storage.ACMEIdentifier(id), false
	if base, ok := cutWildcard(id); ok {
		key.Value, wildcard = base, true
	}
	prev, err := s.o.Store.ReusableACMEAuthz(ctx, s.o.Name, accountID, key, wildcard, now)
	if core.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, c := range prev.Challenges {
		if c.Status != "valid" || c.Validated.Before(now.Add(-s.o.AuthzReuse)) {
			continue
		}
		a := &storage.ACMEAuthz{Identifier: key, Wildcard: wildcard, Status: "valid", Expires: prev.Expires}
		c.Error = nil
		if a.ID, err = randomID(); err != nil {
			return nil, err
		}
		if c.ID, err = randomID(); err != nil {
			return nil, err
		}
		a.Challenges = []storage.ACMEChallenge{c}
		return a, nil
	}
	return nil, nil
}

func cutWildcard(id Identifier) (string, bool) {
	if id.Type != "dns" || len(id.Value) < 2 || id.Value[:2] != "*." {
		return "", false
	}
	return id.Value[2:], true
}

func (s *Server) challengeJSON(c *storage.ACMEChallenge) challengeJSON {
	return challengeJSON{Type: c.Type, URL: s.url(pathChallenge, c.ID), Status: c.Status, Token: c.Token,
		Validated: rfc3339(c.Validated), Error: c.Error}
}

func (s *Server) writeAuthz(w http.ResponseWriter, a *storage.ACMEAuthz) error {
	st := authzStatus(a, s.now())
	j := authzJSON{Identifier: Identifier(a.Identifier), Status: st, Expires: rfc3339(a.Expires), Wildcard: a.Wildcard,
		Challenges: []challengeJSON{}}
	for i := range a.Challenges {
		c := &a.Challenges[i]
		// A settled authorization lists the challenge that settled it.
		if (st == "valid" && c.Status != "valid") || (st == "invalid" && c.Status != "invalid") {
			continue
		}
		j.Challenges = append(j.Challenges, s.challengeJSON(c))
	}
	if st == "pending" {
		w.Header().Set("Retry-After", "1")
	}
	return writeJSON(w, http.StatusOK, j)
}

func (s *Server) loadAuthz(ctx context.Context, req *request, id string) (*storage.ACMEAuthz, error) {
	a, err := s.o.Store.ACMEAuthz(ctx, s.o.Name, id)
	if isNotFound(err) {
		return nil, notFoundProblem("authorization")
	}
	if err != nil {
		return nil, err
	}
	if a.AccountID != req.account.ID {
		return nil, unauthorized("this authorization belongs to another account")
	}
	return a, nil
}

func (s *Server) authz(ctx context.Context, w http.ResponseWriter, r *http.Request, id string) error {
	req, err := s.verify(ctx, w, r, kidOnly)
	if err != nil {
		return err
	}
	a, err := s.loadAuthz(ctx, req, id)
	if err != nil {
		return err
	}
	if !req.postAsGet() { // §7.5.2: the only update is deactivation
		var in struct {
			Status string `json:"status"`
		}
		if err := decodePayload(req.payload, &in); err != nil {
			return err
		}
		if in.Status != "deactivated" {
			return malformed("an authorization can only be updated to deactivated")
		}
		st := authzStatus(a, s.now())
		if st != "pending" && st != "valid" {
			return malformed("only a pending or valid authorization can be deactivated, this one is " + st)
		}
		// Also the orders that reused the same validation (reusedAuthz)
		// lose it: the client gives up the name, not one copy of it.
		if ok, err := s.o.Store.DeactivateACMEAuthz(ctx, s.o.Name, a.ID, a.Status); err != nil {
			return err
		} else if !ok {
			return malformed("the authorization changed concurrently; fetch it again")
		}
		a.Status = "deactivated"
	}
	return s.writeAuthz(w, a)
}

func (s *Server) challenge(ctx context.Context, w http.ResponseWriter, r *http.Request, id string) error {
	req, err := s.verify(ctx, w, r, kidOnly)
	if err != nil {
		return err
	}
	a, err := s.o.Store.ACMEAuthzByChallenge(ctx, s.o.Name, id)
	if isNotFound(err) {
		return notFoundProblem("challenge")
	}
	if err != nil {
		return err
	}
	if a.AccountID != req.account.ID {
		return unauthorized("this authorization belongs to another account")
	}
	var c *storage.ACMEChallenge
	for i := range a.Challenges {
		if a.Challenges[i].ID == id {
			c = &a.Challenges[i]
		}
	}
	if c == nil {
		return notFoundProblem("challenge")
	}
	w.Header().Add("Link", link(s.url(pathAuthz, a.ID), "up"))
	if !req.postAsGet() {
		var in map[string]any // §7.5.1: the client sends {} to ask for validation
		if err := decodePayload(req.payload, &in); err != nil {
			return err
		}
		switch st := authzStatus(a, s.now()); {
		case st == "deactivated" || st == "invalid" || st == "expired":
			// Nothing would ever validate it; a 200 "pending" would
			// have the client poll for nothing.
			return malformed("the authorization is " + st + ": its challenges can no longer be answered")
		case st == "pending" && c.Status == "pending":
			if err := s.runChallenge(ctx, a, c, req.account.Thumbprint); err != nil {
				return err
			}
		}
	}
	if c.Status == "processing" {
		w.Header().Set("Retry-After", "1") // §8.2: when to poll again
	}
	return writeJSON(w, http.StatusOK, s.challengeJSON(c))
}
