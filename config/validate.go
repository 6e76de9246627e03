package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/strongroom-pki/strongroom/core"
)

// validator collects every problem so one start shows them all.
type validator struct{ errs []error }

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

func (v *validator) oneOf(field, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	v.add(field, "%q is not one of %s", value, strings.Join(allowed, ", "))
}

func (v *validator) addr(field, value string) {
	_, port, err := net.SplitHostPort(value)
	if err != nil {
		v.add(field, "%q is not host:port", value)
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		v.add(field, "%q: port must be a number from 0 to 65535", value)
	}
}

// url checks an externally visible base URL. Port 0 is refused: it would be
// written into certificates (AIA, CRL distribution point, OCSP) and ACME
// directories, and no client can reach it. A listen port of 0 therefore
// needs an explicit URL.
func (v *validator) url(field, value, scheme string) {
	u, err := url.Parse(value)
	if err != nil || u.Scheme != scheme || u.Host == "" {
		v.add(field, "%q is not an %s:// URL", value, scheme)
		return
	}
	if u.Port() == "0" {
		v.add(field, "%q has port 0 (a listen port of 0 needs an explicit %s)", value, field)
	}
}

func (v *validator) id(field, value string) {
	if err := core.CheckID(value); err != nil {
		v.add(field, "%s", err)
	}
}

var redisPrefixRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// Validate checks the configuration; each error names its field.
func (c *Config) Validate() error {
	v := &validator{}
	if c.Hostname == "" || strings.ContainsAny(c.Hostname, " /:") {
		v.add("hostname", "%q is not a host name", c.Hostname)
	}
	v.addr("listen.https", c.Listen.HTTPS)
	v.addr("listen.http", c.Listen.HTTP)
	v.url("urls.https", c.URLs.HTTPS, "https")
	v.url("urls.http", c.URLs.HTTP, "http")
	if u, err := url.Parse(c.Database.DSN); err == nil && u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword {
			v.add("database.dsn", "holds a password: secrets never go in this file; set %s instead", EnvDatabaseDSN)
		}
	}
	v.oneOf("database.driver", c.Database.Driver, "sqlite", "postgres")
	if c.Database.Driver == "sqlite" && c.Database.DSN == "" {
		v.add("database.dsn", "empty: give the SQLite file")
	}
	// Without a DSN pgx would silently connect to libpq's defaults.
	if c.Database.Driver == "postgres" && c.Database.DSN == "" && os.Getenv(EnvDatabaseDSN) == "" {
		v.add("database.dsn", "empty: give a PostgreSQL URL here or in %s", EnvDatabaseDSN)
	}
	if c.Redis.Addr != "" {
		v.addr("redis.addr", c.Redis.Addr)
	}
	if p := c.Redis.Prefix; p != "" && !redisPrefixRE.MatchString(p) {
		v.add("redis.prefix", "%q: use 1 to 64 letters, digits and . _ - : (for example \"ca-prod:\")", p)
	}
	v.oneOf("hsm.unseal", c.HSM.Unseal, "keyfile", "passphrase", "shamir", "pkcs11")
	if c.HSM.Unseal == "keyfile" && c.HSM.KeyFile == "" {
		v.add("hsm.key_file", "empty: keyfile unseal needs a key file")
	}
	if c.HSM.UsageSummaryInterval.D() < 0 {
		v.add("hsm.usage_summary_interval", "must not be negative")
	}
	if c.HSM.Backup.Keep < 1 {
		v.add("hsm.backup.keep", "%d: keep at least one backup", c.HSM.Backup.Keep)
	}
	if c.HSM.Backup.Interval.D() < time.Minute {
		v.add("hsm.backup.interval", "%s is shorter than a minute", c.HSM.Backup.Interval.D())
	}
	v.oneOf("ca.key_store", c.CA.KeyStore, "hsm", "pkcs11")
	if c.CA.KeyStore == "pkcs11" || c.HSM.Unseal == "pkcs11" {
		if c.HSM.PKCS11.Module == "" {
			v.add("hsm.pkcs11.module", "empty: ca.key_store or hsm.unseal pkcs11 needs the path of the HSM's PKCS#11 library")
		}
		if c.HSM.PKCS11.Token == "" {
			v.add("hsm.pkcs11.token", "empty: ca.key_store or hsm.unseal pkcs11 needs the token's label")
		}
	}
	if p := c.HSM.PKCS11.LabelPrefix; len(p) > 64 || strings.IndexFunc(p, unicode.IsControl) >= 0 {
		v.add("hsm.pkcs11.label_prefix", "%q: at most 64 bytes, no control characters", p)
	}
	seen := map[string]bool{}
	issuers := append([]Issuer{c.CA.Root}, c.CA.Intermediates...)
	for i, is := range issuers {
		field := "ca.root"
		if i > 0 {
			field = fmt.Sprintf("ca.intermediates[%d]", i-1)
		}
		v.id(field+".id", is.ID)
		if seen[is.ID] {
			v.add(field+".id", "%q is used twice", is.ID)
		}
		if base, ok := strings.CutSuffix(is.ID, "-delta"); ok {
			// /crl/{id}.crl of such an issuer is the delta CRL URL of
			// issuer base: one of the two would be unreachable.
			v.add(field+".id", "%q ends in -delta: /crl/%s.crl is where issuer %q's delta CRL is served; choose another ID", is.ID, is.ID, base)
		}
		seen[is.ID] = true
		if i > 0 && is.External {
			v.add(field+".external", "only the root can be external: an intermediate's key is in this CA")
		}
		if is.Cert == "" {
			v.add(field+".cert", "empty")
		}
	}
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")
	if c.Limits.BodyBytes < 1024 {
		v.add("limits.body_bytes", "%d is below 1024", c.Limits.BodyBytes)
	}
	for name, d := range map[string]Duration{"limits.read_timeout": c.Limits.ReadTimeout,
		"limits.write_timeout": c.Limits.WriteTimeout, "limits.idle_timeout": c.Limits.IdleTimeout,
		"limits.request_timeout": c.Limits.RequestTimeout, "database.timeout": c.Database.Timeout} {
		if d.D() <= 0 {
			v.add(name, "must be positive")
		}
	}
	// A request refused for running out of time must still be answered.
	for name, d := range map[string]Duration{"limits.request_timeout": c.Limits.RequestTimeout, "database.timeout": c.Database.Timeout} {
		if d.D() > 0 && c.Limits.WriteTimeout.D() > 0 && d.D() >= c.Limits.WriteTimeout.D() {
			v.add(name, "%s is not shorter than limits.write_timeout (%s): a request refused for want of time would not be answered", d.D(), c.Limits.WriteTimeout.D())
		}
	}
	c.Extra.validate(v)
	if len(v.errs) > 0 {
		return fmt.Errorf("invalid configuration:\n  %w", joinLines(v.errs))
	}
	return nil
}

func joinLines(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "\n  "))
}
