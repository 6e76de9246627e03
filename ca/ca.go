package ca

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strongroom-pki/strongroom/core"
)

// Store keeps certificate records. *storage.DB implements it;
// *storage.CertWriter implements it with group commit, which is what a
// server should use (concurrent issuers share SQLite commits instead of
// queueing on its write lock: ~5,700 vs ~1,700 issuances' writes per second
// here).
type Store interface {
	// ReserveSerial inserts a reserved row; a serial that already has a
	// row is a KindConflict error and nothing changes.
	ReserveSerial(ctx context.Context, c *core.Certificate) error
	// RecordIntent stores the linted TBS and names on a reserved row.
	RecordIntent(ctx context.Context, c *core.Certificate, at time.Time) error
	// StoreIssued marks a reserved row valid with the signed DER.
	StoreIssued(ctx context.Context, serial core.Serial, der []byte, at time.Time) error
	// AbandonIntent withdraws the intent of a certificate the signer
	// refused to sign; its serial stays reserved.
	AbandonIntent(ctx context.Context, serial core.Serial, at time.Time) error
	RevokeCertificate(ctx context.Context, serial core.Serial, reason core.RevocationReason, at, invalidity time.Time) error
	// RevokeAndBlockKey revokes for keyCompromise and blocks the key, in
	// one transaction.
	RevokeAndBlockKey(ctx context.Context, serial core.Serial, at, invalidity time.Time) error
	GetCertificate(ctx context.Context, serial core.Serial) (*core.Certificate, error)
	// KeyBlocked reports whether a key (core.KeyHash) is blocked.
	// RecordIntent refuses one with core.ErrKeyBlocked.
	KeyBlocked(ctx context.Context, keyHash []byte) (bool, error)
	// RevokeBlockedKeys revokes every valid, unexpired certificate whose
	// key is blocked and returns them.
	RevokeBlockedKeys(ctx context.Context, at time.Time) ([]core.Certificate, error)
}

// URLs are the locations written into every issued certificate. Each may
// contain {issuer}, replaced by the issuer's id.
type URLs struct {
	CAIssuers []string `yaml:"ca_issuers"` // AIA caIssuers; zero: omitted
	OCSP      []string `yaml:"ocsp"`       // AIA OCSP; zero: omitted
	CRL       []string `yaml:"crl"`        // CRL distribution points; zero: omitted
}

// check refuses a URL that is not absolute http(s) ({issuer} may stand for
// the issuer's id anywhere).
func (u URLs) check() error {
	for _, list := range [][]string{u.CAIssuers, u.OCSP, u.CRL} {
		for _, raw := range list {
			p, err := url.Parse(strings.ReplaceAll(raw, "{issuer}", "x"))
			if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				return fmt.Errorf("ca: URL %q is not an absolute http:// or https:// URL", raw)
			}
		}
	}
	return nil
}

// Options configures a CA.
type Options struct {
	Store   Store     // required
	Issuers []*Issuer // required: at least one
	// DefaultIssuer is the issuer preferred when a request names none.
	// Zero: the first of Issuers. When its certificate is revoked or
	// expired, the first of Issuers whose certificate is neither is used
	// instead (see CA.DefaultIssuer).
	DefaultIssuer string
	// Profiles adds to or overrides (by name) the built-in profiles; an
	// override takes the fields it leaves out from the built-in.
	Profiles []Profile
	URLs     URLs
	Lint     LintOptions
	// Backdate is how far NotBefore is set before now, for clients with
	// slow clocks. Zero: one minute. The lifetime counts from NotBefore.
	Backdate time.Duration
	Now      func() time.Time // zero: time.Now
	Logger   *slog.Logger     // zero: discard
	// Registerer receives the issuance metrics. Zero: no metrics.
	Registerer prometheus.Registerer
	// SerialPool is how many serials are reserved ahead of use per issuer,
	// in one transaction, when the Store is a BatchReserver. Zero: 32;
	// negative or 1: reserve one serial per issuance. Serials of a pool
	// lost at shutdown or in a crash stay reserved (never used, never
	// reused).
	SerialPool int

	// afterIntent, when set, runs after the intent is recorded and before
	// the HSM signs; an error stops the pipeline there (fault injection
	// in tests).
	afterIntent func() error
}

// CA issues certificates through the pipeline described in the package
// documentation. It is safe for concurrent use.
type CA struct {
	store     Store
	issuers   map[string]*Issuer
	issuerIDs []string
	// order is the preference for a request that names no issuer:
	// Options.DefaultIssuer, then Options.Issuers as given.
	order       []string
	profiles    map[string]*Profile
	urls        URLs
	linter      *Linter
	backdate    time.Duration
	now         func() time.Time
	log         *slog.Logger
	metrics     *metrics
	afterIntent func() error
	pool        *serialPool // nil: reserve one serial per issuance
	// revokedIssuers are the issuers whose own certificate is revoked,
	// by id (issuerstatus.go).
	revokedIssuers atomic.Pointer[map[string]revocation]
	// loggedDefault is the default issuer CheckIssuers last logged.
	loggedDefault atomic.Pointer[string]
}

// New checks opts and returns a CA.
func New(opts Options) (*CA, error) {
	if opts.Store == nil {
		return nil, fmt.Errorf("ca: a Store is required")
	}
	if len(opts.Issuers) == 0 {
		return nil, fmt.Errorf("ca: at least one issuer is required")
	}
	c := &CA{store: opts.Store, issuers: map[string]*Issuer{}, urls: opts.URLs,
		backdate: opts.Backdate, now: opts.Now, log: opts.Logger, afterIntent: opts.afterIntent}
	for _, is := range opts.Issuers {
		if _, dup := c.issuers[is.ID()]; dup {
			return nil, fmt.Errorf("ca: two issuers named %q", is.ID())
		}
		c.issuers[is.ID()] = is
		c.issuerIDs = append(c.issuerIDs, is.ID())
	}
	if opts.DefaultIssuer != "" {
		if _, ok := c.issuers[opts.DefaultIssuer]; !ok {
			return nil, fmt.Errorf("ca: default issuer %q is not configured", opts.DefaultIssuer)
		}
		c.order = append(c.order, opts.DefaultIssuer)
	}
	for _, id := range c.issuerIDs {
		if id != opts.DefaultIssuer {
			c.order = append(c.order, id)
		}
	}
	sort.Strings(c.issuerIDs)
	var err error
	if c.profiles, err = mergeProfiles(opts.Profiles); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if c.linter, err = NewLinter(opts.Lint); err != nil {
		return nil, err
	}
	if err := opts.URLs.check(); err != nil {
		return nil, err
	}
	if c.backdate < 0 {
		return nil, fmt.Errorf("ca: backdate %s is negative (certificates would start in the future)", c.backdate)
	}
	if c.backdate == 0 {
		c.backdate = time.Minute
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.metrics, err = newMetrics(opts.Registerer); err != nil {
		return nil, err
	}
	size := opts.SerialPool
	if size == 0 {
		size = 32
	}
	c.pool = newSerialPool(c.store, size, c.log, c.now)
	return c, nil
}

// Issuer returns the issuer named id, or a KindNotFound error. For id ""
// it returns the default issuer (DefaultIssuer), or core.ErrNoIssuer
// (KindUnavailable) when no issuer's certificate is usable.
func (c *CA) Issuer(id string) (*Issuer, error) {
	if id == "" {
		if id = c.DefaultIssuer(); id == "" {
			return nil, core.ErrNoIssuer
		}
	}
	is, ok := c.issuers[id]
	if !ok {
		return nil, core.Errorf(core.KindNotFound, "no issuer %q", id)
	}
	return is, nil
}

// NameRefusal is the issuer's (zero: the default issuer's)
// Issuer.NameRefusal; "" for an unknown issuer, which issuance refuses.
func (c *CA) NameRefusal(issuer, kind, name string) string {
	is, err := c.Issuer(issuer)
	if err != nil {
		return ""
	}
	return is.NameRefusal(kind, name)
}

// Issuers returns every issuer, sorted by id.
func (c *CA) Issuers() []*Issuer {
	out := make([]*Issuer, len(c.issuerIDs))
	for i, id := range c.issuerIDs {
		out[i] = c.issuers[id]
	}
	return out
}

// DefaultIssuer is the id of the issuer used when a request names none:
// the first in Options' order (DefaultIssuer, then Issuers) whose
// certificate is neither revoked nor expired, or "" when none is. A
// revoked default must not stop issuance while a configured spare can
// take over: new certificates, renewals and the node's own HTTPS
// certificate move to it at once.
//
// An issuer whose chain does not allow serverAuth (a code-signing
// intermediate) is never the default: the default issues TLS certificates
// and the node's own HTTPS certificate. Nor is a root: it signs no
// end-entity certificate unless a request names it.
func (c *CA) DefaultIssuer() string { return c.issuerForEKU(serverAuth) }

var serverAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}

// Profile returns the profile named name or a KindRejected error.
func (c *CA) Profile(name string) (Profile, error) {
	p, ok := c.profiles[name]
	if !ok {
		return Profile{}, core.Errorf(core.KindRejected, "unknown profile %q", name)
	}
	return *p, nil
}

// Profiles lists the profiles, sorted by name.
func (c *CA) Profiles() []Profile { return sortedProfiles(c.profiles) }

// Linter is the CA's linter (its Names say which lints run).
func (c *CA) Linter() *Linter { return c.linter }

// Certificate returns the stored record of serial.
func (c *CA) Certificate(ctx context.Context, serial core.Serial) (*core.Certificate, error) {
	return c.store.GetCertificate(ctx, serial)
}

// Revoke records the revocation of a valid certificate with an RFC 5280
// reason, at the CA's current time, with an optional invalidity date (RFC
// 5280 §5.3.2; zero: none), which may not be in the future but may precede
// the certificate: a key can be compromised before it is certified.
// certificateHold is refused. A keyCompromise reason does not block the
// key here (see RevokeAndBlockKey).
func (c *CA) Revoke(ctx context.Context, serial core.Serial, reason core.RevocationReason, invalidity time.Time) error {
	if _, err := core.ReasonFromCode(int(reason)); err != nil {
		return err
	}
	return c.revoke(ctx, serial, reason, invalidity, c.store.RevokeCertificate)
}

// RevokeAndBlockKey revokes a certificate for keyCompromise, as Revoke, and
// blocks its key (for a claimant who proved it holds the key, or is an
// operator): nothing is issued for the key again, and RevokeBlockedKeys
// revokes its other certificates. A certificate revoked for keyCompromise
// already just has its key blocked.
func (c *CA) RevokeAndBlockKey(ctx context.Context, serial core.Serial, invalidity time.Time) error {
	return c.revoke(ctx, serial, core.ReasonKeyCompromise, invalidity,
		func(ctx context.Context, serial core.Serial, _ core.RevocationReason, at, invalidity time.Time) error {
			return c.store.RevokeAndBlockKey(ctx, serial, at, invalidity)
		})
}

func (c *CA) revoke(ctx context.Context, serial core.Serial, reason core.RevocationReason, invalidity time.Time,
	record func(ctx context.Context, serial core.Serial, reason core.RevocationReason, at, invalidity time.Time) error) error {
	now := c.now().UTC()
	if !invalidity.IsZero() {
		if err := CheckInvalidityDate(invalidity, now); err != nil {
			return err
		}
	}
	if err := record(ctx, serial, reason, now, invalidity.UTC()); err != nil {
		return err
	}
	c.log.InfoContext(ctx, "certificate revoked", "serial", string(serial), "reason", reason.String())
	return nil
}

// CheckInvalidityDate refuses an invalidity date (RFC 5280 §5.3.2) in the
// future or before 1970 (0001-01-01 is a client's zero value, not a date a
// key was compromised). One before the certificate's notBefore is allowed.
func CheckInvalidityDate(invalidity, now time.Time) error {
	if invalidity.After(now) {
		return core.Errorf(core.KindMalformed, "the invalidity date %s is in the future", invalidity.UTC().Format(time.RFC3339))
	}
	if invalidity.Before(time.Unix(0, 0)) {
		return core.Errorf(core.KindMalformed, "the invalidity date %s is before 1970", invalidity.UTC().Format(time.RFC3339))
	}
	return nil
}

// RevokeBlockedKeys revokes for keyCompromise every valid, unexpired
// certificate whose key is blocked (a keyCompromise revocation blocks its
// key) and returns them, so the caller can tell the responders and CRL
// builders.
func (c *CA) RevokeBlockedKeys(ctx context.Context) ([]core.Certificate, error) {
	out, err := c.store.RevokeBlockedKeys(ctx, c.now().UTC())
	for _, r := range out {
		c.log.InfoContext(ctx, "certificate revoked: its key is blocked", "serial", string(r.Serial), "reason", r.RevocationReason.String())
	}
	return out, err
}

func joinComma(s []string) string { return strings.Join(s, ", ") }
