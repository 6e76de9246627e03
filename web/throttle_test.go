package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
)

// Failed sign-ins from one address are bounded (429 with Retry-After);
// successful ones do not count, and the right key still signs in from an
// address over its limit (operators may share one: a proxy, a NAT).
func TestSignInThrottle(t *testing.T) {
	e := newEnv(t, func(o *Options, _ *storage.DB) { o.RateLimiter = storage.NewMemoryLimiter(time.Now) })
	b := e.browser()
	for i := 0; i < 3*loginFailures; i++ {
		b.login("admin") // successes are given back
	}
	for i := 0; i < loginFailures; i++ {
		if resp, _ := b.do("POST", "/ui/login", url.Values{"key": {"srk_wrong"}}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, resp.StatusCode)
		}
	}
	resp, page := b.do("POST", "/ui/login", url.Values{"key": {"srk_wrong"}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(page, "too many failed sign-ins") ||
		resp.Header.Get("Set-Cookie") != "" {
		t.Fatalf("a wrong key after %d failures: %d %q %s", loginFailures, resp.StatusCode, resp.Header.Get("Retry-After"), page)
	}
	resp, page = b.do("POST", "/ui/login", url.Values{"key": {e.keys["admin"]}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Set-Cookie"), "strongroom_console=") {
		t.Fatalf("the right key after %d failures: %d %s", loginFailures, resp.StatusCode, page)
	}
}

// Using the console is using the key: its "last used" moves.
func TestConsoleTouchesKey(t *testing.T) {
	var mu sync.Mutex
	var touched []string
	e := newEnv(t, func(o *Options, _ *storage.DB) {
		o.Touch = func(_ context.Context, id string) {
			mu.Lock()
			defer mu.Unlock()
			touched = append(touched, id)
		}
	})
	b := e.browser()
	b.login("reader")
	b.do("GET", "/ui/certificates", nil)
	mu.Lock()
	defer mu.Unlock()
	if len(touched) == 0 || touched[0] != e.ids["reader"] {
		t.Fatalf("touched %v, want %s", touched, e.ids["reader"])
	}
}

// The stylesheet is served; the directory is not listed.
func TestStaticNoListing(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	if resp, _ := b.do("GET", "/ui/static/console.css", nil); resp.StatusCode != 200 {
		t.Fatalf("stylesheet: %d", resp.StatusCode)
	}
	for _, p := range []string{"/ui/static/", "/ui/static"} {
		// A listing links the file by its name alone (the console's own
		// error page links the stylesheet by its path).
		if resp, page := b.do("GET", p, nil); resp.StatusCode != 404 || strings.Contains(page, `href="console.css"`) {
			t.Fatalf("%s: %d\n%s", p, resp.StatusCode, page)
		}
	}
}

func TestLocalHost(t *testing.T) {
	for h, want := range map[string]bool{"localhost:8443": true, "LOCALHOST": true, "ca.localhost": true, "127.0.0.1:8443": true,
		"[::1]:8443": true, "::1": true, "ca.corp.internal:8443": false, "ca.example": false, "localhost.example": false} {
		if localHost(h) != want {
			t.Errorf("localHost(%q) = %v", h, !want)
		}
	}
}
