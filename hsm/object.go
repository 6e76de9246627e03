package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
)

// attrs is a key version's attribute set. Its JSON encoding (fixed field
// order, SharedWith sorted) is stored beside the sealed secret and bound into
// the seal's additional data, so editing any attribute — or moving a blob to
// another row — makes the object fail to open.
type attrs struct {
	ID          string   `json:"id"`
	Version     int      `json:"version"`
	Type        KeyType  `json:"type"`
	Label       string   `json:"label"`
	Usage       Usage    `json:"usage"`
	Extractable bool     `json:"extractable"`
	Owner       string   `json:"owner"`
	SharedWith  []string `json:"shared_with"`
	Created     int64    `json:"created"` // UTC unix microseconds
}

const objectAADDomain = "strongroom-hsm-object-v1"

func objectAAD(id string, version int, enc []byte) []byte {
	b := []byte(objectAADDomain)
	b = binary.BigEndian.AppendUint32(b, uint32(len(id)))
	b = append(b, id...)
	b = binary.BigEndian.AppendUint32(b, uint32(version))
	return append(b, enc...)
}

// sealObject seals material under the KEK with a as additional data.
func sealObject(st *unsealed, a attrs, material []byte) (storage.HSMObject, error) {
	a.SharedWith = slices.Clone(a.SharedWith)
	slices.Sort(a.SharedWith)
	enc, err := json.Marshal(a)
	if err != nil {
		return storage.HSMObject{}, err
	}
	nonce := make([]byte, st.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return storage.HSMObject{}, err
	}
	sealed := st.aead.Seal(nonce, nonce, material, objectAAD(a.ID, a.Version, enc))
	return storage.HSMObject{ID: a.ID, Version: a.Version, Owner: a.Owner, Label: a.Label, Attrs: enc,
		Sealed: sealed, Created: storage.FromMicros(a.Created)}, nil
}

// openObject checks and opens one stored version. Any inconsistency is
// ErrCorrupt naming the object; a wrong key is never returned.
func openObject(st *unsealed, o storage.HSMObject) (*keyVersion, attrs, error) {
	var a attrs
	corrupt := func(why string) error { return errf(ErrCorrupt, "key %s version %d: %s", o.ID, o.Version, why) }
	dec := json.NewDecoder(bytes.NewReader(o.Attrs))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return nil, a, corrupt("attributes are unreadable")
	}
	if a.ID != o.ID || a.Version != o.Version || a.Owner != o.Owner || a.Label != o.Label {
		return nil, a, corrupt("row does not match its sealed attributes")
	}
	ns := st.aead.NonceSize()
	if len(o.Sealed) < ns+st.aead.Overhead() {
		return nil, a, corrupt("sealed blob is truncated")
	}
	material, err := st.aead.Open(nil, o.Sealed[:ns], o.Sealed[ns:], objectAAD(o.ID, o.Version, o.Attrs))
	if err != nil {
		return nil, a, corrupt("seal does not open (blob or attributes were altered)")
	}
	defer clear(material)
	h, err := newSoftKey(a.Type, material)
	if err != nil {
		return nil, a, corrupt("opened material is not a valid " + string(a.Type) + " key")
	}
	kv := &keyVersion{version: o.Version, created: storage.FromMicros(a.Created), h: h}
	kv.stored.Store(o.Uses)
	return kv, a, nil
}

// keyObject is every version of one key plus its current attributes. It is
// immutable once published in the cache; changes publish a new one.
type keyObject struct {
	id        string
	a         attrs         // attributes of the current (last) version
	head      []byte        // the current version's stored attribute encoding, which a change requires unchanged
	versions  []*keyVersion // ascending
	destroyed atomic.Bool
}

// keyVersion is one opened version. pending counts uses not yet summarised.
type keyVersion struct {
	version int
	created time.Time
	h       keyHandle
	stored  atomic.Uint64 // persisted uses (loaded, plus summaries written since)
	pending atomic.Uint64
}

func (ko *keyObject) current() *keyVersion { return ko.versions[len(ko.versions)-1] }

func (ko *keyObject) version(v int) *keyVersion {
	if v == 0 {
		return ko.current()
	}
	for _, kv := range ko.versions {
		if kv.version == v {
			return kv
		}
	}
	return nil
}

func (ko *keyObject) destroy() {
	ko.destroyed.Store(true)
	for _, kv := range ko.versions {
		kv.h.destroy()
	}
}

// visibleTo reports whether user may use the key.
func (ko *keyObject) visibleTo(user string) bool {
	return ko.a.Owner == user || slices.Contains(ko.a.SharedWith, user)
}

func (ko *keyObject) info() KeyInfo {
	var uses uint64
	for _, kv := range ko.versions {
		uses += kv.stored.Load() + kv.pending.Load()
	}
	cur := ko.current()
	return KeyInfo{ID: ko.id, Label: ko.a.Label, Type: ko.a.Type, Usage: ko.a.Usage, Extractable: ko.a.Extractable,
		Owner: ko.a.Owner, SharedWith: slices.Clone(ko.a.SharedWith), Version: cur.version,
		Versions: len(ko.versions), Created: storage.FromMicros(ko.a.Created), Uses: uses, PublicKey: cur.h.public()}
}

// loadKey returns the opened key from the cache, or reads and opens every
// version from the store.
func (m *Module) loadKey(ctx context.Context, st *unsealed, id string) (*keyObject, error) {
	if v, ok := st.keys.Load(id); ok {
		return v.(*keyObject), nil
	}
	ko, err := m.openKey(ctx, st, id)
	switch {
	case err == nil: // intact again
		m.damaged.drop(id)
	case errors.Is(err, ErrNotFound): // destroyed, or missing
		m.damaged.gone(id)
	case errors.Is(err, ErrCorrupt):
		m.damaged.note(id)
	}
	return ko, err
}

// openKey is loadKey for a key not cached.
func (m *Module) openKey(ctx context.Context, st *unsealed, id string) (*keyObject, error) {
	if err, ok := st.wentBack.Load(id); ok {
		return nil, err.(error)
	}
	history, err := m.keyHistory(ctx, id) // before the rows: see checkHistory
	if err != nil {
		return nil, err
	}
	rows, err := m.store.HSMObject(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return nil, errf(ErrNotFound, "key %q", id)
		}
		return nil, fmt.Errorf("reading key %s: %w", id, err)
	}
	ko, err := openRows(st, rows)
	if err != nil {
		return nil, err
	}
	if err := st.checkKeyHistory(ko, history); err != nil {
		ko.destroy()
		return nil, err
	}
	if prev, loaded := st.keys.LoadOrStore(id, ko); loaded {
		ko.destroy()
		return prev.(*keyObject), nil
	}
	return ko, nil
}

func openRows(st *unsealed, rows []storage.HSMObject) (*keyObject, error) {
	ko := &keyObject{id: rows[0].ID}
	for _, r := range rows {
		kv, a, err := openObject(st, r)
		if err != nil {
			ko.destroy()
			return nil, err
		}
		ko.versions = append(ko.versions, kv)
		ko.a, ko.head = a, r.Attrs
	}
	return ko, nil
}

// refreshKey returns cached if the store still holds exactly that (same
// last version, same attributes); otherwise another node rotated, changed or
// destroyed the key since this node cached it, and refreshKey opens every
// stored version and publishes the result in cached's place. A version the
// cache holds with the same key keeps its cached handle, so signers already
// handed out keep counting uses; otherwise the stored version is the truth.
// A key destroyed elsewhere is destroyed here too.
func (m *Module) refreshKey(ctx context.Context, st *unsealed, cached *keyObject) (*keyObject, error) {
	history, err := m.keyHistory(ctx, cached.id) // before the rows: see checkHistory
	if err != nil {
		return nil, err
	}
	rows, err := m.store.HSMObject(ctx, cached.id)
	if isNotFound(err) {
		if old := forgetKey(st, cached.id); old != nil {
			old.destroy()
		}
		return nil, errf(ErrNotFound, "key %q", cached.id)
	}
	if err != nil {
		return nil, fmt.Errorf("reading key %s: %w", cached.id, err)
	}
	if last := rows[len(rows)-1]; last.Version == cached.current().version && bytes.Equal(last.Attrs, cached.head) {
		return cached, nil
	}
	// A stored key that no longer opens, or that went back (a version
	// removed, rows put back), is not followed: the cached key is
	// forgotten and every use refused, as on a node that opens it afresh.
	// Versions only ever grow, so a store that ends below the cached
	// version went back, whatever the audit log now says.
	ko, err := openRows(st, rows)
	if err == nil {
		if last := ko.current().version; last < cached.current().version {
			err = errf(ErrCorrupt, "key %s: the store ends at version %d, below version %d this node holds: versions were removed outside the HSM",
				cached.id, last, cached.current().version)
			st.wentBack.Store(cached.id, err)
		} else {
			err = st.checkKeyHistory(ko, history)
		}
		if err != nil {
			ko.destroy()
		}
	}
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			m.damaged.note(cached.id)
			if old := forgetKey(st, cached.id); old != nil {
				old.destroy()
			}
		}
		return nil, err
	}
	for i, kv := range ko.versions {
		ov := cached.version(kv.version)
		if ov == nil {
			continue
		}
		if !sameKey(ov.h, kv.h) {
			m.log.Warn("hsm: cached key version differs from the stored one; using the stored one", "key", cached.id, "version", kv.version)
			continue
		}
		kv.h.destroy()
		ko.versions[i] = ov
	}
	replaceKey(st, ko)
	return ko, nil
}

// sameKey reports whether two handles hold the same key: equal public keys,
// or equal secrets for symmetric keys.
func sameKey(a, b keyHandle) bool {
	if pa := a.public(); pa != nil {
		e, ok := pa.(interface{ Equal(crypto.PublicKey) bool })
		return ok && e.Equal(b.public())
	}
	ma, errA := a.material()
	mb, errB := b.material()
	defer clear(ma)
	defer clear(mb)
	return errA == nil && errB == nil && subtle.ConstantTimeCompare(ma, mb) == 1
}

// replaceKey publishes a new object for id after a change, carrying over
// counts not yet summarised, and forgets the old one. The old handles are
// not destroyed: in-flight operations may still use them.
func replaceKey(st *unsealed, ko *keyObject) {
	if old, ok := st.keys.Swap(ko.id, ko); ok {
		carryPending(old.(*keyObject), ko)
	}
}

func forgetKey(st *unsealed, id string) *keyObject {
	if old, ok := st.keys.LoadAndDelete(id); ok {
		return old.(*keyObject)
	}
	return nil
}

func carryPending(from, to *keyObject) {
	for _, kv := range from.versions {
		if n := kv.pending.Swap(0); n > 0 {
			if nv := to.version(kv.version); nv != nil {
				nv.pending.Add(n)
			}
		}
	}
}

// newKeyID returns a random 128-bit id as lowercase hex.
func newKeyID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", b), nil
}
