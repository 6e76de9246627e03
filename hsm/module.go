package hsm

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
)

// Options configures a Module. Every zero value has a working default.
type Options struct {
	// Store persists the keystore and audit log (a *storage.DB). Required.
	Store Store
	// Now is the clock for audit entries and key timestamps; zero → time.Now.
	Now func() time.Time
	// Logger receives operational events (never PINs, keys or unseal
	// material); zero → discard. Audit records go to the audit log, not here.
	Logger *slog.Logger
	// UsageSummaryInterval is how often per-key use counts are written as
	// audit summary entries; zero → 1 minute. They are also written on Seal
	// and Close.
	UsageSummaryInterval time.Duration
	// KeySyncInterval is how often the module compares the keys it has
	// cached with the keystore, so that a key another node destroyed,
	// rotated or changed stops being used here as it was (sync.go), and
	// reads the users again, so that the sessions of a user another
	// process deleted, locked or re-roled end (userview.go); zero →
	// 5 seconds, negative → never (one node alone, or tests calling
	// SyncKeys).
	KeySyncInterval time.Duration
	// DeferAuditBinding leaves a previous release's keystore unbound at its
	// first unseal (kekbind.go): the start of the audit log's
	// authentication and the user rows' authentication are not bound into
	// the wrapped KEK, which keeps the AAD that release reads, and rows
	// without a MAC are still accepted (audit entries and rows written are
	// authenticated all the same). Commands an operator runs with a new
	// release before its first `ca serve` (a status, a backup) set it, so
	// the keystore, and a backup taken then, still open with the previous
	// release; the server binds.
	DeferAuditBinding bool
}

// Module is one embedded HSM. It is safe for concurrent use; key operations
// take no module lock (the unsealed state is an atomic pointer and keys sit
// in a sync.Map); each key handle has a read lock only Seal and DestroyKey
// contend for, so zeroing waits for signatures in flight.
type Module struct {
	store Store
	now   func() time.Time
	log   *slog.Logger

	state   atomic.Pointer[unsealed]
	failure atomic.Pointer[string] // set when a self-test failed
	selfTst atomic.Pointer[string] // last self-test result

	mu        sync.Mutex // serialises initialise, unseal, seal and user writes
	stop      chan struct{}
	done      chan struct{} // closed when the summariser has returned
	synced    chan struct{} // closed when the key sync has returned
	closeOnce sync.Once

	damaged damagedSet // the keys found damaged (damagedcount.go)

	// katCorrupt names a self-test whose expected value is corrupted (test
	// hook only; never set outside tests).
	katCorrupt string
	deferBind  bool // Options.DeferAuditBinding
}

// unsealed is everything that exists only while the module is unsealed.
// Sessions remember the pointer they logged in under; a Seal (or a later
// unseal) makes them stale.
type unsealed struct {
	kek    []byte
	aead   cipher.AEAD // AES-256-GCM under kek, seals objects at rest
	macKey []byte      // authenticates the audit head (auditmac.go)
	method UnsealMethod
	keys   sync.Map // key id → *keyObject
	// wentBack holds the keys this node saw stored below a version it
	// held (refreshKey), key id → error: refused until the next unseal,
	// though a fresh read cannot tell (their audit entries may be gone).
	wentBack sync.Map
	users    atomic.Pointer[map[string]userView] // userview.go
	// auditFrom is where the audit log's authentication began, bound into
	// the wrapped KEK's AAD (auditAnchor); 0: not known.
	auditFrom atomic.Int64
	// userKey authenticates the user rows (usermac.go); usersBound: the
	// keystore says they are (users_mac), so a row without a MAC is refused.
	userKey    []byte
	usersBound atomic.Bool
	// priorBind is the seq of the authenticated users-bind entry of a
	// keystore found unbound at unseal (rolled back, usermac.go); 0: none.
	// Set before st is published.
	priorBind int64
}

func (st *unsealed) zero() {
	clear(st.kek)
	clear(st.macKey)
	clear(st.userKey)
	st.aead = nil
	st.keys.Range(func(k, v any) bool {
		v.(*keyObject).destroy()
		st.keys.Delete(k)
		return true
	})
}

// New returns a sealed module over opts.Store and starts the usage
// summariser (stopped by Close).
func New(ctx context.Context, opts Options) (*Module, error) {
	if opts.Store == nil {
		return nil, errors.New("hsm: Options.Store is required")
	}
	m := &Module{store: opts.Store, now: opts.Now, log: opts.Logger, deferBind: opts.DeferAuditBinding,
		stop: make(chan struct{}), done: make(chan struct{}), synced: make(chan struct{})}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	interval := opts.UsageSummaryInterval
	if interval <= 0 {
		interval = time.Minute
	}
	if _, err := m.store.HSMMeta(ctx); err != nil {
		return nil, fmt.Errorf("hsm: reading keystore: %w", err)
	}
	go m.summarise(interval, m.stop, m.done)
	every := opts.KeySyncInterval
	if every == 0 {
		every = 5 * time.Second
	}
	go m.syncLoop(every)
	return m, nil
}

// Initialized reports whether the keystore has been initialised.
func (m *Module) Initialized(ctx context.Context) (bool, error) {
	meta, err := m.store.HSMMeta(ctx)
	if err != nil {
		return false, fmt.Errorf("hsm: reading keystore: %w", err)
	}
	_, ok := meta[metaMethod]
	return ok, nil
}

// Status describes the module for `ca hsm status` and /readyz.
type Status struct {
	Initialized bool
	Sealed      bool
	Method      UnsealMethod
	SelfTest    string // "passed", "not run", or the failing test and why
	Users, Keys int
	Failure     string // non-empty when the module refuses all operations
}

// Status reads the module's state; it needs no login.
func (m *Module) Status(ctx context.Context) (Status, error) {
	meta, err := m.store.HSMMeta(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("hsm status: %w", err)
	}
	s := Status{Method: UnsealMethod(meta[metaMethod]), SelfTest: "not run", Sealed: m.state.Load() == nil}
	_, s.Initialized = meta[metaMethod]
	if r := m.selfTst.Load(); r != nil {
		s.SelfTest = *r
	}
	if f := m.failure.Load(); f != nil {
		s.Failure = "self-test failed: " + *f
	}
	us, err := m.store.HSMUsers(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("hsm status: %w", err)
	}
	s.Users = len(us)
	objs, err := m.store.HSMObjects(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("hsm status: %w", err)
	}
	ids := map[string]bool{}
	for _, o := range objs {
		ids[o.ID] = true
	}
	s.Keys = len(ids)
	return s, nil
}

// Sealed reports whether the module is sealed now.
func (m *Module) Sealed() bool { return m.state.Load() == nil }

// Seal writes pending usage summaries, zeroes the KEK and every unsealed key,
// and ends every session. It is safe to call when already sealed.
func (m *Module) Seal() {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.state.Load()
	if st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = m.flushUsage(ctx)
	if err := m.apply(ctx, storage.HSMChange{}, "", "hsm.seal", "", ""); err != nil {
		// Sealing is the safe direction: seal anyway, but say so.
		m.log.Warn("hsm: sealing without an audit entry", "err", err)
	}
	m.state.Store(nil)
	st.zero()
	m.log.Info("hsm sealed")
}

// Close seals the module (flushing usage summaries) and stops the summariser.
func (m *Module) Close(ctx context.Context) error {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.done
		<-m.synced
	})
	m.Seal()
	return nil
}

// live returns the unsealed state, or why operations are refused.
func (m *Module) live() (*unsealed, error) {
	if f := m.failure.Load(); f != nil {
		return nil, errf(ErrSelfTestFailed, "self-test %s", *f)
	}
	st := m.state.Load()
	if st == nil {
		return nil, ErrSealed
	}
	return st, nil
}
