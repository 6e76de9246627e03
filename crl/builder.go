package crl

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

// RevokedSource streams an issuer's revoked certificates whose status
// changed (revoked, or the reason raised to keyCompromise) at or after
// since, and says when the last such change was (*storage.DB implements
// it). A delta CRL carries every change since its base (RFC 5280 §5.2.4).
type RevokedSource interface {
	EachRevoked(ctx context.Context, issuerID string, since time.Time, fn func(core.Revocation) error) error
	LatestRevocation(ctx context.Context, issuerID string) (time.Time, error)
}

// Store numbers and keeps signed CRLs, and leases the building of an
// issuer's CRLs to one node of a cluster at a time (*storage.DB implements
// it; see storage.DB.AcquireCRLLease).
type Store interface {
	AcquireCRLLease(ctx context.Context, issuerID, holder string, ttl time.Duration) (bool, error)
	ReleaseCRLLease(ctx context.Context, issuerID, holder string) error
	// NextCRLNumber takes the next number of the issuer's sequence shared
	// by its full and delta CRLs: the last one plus one, or atLeast if that
	// is larger.
	NextCRLNumber(ctx context.Context, issuerID string, atLeast int64) (int64, error)
	SaveCRL(ctx context.Context, c storage.CRL) error
	LatestCRL(ctx context.Context, issuerID string, delta bool) (storage.CRL, error)
	LatestCRLNumber(ctx context.Context, issuerID string, delta bool) (int64, error)
}

// Subscriber delivers events published on a topic.
// A nil message means messages may have been lost (storage.RedisEvents after
// its connection broke).
type Subscriber interface {
	Subscribe(ctx context.Context, topic string, fn func(msg []byte)) (stop func(), err error)
}

// Issuer is a CA whose CRLs the builder makes.
type Issuer struct {
	ID     string
	Cert   *x509.Certificate
	Signer crypto.Signer // the issuer key, in the HSM
	// URL is the distribution point of the full CRL, as named in the
	// issuer's certificates; it goes into the issuingDistributionPoint of
	// both the full and the delta CRL (they share one scope).
	URL string
	// DeltaURL, when set, is named in the full CRL's freshestCRL extension.
	DeltaURL string
}

// Options configures a Builder. Zero values take the documented defaults.
type Options struct {
	Issuers []Issuer
	Source  RevokedSource
	Store   Store
	// Validity is nextUpdate - thisUpdate; default 24h.
	Validity time.Duration
	// Interval is how often a new base CRL is built on schedule; default 1h.
	// It must be shorter than Validity.
	Interval time.Duration
	// Debounce is how long after a revocation the CRLs are rebuilt, so a
	// burst of revocations makes one build; default 2s.
	Debounce time.Duration
	// Refresh is how often Run looks for newer CRLs another node built;
	// default 15s.
	Refresh time.Duration
	// LeaseTTL is how long one build may hold the issuer's CRL lease before
	// another node may take it over. It must cover a whole build (full and
	// delta CRL) with room to spare, and node clocks must agree to well
	// within it; default 2m.
	LeaseTTL time.Duration
	// HTTPMaxAge is the Cache-Control max-age of served CRLs (capped by
	// nextUpdate); default one minute, so revocations show quickly.
	HTTPMaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives build events and errors; nil discards.
	Log *slog.Logger
	// Served, when set, is called with each CRL that becomes served: built
	// here, loaded at start or picked up from another node. It may be
	// called from several goroutines at once and should return quickly
	// (cmd/ca records the newest number outside the database, to notice a
	// database restored from an older backup).
	Served func(storage.CRL)
	// Published, when set, returns the highest number this node knows it
	// published for an issuer outside the database (0: none); the next
	// CRL is numbered above it even when the clock is behind the instant
	// that number was taken (a database restored on a node whose clock
	// went back).
	Published func(issuerID string) int64
}

type issuerState struct {
	Issuer
	build  sync.Mutex // one build per issuer at a time
	full   atomic.Pointer[storage.CRL]
	delta  atomic.Pointer[storage.CRL]
	base   atomic.Pointer[storage.CRL] // the complete CRL deltas build on
	own    atomic.Int64                // number of the last full CRL this Builder stored
	tmu    sync.Mutex
	timer  *time.Timer
	queued atomic.Bool
	// startBuilt: BuildMissing built this issuer's CRLs, so Run's first
	// round skips it.
	startBuilt atomic.Bool
	// busySince is when a triggered rebuild first found the lease held by
	// another node (zero when it did not); only Run's goroutine uses it.
	busySince time.Time
}

// ErrBusy is returned by Build when another node holds the issuer's CRL
// lease: that node is building the issuer's CRLs.
var ErrBusy = errors.New("crl: another node is building this issuer's CRLs")

// Builder builds, stores and serves the CRLs of its issuers. It is an
// http.Handler for /crl/{issuer}.crl, /crl/{issuer}-delta.crl and
// /issuers/{issuer}.crt.
type Builder struct {
	issuers  map[string]*issuerState
	source   RevokedSource
	store    Store
	validity time.Duration
	interval time.Duration
	debounce time.Duration
	refresh  time.Duration
	leaseTTL time.Duration
	maxAge   time.Duration
	now      func() time.Time
	log      *slog.Logger
	served   func(storage.CRL)
	// published is Options.Published.
	published func(issuerID string) int64
	due       chan *issuerState
	holder    string // names this Builder in the CRL leases it holds
}

// New checks opts and returns a Builder. Call Load, then Run.
func New(opts Options) (*Builder, error) {
	b := &Builder{issuers: map[string]*issuerState{}, source: opts.Source, store: opts.Store,
		validity: opts.Validity, interval: opts.Interval, debounce: opts.Debounce, refresh: opts.Refresh,
		leaseTTL: opts.LeaseTTL, maxAge: opts.HTTPMaxAge, now: opts.Now, log: opts.Log, served: opts.Served, published: opts.Published}
	if b.source == nil || b.store == nil {
		return nil, errors.New("crl: Source and Store are required")
	}
	if len(opts.Issuers) == 0 {
		return nil, errors.New("crl: no issuers")
	}
	if b.validity <= 0 {
		b.validity = 24 * time.Hour
	}
	if b.interval <= 0 {
		b.interval = time.Hour
	}
	if b.interval >= b.validity {
		return nil, errors.New("crl: Interval must be shorter than Validity, or clients would see expired CRLs")
	}
	if b.debounce <= 0 {
		b.debounce = 2 * time.Second
	}
	if b.refresh <= 0 {
		b.refresh = 15 * time.Second
	}
	if b.leaseTTL <= 0 {
		b.leaseTTL = 2 * time.Minute
	}
	if b.maxAge <= 0 {
		b.maxAge = time.Minute
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	for _, is := range opts.Issuers {
		if is.ID == "" || is.Cert == nil || is.Signer == nil {
			return nil, errors.New("crl: issuer needs an ID, a certificate and a signer")
		}
		if b.issuers[is.ID] != nil {
			return nil, fmt.Errorf("crl: issuer %s listed twice", is.ID)
		}
		b.issuers[is.ID] = &issuerState{Issuer: is}
	}
	b.due = make(chan *issuerState, len(b.issuers))
	b.holder = holderID()
	return b, nil
}

// holderID names a Builder in the leases it holds: the host, for operators
// reading crl_leases, and a random part, so two Builders never share one.
func holderID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	return host + "/" + rand.Text()
}

// Load reads the newest stored CRLs, so a starting node serves at once what
// was last published.
func (b *Builder) Load(ctx context.Context) error {
	for _, s := range b.issuers {
		for _, delta := range []bool{false, true} {
			c, err := b.store.LatestCRL(ctx, s.ID, delta)
			if core.IsNotFound(err) {
				continue
			}
			if err != nil {
				return err
			}
			b.publish(s, &c)
		}
	}
	return nil
}

// BuildMissing builds now the CRLs of every issuer that has none to serve
// after Load (the CA's first start, or a node stopped before its first
// build stored anything), so that a node does not become ready and then
// answer 503 "not built yet" for them. Run's first round skips the issuers
// it built. Another node building (ErrBusy) or a failure is logged, and
// Run tries again.
func (b *Builder) BuildMissing(ctx context.Context) {
	for _, s := range b.issuers {
		if s.full.Load() != nil {
			continue
		}
		err := b.Build(ctx, s.ID, true)
		switch {
		case err == nil:
			s.startBuilt.Store(true)
		case errors.Is(err, ErrBusy):
			b.log.Info("another node is building the first CRL", "issuer", s.ID)
		default:
			b.log.Error("building CRL", "issuer", s.ID, "err", err)
		}
	}
}

// publish makes c the served CRL of its kind unless a newer one is served.
func (b *Builder) publish(s *issuerState, c *storage.CRL) {
	p := &s.full
	if c.Delta {
		p = &s.delta
	}
	for {
		old := p.Load()
		if old != nil && old.Number >= c.Number {
			return
		}
		if p.CompareAndSwap(old, c) {
			if b.served != nil {
				b.served(*c)
			}
			return
		}
	}
}

// Build builds, stores and publishes a new full CRL of issuerID and a delta
// CRL against the current base. With newBase, the full CRL becomes the base
// of later deltas (as on the schedule); otherwise (after a revocation) the
// delta keeps building on the older base, so it lists what changed since.
//
// Build holds the issuer's CRL lease in the Store while it takes CRL numbers
// and reads the revocations, so across the nodes sharing the database a
// higher-numbered CRL is always read after a lower-numbered one: a full CRL
// lists every revocation a lower-numbered one lists. When another node holds
// the lease, Build returns ErrBusy and builds nothing (or, should the lease
// have been lost during the full CRL, no delta).
func (b *Builder) Build(ctx context.Context, issuerID string, newBase bool) error {
	s := b.issuers[issuerID]
	if s == nil {
		return core.Errorf(core.KindNotFound, "no issuer %q", issuerID)
	}
	s.build.Lock()
	defer s.build.Unlock()
	if err := b.hold(ctx, s); err != nil {
		return err
	}
	defer b.release(ctx, s)
	full, err := b.build(ctx, s, nil)
	if err != nil {
		return err
	}
	base := s.base.Load()
	if newBase || base == nil {
		s.base.Store(full)
		base = full
	}
	// Renew before taking the delta's number: should the full CRL have
	// outlasted the lease, another node may be building now.
	if err := b.hold(ctx, s); err != nil {
		return err
	}
	if _, err := b.build(ctx, s, base); err != nil {
		return err
	}
	return nil
}

// hold takes or renews s's CRL lease for b, or returns ErrBusy.
func (b *Builder) hold(ctx context.Context, s *issuerState) error {
	ok, err := b.store.AcquireCRLLease(ctx, s.ID, b.holder, b.leaseTTL)
	if err != nil {
		return err
	}
	if !ok {
		return ErrBusy
	}
	return nil
}

// release gives s's CRL lease back, even when ctx has ended; should that
// fail, the lease expires by itself.
func (b *Builder) release(ctx context.Context, s *issuerState) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := b.store.ReleaseCRLLease(ctx, s.ID, b.holder); err != nil {
		b.log.Warn("releasing CRL lease", "issuer", s.ID, "err", err)
	}
}

// build makes one CRL: a full one when base is nil, else a delta listing
// the changes since base (with a margin for changes committed while base
// was being read).
func (b *Builder) build(ctx context.Context, s *issuerState, base *storage.CRL) (*storage.CRL, error) {
	start := time.Now()
	at := b.now().UTC()
	now := at.Truncate(time.Second)
	floor := numberFloor(at)
	if b.published != nil {
		floor = max(floor, b.published(s.ID)+1)
	}
	n, err := b.store.NextCRLNumber(ctx, s.ID, floor)
	if err != nil {
		return nil, err
	}
	tmpl := Template{Issuer: s.Cert, Number: n, ThisUpdate: now, NextUpdate: now.Add(b.validity),
		DistributionPoint: s.URL, FreshestCRL: s.DeltaURL}
	var since time.Time
	if base != nil {
		tmpl.BaseNumber = base.Number
		since = base.ThisUpdate.Add(-5 * time.Minute)
	}
	count := 0
	der, err := Encode(ctx, tmpl, s.Signer, func(fn func(Entry) error) error {
		return b.source.EachRevoked(ctx, s.ID, since, func(r core.Revocation) error {
			count++
			return fn(Entry{Serial: r.Serial, RevokedAt: r.RevokedAt, Reason: r.Reason, InvalidityDate: r.InvalidityDate})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("building CRL %d of issuer %s: %w", n, s.ID, err)
	}
	c := &storage.CRL{IssuerID: s.ID, Delta: base != nil, Number: n, BaseNumber: tmpl.BaseNumber,
		ThisUpdate: now, NextUpdate: tmpl.NextUpdate, DER: der}
	if err := b.store.SaveCRL(ctx, *c); err != nil {
		return nil, err
	}
	if !c.Delta {
		s.own.Store(n)
	}
	b.publish(s, c)
	b.log.Info("CRL published", "issuer", s.ID, "number", n, "delta", c.Delta, "entries", count,
		"bytes", len(der), "duration", time.Since(start))
	return c, nil
}

// Trigger asks for a rebuild of issuerID's CRLs after the debounce delay;
// triggers during the delay join the same rebuild.
func (b *Builder) Trigger(issuerID string) {
	s := b.issuers[issuerID]
	if s == nil {
		return
	}
	s.tmu.Lock()
	defer s.tmu.Unlock()
	if s.timer != nil {
		return
	}
	s.timer = time.AfterFunc(b.debounce, func() {
		s.tmu.Lock()
		s.timer = nil
		s.tmu.Unlock()
		if s.queued.CompareAndSwap(false, true) {
			b.due <- s // never blocks: at most one entry per issuer
		}
	})
}

// Subscribe triggers a rebuild for every revocation published on
// storage.TopicRevoked, until stop is called.
func (b *Builder) Subscribe(ctx context.Context, sub Subscriber) (stop func(), err error) {
	return sub.Subscribe(ctx, storage.TopicRevoked, func(msg []byte) {
		if msg == nil {
			// Revocations may have been missed: rebuild every issuer's.
			for id := range b.issuers {
				b.Trigger(id)
			}
			return
		}
		issuerID, _, err := storage.DecodeRevoked(msg)
		if err != nil {
			b.log.Warn("ignoring bad revocation event", "err", err)
			return
		}
		b.Trigger(issuerID)
	})
}

// Run builds every issuer's CRLs now and then on schedule, rebuilds after
// triggers, and picks up newer CRLs other nodes stored, until ctx ends.
// Build errors are logged and retried on the next occasion; the previous
// CRL stays served meanwhile.
//
// Nodes sharing a database share the work: a scheduled build is skipped
// while another node holds the issuer's lease, or when another node built a
// full CRL within the last half interval (it becomes this node's base too);
// a rebuild after a revocation waits for the lease instead (see rebuild).
func (b *Builder) Run(ctx context.Context) error {
	for _, s := range b.issuers {
		if s.startBuilt.Load() {
			continue // just built by BuildMissing
		}
		err := b.Build(ctx, s.ID, true)
		if errors.Is(err, ErrBusy) {
			b.Trigger(s.ID) // as after a revocation: build once the lease is free
		} else if err != nil {
			b.log.Error("building CRL", "issuer", s.ID, "err", err)
		}
	}
	sched := time.NewTicker(b.interval)
	defer sched.Stop()
	refresh := time.NewTicker(b.refresh)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sched.C:
			b.pickUp(ctx)
			for _, s := range b.issuers {
				b.scheduled(ctx, s)
			}
		case s := <-b.due:
			s.queued.Store(false)
			b.rebuild(ctx, s)
		case <-refresh.C:
			b.pickUp(ctx)
			b.catchUp(ctx)
		}
	}
}

// scheduled makes s's scheduled build, unless another node made it: one
// holds the lease now, or the served full CRL is another node's, recent,
// and still valid past the next tick. Then that CRL becomes the base of
// this node's deltas. A single node always builds: its served CRL is its
// own.
func (b *Builder) scheduled(ctx context.Context, s *issuerState) {
	if c := s.full.Load(); c != nil && c.Number > s.own.Load() {
		now := b.now()
		if now.Sub(c.ThisUpdate) < b.interval/2 && c.NextUpdate.After(now.Add(b.interval)) {
			s.build.Lock()
			s.base.Store(c)
			s.build.Unlock()
			b.log.Debug("scheduled CRL built by another node", "issuer", s.ID, "number", c.Number)
			return
		}
	}
	err := b.Build(ctx, s.ID, true)
	switch {
	case errors.Is(err, ErrBusy):
		b.log.Debug("scheduled CRL being built by another node", "issuer", s.ID)
	case err != nil:
		b.log.Error("building CRL", "issuer", s.ID, "err", err)
	}
}

// rebuild makes the build a Trigger asked for. While another node holds the
// lease it asks again after the debounce delay rather than dropping the
// request: the holder may have read the revocations before the one that
// triggered this. It stops asking once the lease has been busy for longer
// than LeaseTTL (plus one delay): as a build lasts less than LeaseTTL, the
// lease has changed hands since, and its holder's build, begun after the
// revocation, lists it.
func (b *Builder) rebuild(ctx context.Context, s *issuerState) {
	err := b.Build(ctx, s.ID, false)
	if errors.Is(err, ErrBusy) {
		now := time.Now()
		if s.busySince.IsZero() {
			s.busySince = now
		}
		if now.Sub(s.busySince) < b.leaseTTL+b.debounce {
			b.log.Debug("CRL lease busy, rebuilding later", "issuer", s.ID)
			b.Trigger(s.ID)
			return
		}
		b.log.Warn("CRL lease busy for longer than its TTL; leaving the rebuild to the lease holder",
			"issuer", s.ID, "since", s.busySince)
	} else if err != nil {
		b.log.Error("rebuilding CRL after revocation", "issuer", s.ID, "err", err)
	}
	s.busySince = time.Time{}
}

// pickUp loads CRLs newer than the served ones from the store.
func (b *Builder) pickUp(ctx context.Context) {
	for _, s := range b.issuers {
		for _, delta := range []bool{false, true} {
			cur := s.full.Load()
			if delta {
				cur = s.delta.Load()
			}
			n, err := b.store.LatestCRLNumber(ctx, s.ID, delta)
			if err != nil || (cur != nil && n <= cur.Number) {
				continue
			}
			c, err := b.store.LatestCRL(ctx, s.ID, delta)
			if err != nil {
				b.log.Warn("loading CRL", "issuer", s.ID, "err", err)
				continue
			}
			b.publish(s, &c)
		}
	}
}

// catchUp triggers a rebuild for an issuer with a revocation (or a reason
// raised) since its served CRL was made: the durable path behind revocation events, which are at most
// once (a Redis outage during a revocation loses them), so a revocation
// reaches the CRLs within a refresh instead of at the next scheduled
// build. A revocation made in the second a CRL was read may trigger one
// needless build.
func (b *Builder) catchUp(ctx context.Context) {
	for _, s := range b.issuers {
		cur := s.delta.Load()
		if cur == nil {
			cur = s.full.Load()
		}
		if cur == nil || s.queued.Load() {
			continue
		}
		latest, err := b.source.LatestRevocation(ctx, s.ID)
		if err != nil {
			b.log.Warn("checking for revocations", "issuer", s.ID, "err", err)
			continue
		}
		if !latest.Before(cur.ThisUpdate) {
			b.log.Info("revocations newer than the served CRL; rebuilding", "issuer", s.ID, "crl", cur.Number)
			b.Trigger(s.ID)
		}
	}
}

// Current returns the served CRL of the kind, or nil if none yet.
func (b *Builder) Current(issuerID string, delta bool) *storage.CRL {
	s := b.issuers[issuerID]
	if s == nil {
		return nil
	}
	if delta {
		return s.delta.Load()
	}
	return s.full.Load()
}
