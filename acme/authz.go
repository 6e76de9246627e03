package acme

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
)

// Authorizations and challenges (RFC 8555 §7.5, §8). A challenge POST moves
// the challenge to processing and returns at once; the Validator runs in
// the background and settles challenge and authorization to valid or
// invalid (a failed attempt invalidates the authorization, §7.5.1).

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
		if ok, err := s.o.Store.SetACMEAuthzStatus(ctx, s.o.Name, a.ID, a.Status, "deactivated"); err != nil {
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
	azID, err := s.o.Store.ACMEAuthzIDByChallenge(ctx, s.o.Name, id)
	if isNotFound(err) {
		return notFoundProblem("challenge")
	}
	if err != nil {
		return err
	}
	a, err := s.loadAuthz(ctx, req, azID)
	if err != nil {
		return err
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
		if authzStatus(a, s.now()) == "pending" && c.Status == "pending" {
			ok, err := s.o.Store.SetACMEChallengeStatus(ctx, c.ID, "pending", "processing", time.Time{}, nil)
			if err != nil {
				return err
			}
			if ok {
				c.Status = "processing"
				s.awaitValidation(ctx, s.startValidation(a, *c, req), c)
			}
		}
	}
	if c.Status == "processing" {
		w.Header().Set("Retry-After", "1") // §8.2: when to poll again
	}
	return writeJSON(w, http.StatusOK, s.challengeJSON(c))
}

// validation is one background validation. Once done is closed, ch holds
// the challenge as stored, if settled.
type validation struct {
	done    chan struct{}
	ch      storage.ACMEChallenge
	settled bool
}

// awaitValidation lets the challenge POST answer with the result when the
// validation finishes within ValidationWait — most http-01 and tls-alpn-01
// checks take milliseconds — so that a client such as lego, which stops
// polling when the answer is already valid, does not sleep a Retry-After
// second per authorization. A slower validation is answered "processing"
// with Retry-After and keeps running.
func (s *Server) awaitValidation(ctx context.Context, v *validation, c *storage.ACMEChallenge) {
	if s.o.ValidationWait <= 0 {
		return
	}
	t := time.NewTimer(s.o.ValidationWait)
	defer t.Stop()
	select {
	case <-v.done:
		if v.settled {
			*c = v.ch
		}
	case <-t.C:
	case <-ctx.Done():
	}
}

// startValidation runs the Validator in the background. The key
// authorization is token "." account key thumbprint (§8.1).
func (s *Server) startValidation(a *storage.ACMEAuthz, c storage.ACMEChallenge, req *request) *validation {
	keyAuth := c.Token + "." + req.account.Thumbprint
	id := Identifier(a.Identifier)
	v := &validation{done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(v.done)
		select {
		case s.validate <- struct{}{}:
			defer func() { <-s.validate }()
		case <-s.bg.Done():
		}
		var verr error
		if s.bg.Err() == nil {
			ctx, cancel := context.WithTimeout(s.bg, s.o.ValidationTimeout)
			verr = s.o.Validator.Validate(ctx, c.Type, id, c.Token, keyAuth)
			cancel()
		}
		// Settle with a context of its own: the request that started the
		// validation is long gone, and shutdown must still record a result.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if s.settle(ctx, a, &c, verr) {
			v.ch, v.settled = c, true
		}
	}()
	return v
}

// settle records the result and reports whether the challenge was stored
// as c now says.
func (s *Server) settle(ctx context.Context, a *storage.ACMEAuthz, c *storage.ACMEChallenge, verr error) bool {
	log := s.log.With("account", a.AccountID, "authz", a.ID, "challenge", c.Type)
	if s.bg.Err() != nil { // shutting down: let the client try again later
		if _, err := s.o.Store.SetACMEChallengeStatus(ctx, c.ID, "processing", "pending", time.Time{}, nil); err != nil {
			log.ErrorContext(ctx, "resetting challenge at shutdown", "err", err)
		}
		return false
	}
	var (
		chTo, azTo = "valid", "valid"
		validated  = s.now()
		perr       []byte
	)
	if verr != nil {
		p := validationProblem(verr)
		chTo, azTo, validated, perr = "invalid", "invalid", time.Time{}, problemJSON(p)
		log.InfoContext(ctx, "acme challenge failed", "problem", p.Type, "detail", p.Detail)
	} else {
		log.InfoContext(ctx, "acme challenge valid")
	}
	if ok, err := s.o.Store.SetACMEChallengeStatus(ctx, c.ID, "processing", chTo, validated, perr); err != nil || !ok {
		if err != nil {
			log.ErrorContext(ctx, "recording challenge result", "err", err)
		}
		return false
	}
	c.Status, c.Validated, c.Error = chTo, validated, perr
	if _, err := s.o.Store.SetACMEAuthzStatus(ctx, s.o.Name, a.ID, "pending", azTo); err != nil {
		log.ErrorContext(ctx, "recording authorization result", "err", err)
		return false
	}
	return true
}
