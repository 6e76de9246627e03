package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/strongroom-pki/strongroom/acme"
	"github.com/strongroom-pki/strongroom/acme/challenge"
	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/hsm"
	"github.com/strongroom-pki/strongroom/ra"
)

// acmeConfig is the `acme:` section of strongroom.yaml.
type acmeConfig struct {
	// Validation says how challenges are checked on the wire.
	Validation validationConfig `yaml:"validation"`
	// Endpoints are served at /acme/{name}/directory. Zero: one endpoint
	// named "default" with every default below.
	Endpoints []acmeEndpointConfig `yaml:"endpoints"`
}

type validationConfig struct {
	// Resolver is the DNS server (host:port) for dns-01 and for looking up
	// http-01/tls-alpn-01 targets. Zero: the system resolver.
	Resolver string `yaml:"resolver"`
	// HTTPPort and TLSPort are where http-01 and tls-alpn-01 are checked.
	// Zero: 80 and 443.
	HTTPPort int `yaml:"http_port"`
	TLSPort  int `yaml:"tls_port"`
	// HostOverride sends connections for a name to a fixed address.
	// Zero: none.
	HostOverride map[string]string `yaml:"host_override"`
	// Timeout bounds each attempt. Zero: 10s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxRedirects for http-01. Zero: 10.
	MaxRedirects int `yaml:"max_redirects"`
}

type acmeEndpointConfig struct {
	// Name is the endpoint's path segment. Required.
	Name string `yaml:"name"`
	// Profiles offered in the directory (the ACME profiles extension),
	// name → CA profile. Zero: "tls-server" and "tls-server-client".
	Profiles map[string]acmeProfileConfig `yaml:"profiles"`
	// DefaultProfile is the CA profile of an order that names none.
	// Zero: tls-server.
	DefaultProfile string `yaml:"default_profile"`
	// EABRequired makes new accounts present an External Account Binding
	// (keys from `ca acme eab create`). Zero: not required.
	EABRequired bool `yaml:"eab_required"`
	// Policy, when set, replaces the global `policy:` section for this
	// endpoint (same fields as ra.Policy). Zero: the global policy.
	Policy *ra.Policy `yaml:"policy"`
	// Limits are the endpoint's rate limits.
	Limits acmeLimitsConfig `yaml:"limits"`
	// Directory meta fields. Zero: omitted.
	TermsOfService string   `yaml:"terms_of_service"`
	Website        string   `yaml:"website"`
	CAAIdentities  []string `yaml:"caa_identities"`
	// OrderLifetime is how long orders and authorizations stay usable.
	// Zero: 7 days.
	OrderLifetime time.Duration `yaml:"order_lifetime"`
	// AuthzReuse is how recent an account's proof of control over a name
	// may be for a new order to reuse it without a new challenge. Zero: 24
	// hours; negative: never.
	AuthzReuse time.Duration `yaml:"authz_reuse"`
}

type acmeLimitsConfig struct {
	// NewOrdersPerAccountPerHour: zero 300; negative: no limit.
	NewOrdersPerAccountPerHour int `yaml:"new_orders_per_account_per_hour"`
	// NewAccountsPerIPPerHour (per client IP address): zero 50; negative:
	// no limit.
	NewAccountsPerIPPerHour int `yaml:"new_accounts_per_ip_per_hour"`
}

// limits applies the defaults (acme.Limits: 0 is unlimited).
func (c acmeLimitsConfig) limits() acme.Limits {
	pick := func(v, def int) int {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	return acme.Limits{NewOrdersPerAccountPerHour: pick(c.NewOrdersPerAccountPerHour, 300),
		NewAccountsPerIPPerHour: pick(c.NewAccountsPerIPPerHour, 50)}
}

type acmeProfileConfig struct {
	Description string `yaml:"description"`
	CAProfile   string `yaml:"ca_profile"`
}

func (a *app) acmeConfig() (acmeConfig, error) { return decodeACME(a.n.cfg) }

func decodeACME(cfg *config.Config) (acmeConfig, error) {
	var c acmeConfig
	if err := cfg.ACME.Decode("acme", &c); err != nil {
		return c, err
	}
	if len(c.Endpoints) == 0 {
		c.Endpoints = []acmeEndpointConfig{{Name: "default"}}
	}
	return c, nil
}

// checkEndpoint refuses an ACME endpoint name the configuration does not
// have (an EAB key made for it could never be used).
func checkEndpoint(cfg *config.Config, name string) error {
	c, err := decodeACME(cfg)
	if err != nil {
		return err
	}
	var names []string
	for _, ep := range c.Endpoints {
		if ep.Name == name {
			return nil
		}
		names = append(names, ep.Name)
	}
	return fmt.Errorf("no ACME endpoint is named %q (configured: %s)", name, strings.Join(names, ", "))
}

// mountACME builds one acme.Server per configured endpoint.
func (a *app) mountACME(policy ra.Policy, defaultProfile string) error {
	c, err := a.acmeConfig()
	if err != nil {
		return err
	}
	for key, port := range map[string]int{"http_port": c.Validation.HTTPPort, "tls_port": c.Validation.TLSPort} {
		if port < 0 || port > 65535 {
			return fmt.Errorf("acme.validation.%s: %d is not a port (1-65535; 0 for the default)", key, port)
		}
	}
	if err := noNegative("acme.validation", map[string]time.Duration{"timeout": c.Validation.Timeout}); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, ep := range c.Endpoints {
		field := fmt.Sprintf("acme.endpoints[%d]", i)
		if seen[ep.Name] {
			return fmt.Errorf("%s.name: %q is used twice", field, ep.Name)
		}
		if err := core.CheckID(ep.Name); err != nil {
			return fmt.Errorf("%s.name: %w", field, err) // it is a URL path segment
		}
		seen[ep.Name] = true
		auth := a.ra
		if ep.Policy != nil {
			if auth, err = a.newAuthority(*ep.Policy, defaultProfile); err != nil {
				return fmt.Errorf("%s.policy: %w", field, err)
			}
		}
		policy := &acme.RAPolicy{Authority: auth}
		v, err := newValidator(c.Validation, ep.Name, policy, a.n.log)
		if err != nil {
			return err
		}
		profiles := map[string]acme.Profile{
			"tls-server":        {Description: "TLS server certificate", CAProfile: "tls-server"},
			"tls-server-client": {Description: "TLS server and client certificate", CAProfile: "tls-server-client"},
		}
		if ep.Profiles != nil {
			profiles = map[string]acme.Profile{}
			for name, p := range ep.Profiles {
				if _, err := a.pipeline.Profile(p.CAProfile); err != nil {
					return fmt.Errorf("%s.profiles.%s.ca_profile: %w", field, name, err)
				}
				profiles[name] = acme.Profile{Description: p.Description, CAProfile: p.CAProfile}
			}
		}
		if err := noNegative(field, map[string]time.Duration{"order_lifetime": ep.OrderLifetime}); err != nil {
			return err
		}
		defProfile := ep.DefaultProfile
		if defProfile == "" {
			defProfile = "tls-server"
		}
		if _, ok := profiles[defProfile]; !ok {
			return fmt.Errorf("%s.default_profile: %q is not among the endpoint's profiles (%s)", field, defProfile,
				strings.Join(slices.Sorted(maps.Keys(profiles)), ", "))
		}
		srv, err := acme.New(acme.Options{
			Name:           ep.Name,
			BaseURL:        a.HTTPSURL() + "/acme/" + ep.Name,
			Store:          a.n.db,
			Nonces:         a.shared.nonces,
			RateLimiter:    a.shared.limiter,
			Limits:         ep.Limits.limits(),
			Issuer:         &acme.RAIssuer{Authority: auth, Root: a.root.Certificate().Raw},
			Policy:         policy,
			EAB:            &eabKeys{sess: a.sess},
			Validator:      acme.ValidatorFunc(v.Validate),
			Profiles:       profiles,
			DefaultProfile: defProfile,
			Meta: acme.Meta{TermsOfService: ep.TermsOfService, Website: ep.Website,
				CAAIdentities: ep.CAAIdentities, ExternalAccountRequired: ep.EABRequired},
			OrderLifetime: ep.OrderLifetime,
			AuthzReuse:    ep.AuthzReuse,
			Logger:        a.n.log,
		})
		if err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		a.closers = append(a.closers, func() { srv.Close() })
		a.srv.MountACME(ep.Name, srv)
	}
	return nil
}

// newValidator builds the challenge validator of one endpoint. Each
// endpoint has its own, because an http-01 redirect may only lead to a host
// the endpoint's policy would accept in an order (acme.RedirectPolicy):
// otherwise a client could aim validation at any host the CA can reach.
func newValidator(c validationConfig, endpoint string, policy acme.Policy, log *slog.Logger) (*challenge.Validator, error) {
	v, err := challenge.New(challenge.Options{Resolver: c.Resolver, HTTPPort: c.HTTPPort,
		TLSPort: c.TLSPort, HostOverride: c.HostOverride, Timeout: c.Timeout,
		MaxRedirects: c.MaxRedirects, Logger: log, RedirectAllowed: acme.RedirectPolicy(endpoint, policy)})
	if err != nil {
		return nil, fmt.Errorf("acme.validation: %w", err)
	}
	return v, nil
}

// eabKeys keeps External Account Binding HMAC keys in the HSM, labelled
// "eab-{kid}": the database records only the key id.
type eabKeys struct{ sess *hsm.Session }

func eabLabel(kid string) string { return "eab-" + kid }

func (e *eabKeys) VerifyMAC(ctx context.Context, kid string, signingInput, mac []byte) error {
	k, err := e.sess.FindKey(ctx, eabLabel(kid))
	if err != nil {
		return err
	}
	return e.sess.VerifyHMAC(ctx, k.ID, signingInput, mac)
}

func (e *eabKeys) ImportHMAC(ctx context.Context, kid string, key []byte) error {
	_, err := e.sess.ImportKey(ctx, hsm.KeySpec{Type: hsm.HMACSHA256, Label: eabLabel(kid), Usage: hsm.UsageSign | hsm.UsageVerify}, key)
	return err
}

func (e *eabKeys) DestroyHMAC(ctx context.Context, kid string) error {
	k, err := e.sess.FindKey(ctx, eabLabel(kid))
	if err != nil {
		return err
	}
	return e.sess.DestroyKey(ctx, k.ID)
}
