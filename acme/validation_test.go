package acme_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/acme"
)

// slowValidator blocks each validation until release is closed.
type slowValidator struct {
	inner   acme.Validator
	release chan struct{}
}

func (v slowValidator) Validate(ctx context.Context, chType string, id acme.Identifier, token, keyAuth string) error {
	select {
	case <-v.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return v.inner.Validate(ctx, chType, id, token, keyAuth)
}

// TestChallengeAnswer: a validation that finishes within ValidationWait is
// answered with its result (valid, or invalid with the problem), no
// Retry-After; one that does not is answered processing with Retry-After
// and settles in the background.
func TestChallengeAnswer(t *testing.T) {
	type chDoc struct {
		Status string
		Error  *problemDoc
	}
	post := func(t *testing.T, e *env, publish bool) (*rawClient, string, *response) {
		c := newRawClient(e)
		c.register(nil)
		o := decode[orderDoc](t, c.post(e.url("new-order"), map[string]any{"identifiers": []acme.Identifier{{Type: "dns", Value: "a.example.com"}}}, nil))
		a := decode[authzDoc](t, c.post(o.Authorizations[0], nil, nil))
		for _, ch := range a.Challenges {
			if ch.Type == "http-01" {
				if publish {
					e.val.Present(context.Background(), "", ch.Token, ch.Token+"."+c.thumbprint())
				}
				return c, o.Authorizations[0], c.post(ch.URL, map[string]any{}, nil)
			}
		}
		t.Fatal("no http-01 challenge")
		return nil, "", nil
	}
	t.Run("fast valid", func(t *testing.T) {
		e := newEnv(t, nil)
		c, az, r := post(t, e, true)
		if ch := decode[chDoc](t, r); ch.Status != "valid" || r.Header.Get("Retry-After") != "" {
			t.Fatalf("challenge answer %s %+v, Retry-After %q", r.body, ch, r.Header.Get("Retry-After"))
		}
		if r.Header.Get("Link") == "" {
			t.Fatal("no Link rel=up")
		}
		if a := decode[authzDoc](t, c.post(az, nil, nil)); a.Status != "valid" {
			t.Fatalf("authorization after a valid answer: %+v", a)
		}
	})
	t.Run("fast invalid", func(t *testing.T) {
		e := newEnv(t, nil)
		c, az, r := post(t, e, false)
		ch := decode[chDoc](t, r)
		if ch.Status != "invalid" || ch.Error == nil || ch.Error.Type != "urn:ietf:params:acme:error:incorrectResponse" {
			t.Fatalf("challenge answer %s", r.body)
		}
		if a := decode[authzDoc](t, c.post(az, nil, nil)); a.Status != "invalid" {
			t.Fatalf("authorization %+v", a)
		}
	})
	for _, wait := range []time.Duration{-1, 20 * time.Millisecond} {
		t.Run("slow, wait "+wait.String(), func(t *testing.T) {
			release := make(chan struct{})
			var e *env
			e = newEnv(t, func(o *acme.Options) {
				o.Validator = slowValidator{inner: lazyValidator{&e}, release: release}
				o.ValidationWait = wait
			})
			c, az, r := post(t, e, true)
			ch := decode[chDoc](t, r)
			if s, _ := strconv.Atoi(r.Header.Get("Retry-After")); ch.Status != "processing" || s < 1 {
				t.Fatalf("challenge answer %s, Retry-After %q", r.body, r.Header.Get("Retry-After"))
			}
			close(release)
			if a := c.waitAuthz(az); a.Status != "valid" {
				t.Fatalf("authorization %+v", a)
			}
		})
	}
}

type lazyValidator struct{ e **env }

func (l lazyValidator) Validate(ctx context.Context, chType string, id acme.Identifier, token, keyAuth string) error {
	return (*l.e).val.Validate(ctx, chType, id, token, keyAuth)
}

// TestChallengeValidatedOnce: a challenge is validated once however many
// times, and however concurrently, the client posts to it (RFC 8555
// §7.5.1): the first POST moves it to processing, the others answer its
// state. Before, it stayed pending until ValidationWait ran out and every
// POST in that window started another validation.
func TestChallengeValidatedOnce(t *testing.T) {
	release := make(chan struct{})
	var e *env
	e = newEnv(t, func(o *acme.Options) {
		o.Validator = slowValidator{inner: lazyValidator{&e}, release: release}
		o.ValidationWait = 50 * time.Millisecond
		o.RecoverEvery = -1
	})
	s := newStuck(t, e, "a.example.com")
	bodies := make([][]byte, 8)
	for i := range bodies {
		bodies[i] = s.c.sign(s.chall, []byte("{}"), nil)
	}
	var wg sync.WaitGroup
	for _, b := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.ts.Client().Post(s.chall, "application/jose+json", bytes.NewReader(b))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var ch struct{ Status string }
			if err := json.NewDecoder(resp.Body).Decode(&ch); err != nil || resp.StatusCode != http.StatusOK || ch.Status != "processing" {
				t.Errorf("concurrent challenge POST: %d %+v %v", resp.StatusCode, ch, err)
			}
		}()
	}
	wg.Wait()
	for range 3 { // and again, one after another
		if r := s.c.post(s.chall, map[string]any{}, nil); decode[struct{ Status string }](t, r).Status != "processing" {
			t.Fatalf("repeated challenge POST: %s", r.body)
		}
	}
	close(release)
	if a := s.c.waitAuthz(s.authz); a.Status != "valid" {
		t.Fatalf("authorization %+v", a)
	}
	e.srv.Close() // waits for every validation
	if got := e.validations(); got != 1 {
		t.Fatalf("%d validations, want 1", got)
	}
}

// hangingValidator never finishes validating names under "hang-": their
// servers keep the connection open until the validation's time is up.
type hangingValidator struct{ inner acme.Validator }

func (v hangingValidator) Validate(ctx context.Context, chType string, id acme.Identifier, token, keyAuth string) error {
	if strings.HasPrefix(id.Value, "hang-") {
		<-ctx.Done()
		return ctx.Err()
	}
	return v.inner.Validate(ctx, chType, id, token, keyAuth)
}

// TestOneAccountCannotStallValidation: an account whose challenges' servers
// all hang holds at most its share of the endpoint's validation slots;
// another account's challenge is validated meanwhile, not after the hung
// ones time out (found by a review: 500 of them held another account's
// 2 ms check for 46 s).
func TestOneAccountCannotStallValidation(t *testing.T) {
	e := newEnv(t, func(o *acme.Options) {
		o.Validator = hangingValidator{inner: o.Validator}
		o.ValidationTimeout = 10 * time.Minute
		o.ValidationWait = -1
	})
	attacker := newRawClient(e)
	attacker.register(nil)
	var ids []acme.Identifier
	for i := range 100 {
		ids = append(ids, acme.Identifier{Type: "dns", Value: "hang-" + strconv.Itoa(i) + ".example.com"})
	}
	o := decode[orderDoc](t, attacker.post(e.url("new-order"), map[string]any{"identifiers": ids}, nil))
	for _, az := range o.Authorizations {
		for _, ch := range decode[authzDoc](t, attacker.post(az, nil, nil)).Challenges {
			if ch.Type == "http-01" {
				if r := attacker.post(ch.URL, map[string]any{}, nil); r.StatusCode != http.StatusOK {
					t.Fatalf("posting the attacker's challenge: %d %s", r.StatusCode, r.body)
				}
			}
		}
	}
	victim := newStuck(t, e, "victim.example.com")
	if r := victim.c.post(victim.chall, map[string]any{}, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("posting the victim's challenge: %d %s", r.StatusCode, r.body)
	}
	if a := victim.c.waitAuthz(victim.authz); a.Status != "valid" {
		t.Fatalf("the victim's authorization: %+v", a)
	}
}
