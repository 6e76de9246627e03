package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseDefaults(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.HTTPS != "127.0.0.1:8443" || c.URLs.HTTPS != "https://localhost:8443" || c.URLs.HTTP != "http://localhost:8080" {
		t.Errorf("unexpected defaults: %+v %+v", c.Listen, c.URLs)
	}
	if c.Database.Driver != "sqlite" || c.HSM.Unseal != "keyfile" || len(c.CA.Intermediates) != 1 {
		t.Errorf("unexpected defaults: %+v %+v %+v", c.Database, c.HSM, c.CA)
	}
	// Round trip: the written defaults parse back to the same values.
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse(data)
	if err != nil {
		t.Fatalf("parsing marshalled defaults: %v\n%s", err, data)
	}
	if c2.URLs != c.URLs || c2.HSM != c.HSM {
		t.Errorf("round trip changed config")
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "listen:\n  htps: x\n", `line 2: unknown key "htps" (known here: http, https)`},
		{"unknown top key", "pin: 1234\n", `unknown key "pin" (known here: acme, api, ca, crl, database, hostname, hsm, issuance,`},
		{"unknown nested key", "ca:\n  intermediates: [{id: a, label: b}]\n", `unknown key "label" (known here: cert, external, id, key_label)`},
		{"bad driver", "database:\n  driver: mysql\n", "database.driver"},
		{"bad addr", "listen:\n  https: nowhere\n", "listen.https"},
		{"bad duration", "limits:\n  read_timeout: soon\n", `line 2, column 17: limits.read_timeout: "soon" is not a duration`},
		{"bad duration, flow style", "database: {driver: sqlite, timeout: 1x}\n", `line 1, column 37: database.timeout: "1x" is not a duration`},
		{"bad unseal", "hsm:\n  unseal: magic\n", "hsm.unseal"},
		{"duplicate issuer", "ca:\n  root: {id: a}\n  intermediates: [{id: a}]\n", "used twice"},
		{"delta CRL URL as issuer", "ca:\n  intermediates: [{id: intermediate}, {id: intermediate-delta}]\n", "ends in -delta"},
		{"root named like a delta", "ca:\n  root: {id: root-delta}\n", "ends in -delta"},
		{"external intermediate", "ca:\n  intermediates: [{id: a, external: true}]\n", "ca.intermediates[0].external: only the root can be external"},
		{"bad level", "log:\n  level: loud\n", "log.level"},
		{"bad key store", "ca:\n  key_store: vault\n", "ca.key_store"},
		{"pkcs11 without module", "ca:\n  key_store: pkcs11\nhsm:\n  pkcs11: {token: ca}\n", "hsm.pkcs11.module"},
		{"pkcs11 without token", "ca:\n  key_store: pkcs11\nhsm:\n  pkcs11: {module: /lib/x.so}\n", "hsm.pkcs11.token"},
		{"pkcs11 unseal without module", "hsm:\n  unseal: pkcs11\n  pkcs11: {token: ca}\n", "hsm.pkcs11.module"},
		{"pkcs11 label prefix with a newline", "hsm:\n  pkcs11: {label_prefix: \"a\\nb\"}\n", "hsm.pkcs11.label_prefix"},
		{"small body", "limits:\n  body_bytes: 10\n", "limits.body_bytes"},
		{"request outlasts write", "limits:\n  write_timeout: 10s\n  request_timeout: 10s\n", "limits.request_timeout: 10s is not shorter than limits.write_timeout"},
		{"transaction outlasts write", "limits:\n  write_timeout: 10s\ndatabase:\n  timeout: 12s\n", "database.timeout: 12s is not shorter"},
		{"negative database timeout", "database:\n  timeout: -1s\n", "database.timeout: must be positive"},
		{"postgres without DSN", "database:\n  driver: postgres\n", "database.dsn"},
		{"https port 0 in URL", "listen:\n  https: 127.0.0.1:0\n", "urls.https"},
		{"http port 0 in URL", "listen:\n  http: 127.0.0.1:0\n", "urls.http"},
		{"explicit URL port 0", "urls:\n  http: http://ca.example:0\n", "urls.http"},
		{"non-numeric port", "listen:\n  https: 127.0.0.1:https\n", "listen.https"},
		{"port out of range", "listen:\n  http: 127.0.0.1:70000\n", "listen.http"},
		{"redis prefix with a space", "redis:\n  prefix: \"ca prod\"\n", "redis.prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvDatabaseDSN, "")
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%q) = %v; want error naming %q", tc.yaml, err, tc.want)
			}
		})
	}
}

// The request deadline follows a shorter write timeout unless it is set.
func TestRequestTimeoutDefault(t *testing.T) {
	c, err := Parse([]byte("limits:\n  write_timeout: 9s\ndatabase:\n  timeout: 5s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.RequestTimeout.D() != 6*time.Second || c.Database.Timeout.D() != 5*time.Second {
		t.Fatalf("request_timeout %s, database.timeout %s; want 6s and 5s", c.Limits.RequestTimeout.D(), c.Database.Timeout.D())
	}
	// A config from before database.timeout existed, with a short write
	// timeout, stays valid: the transaction bound follows it down.
	c, err = Parse([]byte("limits:\n  write_timeout: 6s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.RequestTimeout.D() != 4*time.Second || c.Database.Timeout.D() != 4*time.Second {
		t.Fatalf("request_timeout %s, database.timeout %s; want 4s and 4s", c.Limits.RequestTimeout.D(), c.Database.Timeout.D())
	}
}

// A postgres DSN may come from the environment only (it may carry a
// password), and a listen port of 0 is fine when the URLs are given.
func TestParseAcceptsDSNFromEnvAndPortZeroWithURLs(t *testing.T) {
	t.Setenv(EnvDatabaseDSN, "postgres://ca@db.example/strongroom")
	yaml := "database:\n  driver: postgres\nlisten:\n  https: 127.0.0.1:0\nurls:\n  https: https://ca.example\n"
	if _, err := Parse([]byte(yaml)); err != nil {
		t.Fatal(err)
	}
}

func TestSectionDecodesStrictly(t *testing.T) {
	type policy struct {
		AllowWildcards bool     `yaml:"allow_wildcards"`
		Suffixes       []string `yaml:"suffixes"`
	}
	c, err := Parse([]byte("policy:\n  allow_wildcards: true\n  suffixes: [example.com]\n"))
	if err != nil {
		t.Fatal(err)
	}
	var p policy
	if err := c.Policy.Decode("policy", &p); err != nil || !p.AllowWildcards || len(p.Suffixes) != 1 {
		t.Fatalf("Decode = %+v, %v", p, err)
	}
	c, err = Parse([]byte("policy:\n  allow_wildcard: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Policy.Decode("policy", &p); err == nil || !strings.Contains(err.Error(), `unknown key "allow_wildcard" (known here: allow_wildcards, suffixes)`) {
		t.Fatalf("unknown key in section: %v", err)
	}
	// A value its type refuses is named by its key, under the section.
	type acme struct {
		Validation struct {
			Timeout Duration `yaml:"timeout"`
		} `yaml:"validation"`
	}
	c, err = Parse([]byte("acme:\n  validation:\n    timeout: soon\n"))
	if err != nil {
		t.Fatal(err)
	}
	var a acme
	if err := c.ACME.Decode("acme", &a); err == nil || !strings.Contains(err.Error(), `acme.validation.timeout: "soon" is not a duration`) {
		t.Fatalf("bad duration in a section: %v", err)
	}
	// Line numbers are the file's, not the section's: the key is on line 7
	// (a README reader saw "line 1 … (line numbers count from the section)").
	c, err = Parse([]byte("# strongroom.yaml\nlisten:\n  https: 127.0.0.1:8443\n\npolicy:\n  # comment\n  allow_wildcard: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Policy.Decode("policy", &p); err == nil || !strings.Contains(err.Error(), `line 7: unknown key "allow_wildcard"`) {
		t.Fatalf("line of an unknown key in a section: %v", err)
	}
	c, err = Parse([]byte("listen:\n  https: 127.0.0.1:8443\nacme:\n  validation:\n\n    timeout: soon\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ACME.Decode("acme", &a); err == nil || !strings.Contains(err.Error(), "line 6") {
		t.Fatalf("line of a bad value in a section: %v", err)
	}
	var untouched policy
	if err := Default().ACME.Decode("acme", &untouched); err != nil || untouched.AllowWildcards {
		t.Fatalf("absent section: %+v %v", untouched, err)
	}
}

func TestDSNWithPasswordRefused(t *testing.T) {
	_, err := Parse([]byte("database:\n  driver: postgres\n  dsn: postgres://ca:s3cret@db:5432/ca\n"))
	if err == nil || !strings.Contains(err.Error(), "database.dsn") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("DSN with a password: %v; want an error naming database.dsn without the password", err)
	}
	if _, err := Parse([]byte("database:\n  driver: postgres\n  dsn: postgres://ca@db:5432/ca\n")); err != nil {
		t.Fatalf("DSN without a password: %v", err)
	}
}

// An external root has no key here, so no key label is made up for it.
func TestExternalRootHasNoKeyLabel(t *testing.T) {
	c, err := Parse([]byte("ca:\n  root: {id: offline, cert: offline.pem, external: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.CA.Root.External || c.CA.Root.KeyLabel != "" || c.CA.Intermediates[0].KeyLabel != "intermediate" {
		t.Errorf("root %+v, intermediates %+v", c.CA.Root, c.CA.Intermediates)
	}
}
