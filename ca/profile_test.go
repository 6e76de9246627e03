package ca

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
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

// TestProfileTemplateChecked: a template whose output is no certificate,
// or a CA certificate from a profile not marked ca, stops the CA at start
// naming the profile; a template that makes a CA only for some requests
// is refused at issuance; a template's own fail is not a start-up error.
func TestProfileTemplateChecked(t *testing.T) {
	leaf := func(extra string) string {
		return `{"subject": {"commonName": {{ toJson .Subject.CommonName }}}, "sans": {{ toJson .SANs }},` + extra +
			` "keyUsage": ["digitalSignature"], "extKeyUsage": ["clientAuth"]}`
	}
	for _, c := range []struct {
		name, tmpl string
		ca         bool
		want       string
	}{
		{"bad JSON", `{"subject": {{ toJson .Subject }}, "sans": `, false, "profiles[custom].template: profile custom cannot build this certificate: "},
		{"CA from a leaf profile", leaf(` "basicConstraints": {"isCA": true, "maxPathLen": 0},`), false, "makes a CA certificate (basicConstraints isCA) but is not marked ca: true"},
		{"leaf from a ca profile", leaf(""), true, "is marked ca: true but its template makes no CA certificate"},
		// MAMBAf8= is basicConstraints cA TRUE: past the isCA field.
		{"raw basicConstraints", leaf(` "extensions": [{"id": "2.5.29.19", "critical": true, "value": "MAMBAf8="}],`), false, "sets basicConstraints as a raw extension"},
	} {
		_, err := mergeProfiles([]Profile{{Name: "custom", Template: c.tmpl, CA: c.ca, DefaultLifetime: day}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to say %q", c.name, err, c.want)
		}
	}
	// A template that needs what the sample request lacks (an email
	// address) is left to requests, as its own fail is.
	if _, err := mergeProfiles([]Profile{{Name: "email", DefaultLifetime: day,
		Template: `{"subject": {"commonName": {{ index .Insecure.CR.EmailAddresses 0 | toJson }}}, "keyUsage": ["digitalSignature"], "extKeyUsage": ["emailProtection"]}`}}); err != nil {
		t.Errorf("a template indexing the CSR's emails: %v", err)
	}
	// Needs a SAN: the template's own refusal, meant for requests.
	failing := `{{ if not .Insecure.CR.EmailAddresses }}{{ fail "an email address is required" }}{{ end }}` + leaf("")
	// A CA certificate only when the CSR asks for a name starting "ca.".
	sneaky := leaf(`{{ if hasPrefix "ca." .Subject.CommonName }} "basicConstraints": {"isCA": true},{{ end }}`)
	db, _ := storagetest.SQLite(t)
	c, _, _ := newTestCA(t, db, func(o *Options) {
		o.Profiles = []Profile{{Name: "mail", Template: failing, DefaultLifetime: day},
			{Name: "sneaky", Template: sneaky, DefaultLifetime: day}}
	})
	ctx := context.Background()
	key := testKey(t, "p256")
	if _, err := c.Issue(ctx, Request{CSR: makeCSR(t, key, "a.example", "a.example"), Profile: "mail"}); core.KindOf(err) != core.KindRejected ||
		!strings.Contains(err.Error(), "an email address is required") {
		t.Errorf("a template's fail: %v, want 422 naming its message", err)
	}
	if _, err := c.Issue(ctx, Request{CSR: makeCSR(t, key, "a.example", "a.example"), Profile: "sneaky"}); err != nil {
		t.Errorf("sneaky profile, leaf request: %v", err)
	}
	if _, err := c.Issue(ctx, Request{CSR: makeCSR(t, key, "ca.example", "ca.example"), Profile: "sneaky"}); core.KindOf(err) != core.KindRejected ||
		!strings.Contains(err.Error(), "not marked ca: true") {
		t.Errorf("sneaky profile, CA request: %v, want refused", err)
	}
}
