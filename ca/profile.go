package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"maps"
	"slices"
	"sort"
	"text/template"
	"time"

	"go.step.sm/crypto/x509util"

	"github.com/strongroom-pki/strongroom/core"
)

// Profile is a kind of certificate: a go.step.sm/crypto x509util template
// (JSON text with Go template actions; users define their own in config)
// plus limits. Subject, SANs, key, validity, serial, AKI, AIA and CRL
// distribution points are set by the pipeline, not by the template.
type Profile struct {
	Name        string `json:"name" yaml:"name"`
	Description string `json:"description" yaml:"description"`
	// Template is the x509util template. Its data: .Subject (common name
	// only, and only when it is one of the SANs), .SANs, .Insecure.CR (the
	// CSR). Zero: not allowed.
	Template string `json:"-" yaml:"template"`
	// DefaultLifetime is used when a request names none; MaxLifetime caps
	// any request. Zero MaxLifetime: DefaultLifetime.
	DefaultLifetime time.Duration `json:"default_lifetime" yaml:"default_lifetime"`
	MaxLifetime     time.Duration `json:"max_lifetime" yaml:"max_lifetime"`
	// KeyTypes lists the subject key types allowed: p256, p384, p521,
	// rsa2048, rsa3072, rsa4096, ed25519. Zero: p256, p384, rsa2048,
	// rsa3072, rsa4096.
	KeyTypes []string `json:"key_types" yaml:"key_types"`
	// CA marks profiles whose certificates are CAs (subordinate-ca): the
	// issuer must allow a path below it.
	CA bool `json:"ca" yaml:"ca"`
	// NoRevocationInfo omits the CRL distribution points and OCSP URL
	// (ocsp-signing certificates carry id-pkix-ocsp-nocheck instead,
	// RFC 6960 §4.2.2.2.1). caIssuers is still included.
	NoRevocationInfo bool `json:"-" yaml:"no_revocation_info"`

	tmpl *template.Template
}

const keyUsageByKey = `{{- if typeIs "*rsa.PublicKey" .Insecure.CR.PublicKey }}
	"keyUsage": ["keyEncipherment", "digitalSignature"],
{{- else }}
	"keyUsage": ["digitalSignature"],
{{- end }}`

const leafSubject = `"subject": {{ toJson .Subject }},
	"sans": {{ toJson .SANs }},`

var (
	tlsKeys = []string{"p256", "p384", "rsa2048", "rsa3072", "rsa4096"}
	anyKeys = []string{"p256", "p384", "rsa2048", "rsa3072", "rsa4096", "ed25519"}
	day     = 24 * time.Hour
)

// DefaultProfiles returns the built-in profiles.
func DefaultProfiles() []Profile {
	return []Profile{
		{Name: "tls-server", Description: "TLS server (serverAuth)", KeyTypes: tlsKeys,
			DefaultLifetime: 90 * day, MaxLifetime: 397 * day,
			Template: "{\n\t" + leafSubject + keyUsageByKey + `
	"extKeyUsage": ["serverAuth"]
}`},
		{Name: "tls-client", Description: "TLS client (clientAuth)", KeyTypes: anyKeys,
			DefaultLifetime: 90 * day, MaxLifetime: 2 * 365 * day,
			Template: `{
	"subject": {{ toJson .Insecure.CR.Subject.CommonName | printf "{\"commonName\": %s}" }},
	"sans": {{ toJson .SANs }},
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["clientAuth"]
}`},
		// api-client certificates authenticate to Strongroom's own REST API
		// (mTLS). The API maps only certificates of this profile to a
		// principal, and ra keeps it closed by default, so being allowed to
		// issue an ordinary tls-client certificate with a chosen common
		// name never grants API scopes.
		{Name: "api-client", Description: "Client certificate for this CA's REST API (mTLS); grant it in policy.profile_access",
			KeyTypes: anyKeys, DefaultLifetime: 90 * day, MaxLifetime: 365 * day,
			Template: `{
	"subject": {{ toJson .Insecure.CR.Subject.CommonName | printf "{\"commonName\": %s}" }},
	"sans": {{ toJson .SANs }},
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["clientAuth"]
}`},
		{Name: "tls-server-client", Description: "TLS server and client (serverAuth, clientAuth)", KeyTypes: tlsKeys,
			DefaultLifetime: 90 * day, MaxLifetime: 397 * day,
			Template: "{\n\t" + leafSubject + keyUsageByKey + `
	"extKeyUsage": ["serverAuth", "clientAuth"]
}`},
		{Name: "code-signing", Description: "Code signing (codeSigning)", KeyTypes: anyKeys,
			DefaultLifetime: 365 * day, MaxLifetime: 3 * 365 * day,
			Template: `{
	"subject": {{ toJson .Insecure.CR.Subject.CommonName | printf "{\"commonName\": %s}" }},
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["codeSigning"]
}`},
		{Name: "subordinate-ca", Description: "Subordinate CA (pathLen 0)", KeyTypes: []string{"p256", "p384", "rsa2048", "rsa3072", "rsa4096"},
			DefaultLifetime: 5 * 365 * day, MaxLifetime: 10 * 365 * day, CA: true,
			Template: `{
	"subject": {{ toJson .Insecure.CR.Subject }},
	"keyUsage": ["certSign", "crlSign", "digitalSignature"],
	"extKeyUsage": ["serverAuth", "clientAuth"],
	"basicConstraints": {"isCA": true, "maxPathLen": 0},
	"policyIdentifiers": ["2.5.29.32.0"]
}`},
		{Name: "ocsp-signing", Description: "Delegated OCSP responder (OCSPSigning, ocsp-nocheck)", KeyTypes: anyKeys,
			DefaultLifetime: 30 * day, MaxLifetime: 90 * day, NoRevocationInfo: true,
			Template: `{
	"subject": {{ toJson .Insecure.CR.Subject.CommonName | printf "{\"commonName\": %s}" }},
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["ocspSigning"],
	"extensions": [{"id": "1.3.6.1.5.5.7.48.1.5", "value": "BQA="}]
}`},
	}
}

// compile checks and parses the profile's template.
func (p *Profile) compile() error {
	if err := core.CheckID(p.Name); err != nil {
		return fmt.Errorf("profile name: %w", err)
	}
	if p.Template == "" {
		return fmt.Errorf("profile %s: no template", p.Name)
	}
	// Errors name the configuration keys (profiles: [{name, default_lifetime,
	// max_lifetime}]), as the other configuration checks do.
	switch {
	case p.DefaultLifetime < 0:
		return fmt.Errorf("profiles[%s].default_lifetime: %s is negative", p.Name, p.DefaultLifetime)
	case p.DefaultLifetime == 0:
		return fmt.Errorf("profiles[%s].default_lifetime: must be set and positive", p.Name)
	case p.MaxLifetime < 0:
		return fmt.Errorf("profiles[%s].max_lifetime: %s is negative", p.Name, p.MaxLifetime)
	}
	if p.MaxLifetime == 0 {
		p.MaxLifetime = p.DefaultLifetime
	}
	if p.MaxLifetime < p.DefaultLifetime {
		return fmt.Errorf("profiles[%s].max_lifetime: %s is below default_lifetime %s", p.Name, p.MaxLifetime, p.DefaultLifetime)
	}
	if len(p.KeyTypes) == 0 {
		p.KeyTypes = tlsKeys
	}
	for _, k := range p.KeyTypes {
		if !slices.Contains([]string{"p256", "p384", "p521", "rsa2048", "rsa3072", "rsa4096", "ed25519"}, k) {
			return fmt.Errorf("profile %s: unknown key type %q", p.Name, k)
		}
	}
	t, err := template.New(p.Name).Funcs(x509util.GetFuncMap()).Parse(p.Template)
	if err != nil {
		return fmt.Errorf("profile %s: template: %w", p.Name, err)
	}
	p.tmpl = t
	return nil
}

// mergeProfiles returns the built-ins overridden and extended by user
// profiles of the same or new names, compiled, by name. A profile that
// overrides one of the same name takes what it leaves out from it: the
// template (with CA and no_revocation_info, which belong to it), the
// description, the key types and the lifetimes. So
// {name: tls-server, default_lifetime: 720h, max_lifetime: 2160h} changes
// only tls-server's lifetimes.
func mergeProfiles(user []Profile) (map[string]*Profile, error) {
	out := map[string]*Profile{}
	for _, p := range append(DefaultProfiles(), user...) {
		p := p
		if base, ok := out[p.Name]; ok {
			p.inherit(base)
		}
		if err := p.compile(); err != nil {
			return nil, err
		}
		out[p.Name] = &p
	}
	for _, name := range slices.Sorted(maps.Keys(out)) {
		if err := out[name].tryBuild(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ProfileNames lists, sorted, the profiles a CA configured with user has:
// the built-ins and the user's own. It fails as ca.New would on a profile
// that does not compile.
func ProfileNames(user []Profile) ([]string, error) {
	m, err := mergeProfiles(user)
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(m)), nil
}

// inherit fills the fields p leaves out from base.
func (p *Profile) inherit(base *Profile) {
	if p.Template == "" {
		p.Template, p.CA, p.NoRevocationInfo = base.Template, base.CA, base.NoRevocationInfo
	}
	if p.Description == "" {
		p.Description = base.Description
	}
	if len(p.KeyTypes) == 0 {
		p.KeyTypes = slices.Clone(base.KeyTypes)
	}
	if p.DefaultLifetime == 0 {
		p.DefaultLifetime = base.DefaultLifetime
	}
	if p.MaxLifetime == 0 {
		p.MaxLifetime = base.MaxLifetime
	}
}

func sortedProfiles(m map[string]*Profile) []Profile {
	out := make([]Profile, 0, len(m))
	for _, p := range m {
		q := *p
		q.KeyTypes = slices.Clone(p.KeyTypes)
		out = append(out, q)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// KeyType names a public key the way profiles and policy do: p256, p384,
// p521, rsa<bits>, ed25519; "" if the type is not supported.
func KeyType(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve.Params().Name {
		case "P-256":
			return "p256"
		case "P-384":
			return "p384"
		case "P-521":
			return "p521"
		}
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa%d", k.N.BitLen())
	case ed25519.PublicKey:
		return "ed25519"
	}
	return ""
}
