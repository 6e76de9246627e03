package hsm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
)

// AuditEntry is one entry of the hash-chained log.
type AuditEntry struct {
	Seq      int64
	Time     time.Time
	Actor    string // user name, or "" for the module itself
	Action   string // e.g. "login", "key.generate", "key.usage"
	Object   string // user name or key id acted on
	Details  string // key=value pairs; never secrets
	PrevHash []byte
	Hash     []byte
}

// AuditReport is the result of VerifyAudit. FirstBad is 0 when the chain is
// intact; otherwise it is the seq of the first entry that does not verify
// (or the seq where a missing entry was expected) and Problem says why.
type AuditReport struct {
	Entries  int
	FirstBad int64
	Problem  string
	// HeadSeq and HeadHash are the recorded head. Kept outside the
	// database, they are what shows a rollback of the whole database.
	HeadSeq  int64
	HeadHash []byte
	// AuthFrom is the first entry appended with authentication and AuthSeq
	// the last (the head's MAC covers the whole chain up to it); 0 when
	// none is.
	AuthFrom, AuthSeq int64
	// MACChecked is true when the module was unsealed and every MAC
	// verified; false: they could not be checked (sealed), or nothing is
	// authenticated.
	MACChecked bool
	// Unauthenticated counts by action the entries after AuthFrom without
	// a MAC: appended while sealed or by a node of the previous release,
	// when nothing could authenticate them, so anyone able to write the
	// database could have written them. A later head MAC covers them only
	// as they then stood. UnauthEntries lists the first maxUnauthEntries
	// of them.
	Unauthenticated map[string]int
	UnauthEntries   []AuditRef
	// AuthBound is where authentication began as bound into the wrapped
	// KEK's AAD (hsm_meta audit_auth_from), which the head must match; 0:
	// not bound yet (a keystore of the previous release before its first
	// unseal on this one). AuthBoundByUnseal: the unseal material vouched
	// for it here; false: read from the database (sealed, or bound by
	// another node since this one unsealed).
	AuthBound         int64
	AuthBoundByUnseal bool
}

// AuditRef names one audit entry.
type AuditRef struct {
	Seq    int64
	Action string
}

// AuthSummary is one line on the log's authentication, for an intact
// report (the CLI and the console print it).
func (r AuditReport) AuthSummary() string {
	var s string
	switch {
	case r.AuthSeq == 0:
		s = "none yet (a log from before authentication; the next append made unsealed starts it)"
	case r.MACChecked:
		s = fmt.Sprintf("head MAC verified: the log up to #%d is as the HSM left it; authentication began at #%d", r.AuthSeq, r.AuthFrom)
		if r.AuthFrom > 1 {
			s += fmt.Sprintf(", #1 to #%d predate it (the chain vouches for them as they were when it began)", r.AuthFrom-1)
		}
	default:
		s = fmt.Sprintf("head MAC NOT checked (the HSM is sealed here); the head says entries #%d to #%d", r.AuthFrom, r.AuthSeq)
	}
	switch {
	case r.AuthBound != 0 && r.AuthBoundByUnseal:
		s += fmt.Sprintf("; its start #%d is bound to the unseal material", r.AuthBound)
	case r.AuthBound != 0:
		s += fmt.Sprintf("; its start #%d is bound to the unseal material per the keystore (checked at the next unseal)", r.AuthBound)
	default:
		s += "; its start is not bound to the unseal material yet (the next unseal by ca serve binds it)"
	}
	return s
}

// UnauthSummary says which entries have no MAC and why, for an intact
// report (the CLI and the console print it); "" when every entry after
// AuthFrom has one. Each listed entry is named with its action and the
// likely cause: a failed unseal or self-test is appended while sealed,
// when there is no key to authenticate it; anything else without a MAC was
// appended by a node of the previous release, or written outside the HSM.
func (r AuditReport) UnauthSummary() string {
	total := 0
	for _, n := range r.Unauthenticated {
		total += n
	}
	if total == 0 {
		return ""
	}
	var sealed, other []string
	for _, e := range r.UnauthEntries {
		ref := fmt.Sprintf("#%d %s", e.Seq, e.Action)
		if sealedActions[e.Action] {
			sealed = append(sealed, ref)
		} else {
			other = append(other, ref)
		}
	}
	var groups []string
	if len(sealed) > 0 {
		groups = append(groups, strings.Join(sealed, ", ")+" (appended while sealed, when no key could authenticate them)")
	}
	if len(other) > 0 {
		groups = append(groups, strings.Join(other, ", ")+" (appended by a node of the previous release, or written outside the HSM)")
	}
	list := strings.Join(groups, "; ")
	if more := total - len(r.UnauthEntries); more > 0 {
		list += fmt.Sprintf("; and %d more", more)
	}
	what, them := fmt.Sprintf("%d entries have", total), "them"
	if total == 1 {
		what, them = "1 entry has", "it"
	}
	return what + " no MAC, so anyone able to write the database could have written " + them + ": " + list
}

// UnauthBySource splits Unauthenticated: the entries a sealed module
// appends (failed unseals and self-tests, which nothing can authenticate
// then), and the others (a node of the previous release, or written
// outside the HSM).
func (r AuditReport) UnauthBySource() (whileSealed, other int) {
	for action, n := range r.Unauthenticated {
		if sealedActions[action] {
			whileSealed += n
		} else {
			other += n
		}
	}
	return whileSealed, other
}

// sealedActions are the entries a sealed module appends.
var sealedActions = map[string]bool{"unseal.fail": true, "selftest.fail": true}

const auditDomain = "strongroom-hsm-audit-v1"

// auditHash is SHA-256 over a length-prefixed encoding of every field,
// prev hash included, so no field boundary can be shifted.
func auditHash(e storage.HSMAuditEntry) []byte {
	h := sha256.New()
	putField(h, []byte(auditDomain))
	putUint64(h, uint64(e.Seq))
	putUint64(h, uint64(storage.Micros(e.At)))
	for _, f := range []string{e.Actor, e.Action, e.Object, e.Details} {
		putField(h, []byte(f))
	}
	putField(h, e.PrevHash)
	return h.Sum(nil)
}

// putField writes p to h after its length, so that no field boundary can
// be shifted.
func putField(h hash.Hash, p []byte) {
	putUint64(h, uint64(len(p)))
	h.Write(p)
}

func putUint64(h hash.Hash, v uint64) { h.Write(binary.BigEndian.AppendUint64(nil, v)) }

// auditFunc returns the builder storage calls under the head lock.
func (m *Module) auditFunc(actor, action, object, details string) func(int64, []byte) storage.HSMAuditEntry {
	return m.auditFuncOf(actor, object, func() (string, string) { return action, details })
}

// auditFuncOf is auditFunc for an entry whose action and details are
// known only in the change's transaction: describe runs there, after the
// change's writes (a PIN check's outcome, userpin.go).
func (m *Module) auditFuncOf(actor, object string, describe func() (action, details string)) func(int64, []byte) storage.HSMAuditEntry {
	at := m.now().UTC().Truncate(time.Microsecond)
	return func(prevSeq int64, prevHash []byte) storage.HSMAuditEntry {
		action, details := describe()
		e := storage.HSMAuditEntry{Seq: prevSeq + 1, At: at, Actor: actor, Action: action,
			Object: object, Details: details, PrevHash: append([]byte{}, prevHash...)}
		e.Hash = auditHash(e)
		return e
	}
}

// apply writes ch with one audit entry; a failure refuses the operation.
// While the module is unsealed the entry also authenticates the head.
func (m *Module) apply(ctx context.Context, ch storage.HSMChange, actor, action, object, details string) error {
	return m.applyAs(ctx, m.state.Load(), ch, actor, action, object, details)
}

// applyAs is apply under st (nil: sealed, the head is left as
// authenticated before), for the unseal entry, written before st is
// published.
func (m *Module) applyAs(ctx context.Context, st *unsealed, ch storage.HSMChange, actor, action, object, details string) error {
	return m.applyDescribed(ctx, st, ch, actor, object, action, func() (string, string) { return action, details })
}

// applyDescribed is applyAs with the entry's action and details given by
// describe, which runs in the change's transaction (auditFuncOf); what
// names the change in an error.
func (m *Module) applyDescribed(ctx context.Context, st *unsealed, ch storage.HSMChange, actor, object, what string, describe func() (action, details string)) error {
	ch.Audit = m.auditFuncOf(actor, object, func() (string, string) {
		action, details := describe()
		return action, withRequester(ctx, details)
	})
	ch.AuditAuth = st.auditAuth()
	if err := m.store.ApplyHSM(ctx, ch); err != nil {
		return fmt.Errorf("%s: %w (%w)", what, ErrAuditFailed, err)
	}
	if st != nil && len(ch.NewUsers)+len(ch.DeleteUsers) > 0 {
		st.noteUsers(ch.NewUsers, ch.DeleteUsers) // user writes hold m.mu
	}
	return nil
}

// VerifyAudit walks the whole chain: every entry's hash must match its
// contents, link to its predecessor, and seqs must run 1, 2, 3… with the last
// one equal to the recorded head. It needs no login and no unseal.
func (m *Module) VerifyAudit(ctx context.Context) (AuditReport, error) {
	auth, authErr := m.store.HSMAuditAuth(ctx) // before the head: an append in between leaves auth.Seq <= the head
	if authErr != nil && !errors.Is(authErr, storage.ErrHSMAuditDamaged) {
		return AuditReport{}, fmt.Errorf("verifying audit: %w", authErr)
	}
	headSeq, headHash, headErr := m.store.HSMAuditHead(ctx)
	if headErr != nil && !errors.Is(headErr, storage.ErrHSMAuditDamaged) {
		return AuditReport{}, fmt.Errorf("verifying audit: %w", headErr)
	}
	r := AuditReport{Unauthenticated: map[string]int{}}
	w := authWalk{auth: auth}
	st := m.state.Load()
	if st != nil {
		w.key = bytes.Clone(st.macKey)
	}
	// Where authentication began, as the unseal material vouched for it;
	// otherwise as the keystore says (an edit there fails the next unseal).
	if r.AuthBound = auditAnchor(st); r.AuthBound != 0 {
		r.AuthBoundByUnseal = true
	} else {
		meta, err := m.store.HSMMeta(ctx)
		if err != nil {
			return AuditReport{}, fmt.Errorf("verifying audit: %w", err)
		}
		if r.AuthBound, err = metaAuthFrom(meta); err != nil {
			return bad(r, 1, fmt.Sprintf("the keystore's %s, where the log's authentication began, is unreadable: tampered with", metaAuditAuthFrom)), nil
		}
	}
	w.bound = r.AuthBound
	prev := []byte{}
	want := int64(1)
	const page = 1000
	// Entries past the head read above were appended since (another node
	// or session writing now), or put there outside the HSM: the walk
	// stops at the head, and beyond says which (below).
	var beyond int64
walk:
	for {
		es, err := m.store.HSMAudit(ctx, want, page)
		if errors.Is(err, storage.ErrHSMAuditDamaged) {
			return bad(r, want, fmt.Sprintf("an entry from #%d on is unreadable, edited outside the HSM (%v)", want, err)), nil
		}
		if err != nil {
			return AuditReport{}, fmt.Errorf("verifying audit: %w", err)
		}
		for _, e := range es {
			if headErr == nil && e.Seq > headSeq && e.Seq == want {
				beyond = e.Seq
				break walk
			}
			r.Entries++
			switch {
			case e.Seq != want:
				return bad(r, want, fmt.Sprintf("entry %d is missing (next entry is %d)", want, e.Seq)), nil
			case !bytes.Equal(e.PrevHash, prev):
				return bad(r, e.Seq, "previous-hash link does not match the entry before it (deleted, inserted or reordered)"), nil
			case !bytes.Equal(auditHash(e), e.Hash):
				return bad(r, e.Seq, "entry contents do not match its hash (edited)"), nil
			}
			if p := w.entry(&r, e); p != "" {
				return bad(r, e.Seq, p), nil
			}
			prev, want = e.Hash, want+1
		}
		if len(es) < page {
			break
		}
	}
	last := want - 1
	if beyond != 0 {
		// An append writes its entry and the head in one transaction: a
		// head now at or past the entry means it was appended since.
		if seq, _, err := m.store.HSMAuditHead(ctx); err != nil || seq < beyond {
			return bad(r, headSeq+1, fmt.Sprintf("entry %d follows the head, which records %d (appended outside the HSM)", beyond, headSeq)), nil
		}
	}
	if headErr != nil {
		return bad(r, last+1, fmt.Sprintf("the audit head is missing or unreadable: the log was truncated or tampered with (%v)", headErr)), nil
	}
	if last != headSeq || !bytes.Equal(prev, headHash) {
		if last < headSeq {
			return bad(r, last+1, fmt.Sprintf("log ends at %d but the head records %d (entries deleted from the end)", last, headSeq)), nil
		}
		return bad(r, headSeq+1, fmt.Sprintf("log ends at %d but the head records %d", last, headSeq)), nil
	}
	r.HeadSeq, r.HeadHash = headSeq, headHash
	return w.head(r), nil
}

func bad(r AuditReport, seq int64, problem string) AuditReport {
	r.FirstBad, r.Problem = seq, problem
	return r
}

func toAuditEntry(e storage.HSMAuditEntry) AuditEntry {
	return AuditEntry{Seq: e.Seq, Time: e.At, Actor: e.Actor, Action: e.Action, Object: e.Object,
		Details: e.Details, PrevHash: e.PrevHash, Hash: e.Hash}
}

// flushUsage writes one summary entry with every key version's uses since the
// last flush, and adds them to the stored counters. On failure the counts are
// put back so they are written next time.
func (m *Module) flushUsage(ctx context.Context) error {
	st := m.state.Load()
	if st == nil {
		return nil
	}
	var uses []storage.HSMUse
	var kvs []*keyVersion
	var parts []string
	st.keys.Range(func(_, v any) bool {
		ko := v.(*keyObject)
		for _, kv := range ko.versions {
			if n := kv.pending.Swap(0); n > 0 {
				uses = append(uses, storage.HSMUse{ID: ko.id, Version: kv.version, N: n})
				kvs = append(kvs, kv)
				parts = append(parts, fmt.Sprintf("%s/v%d=%d", ko.id, kv.version, n))
			}
		}
		return true
	})
	if len(uses) == 0 {
		return nil
	}
	slices.Sort(parts)
	err := m.apply(ctx, storage.HSMChange{AddUses: uses}, "", "key.usage", "", strings.Join(parts, " "))
	for i, kv := range kvs {
		if err != nil {
			kv.pending.Add(uses[i].N)
		} else {
			kv.stored.Add(uses[i].N)
		}
	}
	if err != nil {
		m.log.Warn("hsm: writing key usage summary failed; will retry", "err", err)
	}
	return err
}

// summarise runs until stop closes, flushing usage every interval.
func (m *Module) summarise(interval time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = m.flushUsage(ctx)
			cancel()
		}
	}
}
