package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"
)

// FileName is the configuration file's name inside the data directory.
const FileName = "strongroom.yaml"

// Config is the whole configuration file.
type Config struct {
	// Hostname is the DNS name clients use to reach this CA; it goes into the
	// HTTPS server certificate and into default URLs. Default "localhost".
	Hostname string `yaml:"hostname"`
	// Listen says where the servers listen.
	Listen Listen `yaml:"listen"`
	// URLs are the externally visible base URLs. Empty fields are derived
	// from Hostname and Listen.
	URLs URLs `yaml:"urls"`
	// Database selects the SQL store. Default: SQLite in the data directory.
	Database Database `yaml:"database"`
	// Redis, when Addr is set, shares nonces, caches, rate limits and events
	// between nodes. Default: in-memory (one node).
	Redis Redis `yaml:"redis"`
	// HSM says how the embedded HSM is unsealed and which user the CA is.
	HSM HSM `yaml:"hsm"`
	// CA lists the issuers and their keys.
	CA CA `yaml:"ca"`
	// Log configures the debug log (not the HSM audit log).
	Log Log `yaml:"log"`
	// Limits bounds HTTP requests.
	Limits Limits `yaml:"limits"`
	// Sections filled in by the front ends (issuance, ACME, revocation)
	// live in extra.go.
	Extra `yaml:",inline"`
}

// Listen addresses. Defaults: HTTPS "127.0.0.1:8443", HTTP "127.0.0.1:8080".
type Listen struct {
	// HTTPS serves ACME, the REST API, the console, health and metrics.
	HTTPS string `yaml:"https"`
	// HTTP serves OCSP, CRLs and issuer certificates without TLS, so that
	// revocation checking never depends on TLS.
	HTTP string `yaml:"http"`
}

// URLs are the base URLs put into directories and certificates. Defaults:
// HTTPS "https://{hostname}:{https port}", HTTP "http://{hostname}:{http port}".
type URLs struct {
	HTTPS string `yaml:"https"`
	HTTP  string `yaml:"http"`
}

// Database configuration. Default driver "sqlite" with the file
// DIR/strongroom.db. For "postgres", DSN is a pgx URL; the full DSN may
// instead come from STRONGROOM_DATABASE_DSN, which wins (use it when the DSN
// carries a password).
type Database struct {
	Driver string `yaml:"driver"`
	DSN    string `yaml:"dsn"`
	// Timeout bounds each database transaction (an issuance's group
	// commit, a revocation): one the database has not answered within it
	// is abandoned and its requests get 503 with Retry-After, so a
	// database that hangs without closing its connections does not hold
	// issuance until it answers again. Default 10s, or limits'
	// request_timeout if shorter; it must be shorter than
	// limits.write_timeout.
	Timeout Duration `yaml:"timeout"`
}

// Redis configuration. Zero Addr means in-memory state only. The password
// comes from STRONGROOM_REDIS_PASSWORD, never the file.
type Redis struct {
	Addr string `yaml:"addr"`
	DB   int    `yaml:"db"`
	// Prefix begins every key and channel name this CA uses in Redis, so
	// clusters can share one Redis database: give each its own (for
	// example "ca-prod:"). Every node of a cluster must use the same.
	// Empty: "strongroom:".
	Prefix string `yaml:"prefix"`
}

// KeyPrefix is Prefix, or its default.
func (r Redis) KeyPrefix() string {
	if r.Prefix == "" {
		return "strongroom:"
	}
	return r.Prefix
}

// HSM configuration.
type HSM struct {
	// Unseal is how the master secret is unsealed at start: "keyfile"
	// (development default), "passphrase" (STRONGROOM_HSM_PASSPHRASE or an
	// interactive `ca hsm unseal`), "shamir" (shares given with
	// `ca hsm unseal`), or "pkcs11" (the KEK sealed by an AES key on the
	// hsm.pkcs11 token: unsealed at start with no operator). Default
	// "keyfile".
	Unseal string `yaml:"unseal"`
	// KeyFile is the unseal key file for "keyfile", relative to the data
	// directory. Default "unseal.key".
	KeyFile string `yaml:"key_file"`
	// User is the HSM crypto user the CA logs in as. Default "ca".
	User string `yaml:"user"`
	// PINFile holds the CA user's PIN when STRONGROOM_HSM_PIN is not set,
	// relative to the data directory. Default "ca.pin" (written 0600 by
	// the development initialisation).
	PINFile string `yaml:"pin_file"`
	// AppsUser is the HSM crypto user the key service (/api/v1/keys) runs
	// as: applications' keys live apart from the CA's. Default "apps".
	AppsUser string `yaml:"apps_user"`
	// AppsPINFile holds its PIN when STRONGROOM_APPS_PIN is not set,
	// relative to the data directory. Default "apps.pin" (written 0600 by
	// the development initialisation).
	AppsPINFile string `yaml:"apps_pin_file"`
	// UsageSummaryInterval is how often per-key use counts are written to
	// the audit log. Default 1m.
	UsageSummaryInterval Duration `yaml:"usage_summary_interval"`
	// Backup schedules HSM backups (every object still sealed, restorable
	// with the same unseal material; see `ca hsm restore`).
	Backup HSMBackup `yaml:"backup"`
	// PKCS11 is the real HSM that holds the issuers' keys when
	// ca.key_store is "pkcs11".
	PKCS11 PKCS11 `yaml:"pkcs11"`
}

// PKCS11 names a token of a real HSM (for ca.key_store pkcs11 and for
// hsm.unseal pkcs11). Its user PIN comes from
// STRONGROOM_PKCS11_PIN, or from PINFile.
type PKCS11 struct {
	// Module is the path of the vendor's PKCS#11 library.
	Module string `yaml:"module"`
	// Token is the token's label.
	Token string `yaml:"token"`
	// PINFile holds the user PIN when STRONGROOM_PKCS11_PIN is not set,
	// relative to the data directory. Default: none (the environment only).
	PINFile string `yaml:"pin_file"`
	// LabelPrefix goes before the label of every key this CA keeps on the
	// token (the CA keys' key_label, and strongroom-kek), so that several
	// CAs or other applications can share a token or partition. It is set
	// by `ca init --pkcs11-label-prefix` and must not change afterwards:
	// the keys are found by their full labels. Default: none.
	LabelPrefix string `yaml:"label_prefix"`
}

// HSMBackup is the backup schedule. Defaults: enabled, daily, into
// DIR/backups, keeping the newest 7, no second copy.
type HSMBackup struct {
	// Disabled turns scheduled backups off.
	Disabled bool `yaml:"disabled"`
	// Dir receives the backups, relative to the data directory.
	Dir string `yaml:"dir"`
	// CopyDir, when set, receives a copy of each backup (another disk).
	CopyDir string `yaml:"copy_dir"`
	// Keep is how many backups each directory keeps.
	Keep int `yaml:"keep"`
	// Interval between backups.
	Interval Duration `yaml:"interval"`
}

// CA lists the issuers. Defaults: root "root" (certificate root.pem) and one
// intermediate "intermediate" (intermediate.pem), as written by `ca init`.
type CA struct {
	// KeyStore is where the issuers' signing keys live: "hsm", the
	// embedded module (default), or "pkcs11", a real HSM (hsm.pkcs11).
	KeyStore string `yaml:"key_store"`
	// Root is the self-signed root. Its key is used only to sign
	// intermediates, its CRL and its OCSP responder. With root.external
	// the root is kept offline elsewhere and only its certificate is here
	// (`ca init --external-root`, `ca issuer install`).
	Root Issuer `yaml:"root"`
	// Intermediates issue end-entity certificates; the first is the default.
	Intermediates []Issuer `yaml:"intermediates"`
}

// Issuer names one CA certificate and its key in the HSM.
type Issuer struct {
	// ID names the issuer in URLs and records, e.g. "intermediate".
	ID string `yaml:"id"`
	// Cert is the PEM certificate file, relative to the data directory.
	Cert string `yaml:"cert"`
	// KeyLabel is the label of the key pair in the HSM (the embedded
	// module's, or the PKCS#11 token's CKA_LABEL). Default: ID.
	KeyLabel string `yaml:"key_label"`
	// External, for the root only, says its key is not in this CA: an
	// offline root (or another organisation's CA) signed the
	// intermediates' certificates, and publishes its own CRL and OCSP for
	// them. Cert is its certificate, the trust anchor; an intermediate's
	// file may hold the certificates between it and that root after its
	// own. Strongroom signs nothing with the root then: `ca issuer add`
	// makes a key and a CSR, and `ca issuer install` takes the signed
	// certificate. Default false.
	External bool `yaml:"external,omitempty"`
}

// Log configuration. Defaults: level "info", format "text".
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Limits bound every HTTP request. Defaults: body 64 KiB, read timeout 15s,
// write timeout 30s, idle timeout 120s, request timeout two thirds of the
// write timeout.
type Limits struct {
	BodyBytes    int64    `yaml:"body_bytes"`
	ReadTimeout  Duration `yaml:"read_timeout"`
	WriteTimeout Duration `yaml:"write_timeout"`
	IdleTimeout  Duration `yaml:"idle_timeout"`
	// RequestTimeout is how long a request may wait on what the node
	// needs (the database, Redis) before it is answered 503 with
	// Retry-After. It must be shorter than WriteTimeout, past which the
	// connection is closed unanswered.
	RequestTimeout Duration `yaml:"request_timeout"`
	// ConnsPerIP caps the connections one client address holds open on
	// each listener (nginx's limit_conn): past it, new ones are closed at
	// once, so one client cannot use up the process's file descriptors.
	// Default 1000; a negative value turns the cap off.
	ConnsPerIP int `yaml:"conns_per_ip"`
}

// Duration is a time.Duration written as "90s", "15m", "24h".
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d, column %d: want a duration like \"15m\"", n.Line, n.Column)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d, column %d: %q is not a duration like \"15m\"", n.Line, n.Column, s)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Parse decodes a configuration strictly, applies defaults and validates.
func Parse(data []byte) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config: %w", nameKeys(explainUnknown(err, c), data, ""))
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Load reads DIR/strongroom.yaml.
func Load(dir string) (*Config, error) {
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Default returns the configuration with every default applied.
func Default() *Config {
	c := &Config{}
	c.ApplyDefaults()
	return c
}

// Marshal renders the configuration as YAML.
func (c *Config) Marshal() ([]byte, error) { return yaml.Marshal(c) }

// Write stores the configuration as DIR/strongroom.yaml (mode 0644: it
// holds no secrets).
func (c *Config) Write(dir string) error {
	data, err := c.Marshal()
	if err != nil {
		return fmt.Errorf("encoding config: %w", err)
	}
	header := []byte("# Strongroom configuration. Every field is documented in package config;\n# secrets come from the environment, never from this file.\n")
	return os.WriteFile(filepath.Join(dir, FileName), append(header, data...), 0o644)
}
