package acme_test

import (
	"context"
	"strconv"
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
