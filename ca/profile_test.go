package ca

import (
	"testing"
	"time"
)

// TestProfileLifetimeErrors: a lifetime mistake in a profile names its
// configuration key, as other configuration errors do (a README reader
// saw a negative max_lifetime reported as "max lifetime -2160h0m0s is
// below the default 720h0m0s").
func TestProfileLifetimeErrors(t *testing.T) {
	tmpl := `{"subject": {"commonName": {{ toJson .Subject.CommonName }}}}`
	for _, tc := range []struct {
		def, max time.Duration
		want     string
	}{
		{720 * time.Hour, -2160 * time.Hour, "profiles[p].max_lifetime: -2160h0m0s is negative"},
		{-time.Hour, 0, "profiles[p].default_lifetime: -1h0m0s is negative"},
		{0, time.Hour, "profiles[p].default_lifetime: must be set and positive"},
		{720 * time.Hour, time.Hour, "profiles[p].max_lifetime: 1h0m0s is below default_lifetime 720h0m0s"},
	} {
		p := &Profile{Name: "p", Template: tmpl, DefaultLifetime: tc.def, MaxLifetime: tc.max}
		if err := p.compile(); err == nil || err.Error() != tc.want {
			t.Errorf("default %s, max %s: %v, want %q", tc.def, tc.max, err, tc.want)
		}
	}
	p := &Profile{Name: "p", Template: tmpl, DefaultLifetime: time.Hour}
	if err := p.compile(); err != nil || p.MaxLifetime != time.Hour {
		t.Fatalf("max_lifetime omitted: %v, max %s", err, p.MaxLifetime)
	}
}
