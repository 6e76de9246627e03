package hsm

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/strongroom-pki/strongroom/storage"
)

// useKey returns a key the session may use for need. Only crypto users use
// keys; a key the user neither owns nor shares is reported as not found.
func (s *Session) useKey(ctx context.Context, id string, need Usage) (*keyObject, error) {
	st, err := s.live()
	if err != nil {
		return nil, err
	}
	if s.role != RoleUser {
		return nil, errf(ErrForbidden, "only crypto users use keys (%s %q)", s.role, s.user)
	}
	ko, err := s.m.loadKey(ctx, st, id)
	if err != nil {
		return nil, err
	}
	if !ko.visibleTo(s.user) {
		return nil, errf(ErrNotFound, "key %q", id)
	}
	if ko.a.Usage&need != need {
		return nil, errf(ErrForbidden, "key %s does not permit %s", id, need)
	}
	return ko, nil
}

// manageKey returns a key the session may manage: its owner always; an
// officer too when officerToo (metadata and destroy only).
func (s *Session) manageKey(ctx context.Context, id string, officerToo bool) (*unsealed, *keyObject, error) {
	st, err := s.live()
	if err != nil {
		return nil, nil, err
	}
	if s.role == RoleAuditor || (s.role == RoleOfficer && !officerToo) {
		return nil, nil, errf(ErrForbidden, "%s %q may not do this to keys", s.role, s.user)
	}
	ko, err := s.m.loadKey(ctx, st, id)
	if err != nil {
		return nil, nil, err
	}
	if s.role == RoleOfficer {
		return st, ko, nil
	}
	if !ko.visibleTo(s.user) {
		return nil, nil, errf(ErrNotFound, "key %q", id)
	}
	if ko.a.Owner != s.user {
		return nil, nil, errf(ErrForbidden, "key %s is shared with %q, not owned", id, s.user)
	}
	return st, ko, nil
}

func (s *Session) checkSpec(ctx context.Context, spec *KeySpec) error {
	if !slices.Contains(KeyTypes(), spec.Type) {
		return errf(ErrInvalid, "unknown key type %q", spec.Type)
	}
	if spec.Usage == 0 {
		spec.Usage = defaultUsage(spec.Type)
	}
	if extra := spec.Usage &^ allowedUsage(spec.Type); extra != 0 {
		return errf(ErrInvalid, "a %s key cannot be used to %s", spec.Type, extra)
	}
	// Key separation (PKCS #11 guidance after Clulow's wrap-then-decrypt
	// attack): RSA-AES key wrap begins with plain RSA-OAEP, so one RSA key
	// that both wraps and decrypts is a decryption oracle for the heads of
	// its own blobs. Here that would not cross a boundary — an extractable
	// key may leave, wrapped to any RSA key its owner holds, so its owner
	// can read it anyway; a non-extractable key never leaves — but keeping
	// each RSA key to one job keeps it that way if export ever gets
	// narrower. An RSA wrapping key wraps and unwraps, nothing else, and
	// stays in the module.
	const wrapping = UsageWrap | UsageUnwrap
	if spec.Type.isRSA() && spec.Usage&wrapping != 0 && spec.Usage&^wrapping != 0 {
		return errf(ErrInvalid, "an RSA key that wraps or unwraps may not also %s (key separation)", spec.Usage&^wrapping)
	}
	if spec.Type.isRSA() && spec.Usage&wrapping != 0 && spec.Extractable {
		return errf(ErrInvalid, "an RSA key that wraps or unwraps cannot be extractable (key separation)")
	}
	if spec.Version < 0 || spec.Version > math.MaxInt32 {
		return errf(ErrInvalid, "a key's first version must be 1 to %d", math.MaxInt32)
	}
	if len(spec.Label) > 128 || strings.ContainsAny(spec.Label, "\x00\n\r") {
		return errf(ErrInvalid, "label must be at most 128 characters on one line")
	}
	for _, u := range spec.SharedWith {
		if err := s.checkShareTarget(ctx, u); err != nil {
			return err
		}
	}
	// A label already taken is refused by create's write
	// (RequireFreeLabels): one indexed query, not a read of every object.
	return nil
}

func (s *Session) checkShareTarget(ctx context.Context, name string) error {
	if name == s.user {
		return errf(ErrInvalid, "a key is not shared with its owner")
	}
	u, err := s.m.store.HSMUser(ctx, name)
	if err != nil {
		if isNotFound(err) {
			return errf(ErrNotFound, "user %q", name)
		}
		return err
	}
	if Role(u.Role) != RoleUser {
		return errf(ErrInvalid, "keys are shared only with crypto users; %q is %s", name, u.Role)
	}
	return nil
}

// GenerateKey creates a key owned by the session's crypto user; key pairs
// pass a pairwise consistency test before they are stored.
func (s *Session) GenerateKey(ctx context.Context, spec KeySpec) (KeyInfo, error) {
	if err := s.require(RoleUser); err != nil {
		return KeyInfo{}, fmt.Errorf("generating key: %w", err)
	}
	material, err := generateMaterial(spec.Type)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("generating key: %w", err)
	}
	defer clear(material)
	return s.create(ctx, spec, material, "key.generate", "")
}

// ImportKey stores key (a *rsa.PrivateKey, *ecdsa.PrivateKey,
// ed25519.PrivateKey, PKCS#8 DER bytes, or the raw secret of a symmetric
// type) as a new key owned by the session's crypto user.
func (s *Session) ImportKey(ctx context.Context, spec KeySpec, key any) (KeyInfo, error) {
	if err := s.require(RoleUser); err != nil {
		return KeyInfo{}, fmt.Errorf("importing key: %w", err)
	}
	material, err := materialOf(spec.Type, key)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("importing key: %w", err)
	}
	defer clear(material)
	return s.create(ctx, spec, material, "key.import", "")
}

// ImportWrapped unwraps blob (AES-KW/KWP of PKCS#8 DER or a raw secret) with
// the wrapping key's current version and stores the result as a new key.
// When it does not open the blob, another node may have rotated the
// wrapping key since this node cached it: the key is read again and its
// current version, if newer, is tried (stale.go).
func (s *Session) ImportWrapped(ctx context.Context, spec KeySpec, wrappingKeyID string, blob []byte) (KeyInfo, error) {
	if !slices.Contains(KeyTypes(), spec.Type) { // before the material is judged against it
		return KeyInfo{}, errf(ErrInvalid, "unknown key type %q", spec.Type)
	}
	wk, err := s.useKey(ctx, wrappingKeyID, UsageUnwrap)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("importing wrapped key: %w", err)
	}
	// The blob may have been wrapped for any version of the wrapping key
	// (exported before a rotation, or wrapped by a client to a public key
	// it fetched before one), as Unwrap takes: the current version first,
	// then the older ones, then versions another node made since. When none
	// opens it, the current version's error says why.
	cur := wk.current()
	material, err := cur.h.unwrap(blob)
	if err == nil {
		cur.pending.Add(1)
	} else {
		p, ok := unwrapNewestFirst(wk.versions[:len(wk.versions)-1], blob)
		if !ok {
			newer, rerr := s.newerVersions(ctx, wk, UsageUnwrap)
			if rerr != nil {
				return KeyInfo{}, fmt.Errorf("importing wrapped key: %w", rerr)
			}
			p, ok = unwrapNewestFirst(newer, blob)
		}
		if ok {
			material, err = p, nil
		}
	}
	if err != nil {
		return KeyInfo{}, fmt.Errorf("importing wrapped key: %w", err)
	}
	defer clear(material)
	return s.create(ctx, spec, material, "key.import", "wrapped-by="+wrappingKeyID)
}

// checkRSAExponent refuses an RSA key whose public exponent is even or
// below 65537 (small exponents make unpadded or badly padded RSA
// breakable, and the CA's policy refuses them in CSRs too; found imported
// by a security review). Keys generated here always use 65537; the check
// runs where keys enter, not where stored ones are loaded.
func checkRSAExponent(h *softKey) error {
	if k, ok := h.public().(*rsa.PublicKey); ok && (k.E < 65537 || k.E%2 == 0) {
		return errf(ErrInvalid, "RSA public exponent %d is refused: it must be odd and at least 65537", k.E)
	}
	return nil
}

func (s *Session) create(ctx context.Context, spec KeySpec, material []byte, action, extra string) (KeyInfo, error) {
	st, err := s.live()
	if err != nil {
		return KeyInfo{}, err
	}
	h, err := newSoftKey(spec.Type, material)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("%s: %w", action, err)
	}
	if err := checkRSAExponent(h); err != nil {
		h.destroy()
		return KeyInfo{}, fmt.Errorf("%s: %w", action, err)
	}
	if err := pairwise(spec.Type, h); err != nil {
		h.destroy()
		return KeyInfo{}, fmt.Errorf("%s: %w", action, err)
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if err := s.checkSpec(ctx, &spec); err != nil {
		h.destroy()
		return KeyInfo{}, fmt.Errorf("%s: %w", action, err)
	}
	id, err := newKeyID()
	if err != nil {
		h.destroy()
		return KeyInfo{}, err
	}
	a := attrs{ID: id, Version: max(spec.Version, 1), Type: spec.Type, Label: spec.Label, Usage: spec.Usage, Extractable: spec.Extractable,
		Owner: s.user, SharedWith: spec.SharedWith, Created: storage.Micros(s.m.now())}
	row, err := sealObject(st, a, material)
	if err != nil {
		h.destroy()
		return KeyInfo{}, err
	}
	details := fmt.Sprintf("type=%s label=%q usage=%s extractable=%t shared=%s", a.Type, a.Label, a.Usage, a.Extractable, strings.Join(a.SharedWith, ","))
	if a.Version != 1 {
		details += fmt.Sprintf(" version=%d", a.Version)
	}
	if extra != "" {
		details += " " + extra
	}
	// The label is checked again under the keystore's lock: another node may
	// be creating a key with the same label at the same time.
	// So is the owner: a user deleted by another process must not be left
	// owning a key.
	ch := storage.HSMChange{InsertObjects: []storage.HSMObject{row}, RequireUsers: []string{s.user}}
	if a.Label != "" {
		ch.RequireFreeLabels = []storage.HSMLabel{{Owner: s.user, Label: a.Label}}
	}
	if err := s.m.apply(ctx, ch, s.user, action, id, details); err != nil {
		h.destroy()
		if errors.Is(err, storage.ErrHSMLabelTaken) {
			return KeyInfo{}, errf(ErrExists, "%s: user %q already has a key labelled %q", action, s.user, a.Label)
		}
		if errors.Is(err, storage.ErrHSMUserChanged) {
			return KeyInfo{}, errf(ErrNotLoggedIn, "%s: user %q was deleted after this session began", action, s.user)
		}
		return KeyInfo{}, err
	}
	a.SharedWith = slices.Sorted(slices.Values(a.SharedWith))
	ko := &keyObject{id: id, a: a, head: row.Attrs, versions: []*keyVersion{{version: a.Version, created: row.Created, h: h}}}
	replaceKey(st, ko)
	return ko.info(), nil
}

// storedHead is the stored state a change computed from ko requires: a
// node whose cache is stale must not undo what another node changed.
func (ko *keyObject) storedHead() storage.HSMObjectHead {
	return storage.HSMObjectHead{ID: ko.id, Version: ko.current().version, Attrs: ko.head}
}

// changeKey runs change on the managed key as stored now. Other nodes share
// the keystore, so this node's cache may be stale: the key is read again
// when its stored head differs from the cached one, and when change's write
// still finds the key changed (another node changed it in between), once
// more before change runs a second time, told so by retried.
func (s *Session) changeKey(ctx context.Context, keyID string, change func(st *unsealed, ko *keyObject, retried bool) error) error {
	for retried := false; ; retried = true {
		st, ko, err := s.manageKey(ctx, keyID, false)
		if err != nil {
			return err
		}
		fresh, err := s.m.refreshKey(ctx, st, ko)
		if err != nil {
			return err
		}
		if fresh != ko {
			// The stored attributes decide what this session may do.
			if st, ko, err = s.manageKey(ctx, keyID, false); err != nil {
				return err
			}
		}
		err = change(st, ko, retried)
		if !errors.Is(err, storage.ErrHSMObjectChanged) {
			return err
		}
		if retried {
			return fmt.Errorf("key %s changed again on another node; try again: %w", keyID, storage.ErrHSMObjectChanged)
		}
	}
}

// reseal writes every version of ko under changed attributes (share,
// set-non-extractable) with one audit entry, and publishes the result.
func (s *Session) reseal(ctx context.Context, st *unsealed, ko *keyObject, change func(*attrs), action, details string) error {
	a := ko.a
	a.SharedWith = slices.Clone(a.SharedWith)
	change(&a)
	var rows []storage.HSMObject
	for _, kv := range ko.versions {
		va := a
		va.Version, va.Created = kv.version, storage.Micros(kv.created)
		mat, err := kv.h.material()
		if err != nil {
			return err
		}
		row, err := sealObject(st, va, mat)
		clear(mat)
		if err != nil {
			return err
		}
		rows = append(rows, row)
	}
	// PutObjects replaces rows: the same versions, same material, new
	// attributes; RequireHeads makes sure they are all the versions there are.
	ch := storage.HSMChange{RequireHeads: []storage.HSMObjectHead{ko.storedHead()}, PutObjects: rows}
	if err := s.m.apply(ctx, ch, s.user, action, ko.id, details); err != nil {
		return err
	}
	slices.Sort(a.SharedWith)
	a.Version = ko.current().version
	replaceKey(st, &keyObject{id: ko.id, a: a, head: rows[len(rows)-1].Attrs, versions: ko.versions})
	return nil
}

// SetNonExtractable turns the extractable attribute off; it cannot be turned
// back on.
func (s *Session) SetNonExtractable(ctx context.Context, keyID string) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	err := s.changeKey(ctx, keyID, func(st *unsealed, ko *keyObject, _ bool) error {
		if !ko.a.Extractable {
			return nil
		}
		return s.reseal(ctx, st, ko, func(a *attrs) { a.Extractable = false }, actionNonExtractable, "")
	})
	if err != nil {
		return fmt.Errorf("setting key non-extractable: %w", err)
	}
	return nil
}

// ShareKey lets another crypto user use (not manage) the key.
func (s *Session) ShareKey(ctx context.Context, keyID, withUser string) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	err := s.changeKey(ctx, keyID, func(st *unsealed, ko *keyObject, _ bool) error {
		if err := s.checkShareTarget(ctx, withUser); err != nil {
			return err
		}
		if slices.Contains(ko.a.SharedWith, withUser) {
			return nil
		}
		return s.reseal(ctx, st, ko, func(a *attrs) { a.SharedWith = append(a.SharedWith, withUser) }, "key.share", "with="+withUser)
	})
	if err != nil {
		return fmt.Errorf("sharing key: %w", err)
	}
	return nil
}

// RotateKey adds a new current version with fresh material; older versions
// stay for Verify and Decrypt. The new version is inserted, never written
// over a stored one: if another node rotated (or changed) the key since this
// node cached it, the key is read again and the rotation takes the next
// free version, so no version's material is ever replaced.
func (s *Session) RotateKey(ctx context.Context, keyID string) (KeyInfo, error) {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	var (
		material []byte
		h        keyHandle
		info     KeyInfo
	)
	err := s.changeKey(ctx, keyID, func(st *unsealed, ko *keyObject, retried bool) error {
		if v := ko.current().version; v >= math.MaxInt32 {
			// Versions are stored as 32-bit integers (PostgreSQL int4).
			return errf(ErrExists, "key %s is at the highest version, %d: create a new key instead", keyID, v)
		}
		if h == nil {
			var err error
			if material, err = generateMaterial(ko.a.Type); err != nil {
				return err
			}
			if h, err = newSoftKey(ko.a.Type, material); err == nil {
				err = pairwise(ko.a.Type, h)
			}
			if err != nil {
				return err
			}
		}
		var err error
		info, err = s.rotate(ctx, st, ko, h, material, retried)
		return err
	})
	clear(material)
	if err != nil {
		if h != nil {
			h.destroy()
		}
		return KeyInfo{}, fmt.Errorf("rotating key: %w", err)
	}
	return info, nil
}

// rotate stores material as the version after ko's current one and
// publishes it; the audit entry names the version written and whether it
// was the second attempt after the key was read again.
func (s *Session) rotate(ctx context.Context, st *unsealed, ko *keyObject, h keyHandle, material []byte, retried bool) (KeyInfo, error) {
	prev := ko.current().version
	a := ko.a
	a.Version, a.Created = prev+1, storage.Micros(s.m.now())
	row, err := sealObject(st, a, material)
	if err != nil {
		return KeyInfo{}, err
	}
	details := fmt.Sprintf("version=%d previous=%d", a.Version, prev)
	if retried {
		details += " retried=changed-elsewhere"
	}
	ch := storage.HSMChange{RequireHeads: []storage.HSMObjectHead{ko.storedHead()}, InsertObjects: []storage.HSMObject{row}}
	if err := s.m.apply(ctx, ch, s.user, actionRotate, ko.id, details); err != nil {
		return KeyInfo{}, err
	}
	nko := &keyObject{id: ko.id, a: a, head: row.Attrs,
		versions: append(slices.Clone(ko.versions), &keyVersion{version: a.Version, created: row.Created, h: h})}
	replaceKey(st, nko)
	return nko.info(), nil
}

// DestroyKey deletes every version of the key (its owner, or an officer).
func (s *Session) DestroyKey(ctx context.Context, keyID string) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	st, ko, err := s.manageKey(ctx, keyID, true)
	if err != nil {
		return fmt.Errorf("destroying key: %w", err)
	}
	if err := s.m.apply(ctx, storage.HSMChange{DeleteObjects: []string{keyID}}, s.user, actionDestroy, keyID,
		fmt.Sprintf("type=%s owner=%s", ko.a.Type, ko.a.Owner)); err != nil {
		return fmt.Errorf("destroying key: %w", err)
	}
	if old := forgetKey(st, keyID); old != nil {
		old.destroy()
	}
	return nil
}

// ExportWrapped returns the key's current version wrapped under another
// key of the session's, and that version's number: AES-KW/KWP under an AES
// key, RSA-AES key wrap under an RSA key (rsawrap.go). The material is
// PKCS#8 DER for key pairs, the raw secret for symmetric keys. Only the
// owner may export, and only an extractable key.
func (s *Session) ExportWrapped(ctx context.Context, keyID, wrappingKeyID string) ([]byte, int, error) {
	blob, v, _, err := s.ExportWrappedAlg(ctx, keyID, wrappingKeyID)
	return blob, v, err
}

// ExportWrappedAlg is ExportWrapped, also saying how the key was wrapped:
// WrapRSAAES under an RSA key; under an AES key WrapAESKW (RFC 3394) when
// the material is a multiple of 8 bytes of at least 16 (AES keys, HMAC
// secrets of 32, 40, … 64 bytes, some PKCS#8 keys), else WrapAESKWP (RFC
// 5649). Only the module knows the material's length.
func (s *Session) ExportWrappedAlg(ctx context.Context, keyID, wrappingKeyID string) (blob []byte, version int, alg string, err error) {
	if wrappingKeyID == keyID {
		return nil, 0, "", errf(ErrInvalid, "exporting key: a key cannot wrap itself")
	}
	blob, version, err = s.export(ctx, keyID, "wrapped-by="+wrappingKeyID, func(mat []byte) ([]byte, error) {
		wk, err := s.useKey(ctx, wrappingKeyID, UsageWrap)
		if err != nil {
			return nil, fmt.Errorf("wrapping key: %w", err)
		}
		h := wk.current().h
		blob, err := h.wrap(mat)
		if err == nil {
			wk.current().pending.Add(1)
			alg = kwAlgorithm(len(mat))
			if _, ok := h.public().(*rsa.PublicKey); ok {
				alg = WrapRSAAES
			}
		}
		return blob, err
	})
	if err != nil {
		return nil, 0, "", err
	}
	return blob, version, alg, nil
}

// ExportWrappedTo returns the key's current version wrapped to an RSA
// public key from outside the module (RSA-AES key wrap), for example
// another HSM's or a cloud KMS's import key. Same rules as ExportWrapped.
func (s *Session) ExportWrappedTo(ctx context.Context, keyID string, pub *rsa.PublicKey) ([]byte, int, error) {
	if pub == nil || pub.N == nil || pub.N.BitLen() < 2048 {
		return nil, 0, errf(ErrInvalid, "exporting key: the wrapping key must be RSA with at least 2048 bits")
	}
	fp := sha256.Sum256(x509.MarshalPKCS1PublicKey(pub))
	return s.export(ctx, keyID, fmt.Sprintf("wrapped-to=rsa%d:%x", pub.N.BitLen(), fp[:8]), func(mat []byte) ([]byte, error) {
		return rsaAESWrap(pub, mat)
	})
}

// export checks that the session owns keyID and that it is extractable,
// wraps its current material with wrap and records the export. It returns
// the version it wrapped (a rotation may have added one since the caller
// last looked).
func (s *Session) export(ctx context.Context, keyID, details string, wrap func(material []byte) ([]byte, error)) ([]byte, int, error) {
	_, ko, err := s.manageKey(ctx, keyID, false)
	if err != nil {
		return nil, 0, fmt.Errorf("exporting key: %w", err)
	}
	if !ko.a.Extractable {
		return nil, 0, errf(ErrNotExtractable, "exporting key %s", keyID)
	}
	kv := ko.current()
	mat, err := kv.h.material()
	if err != nil {
		return nil, 0, fmt.Errorf("exporting key: %w", err)
	}
	defer clear(mat)
	blob, err := wrap(mat)
	if err != nil {
		return nil, 0, fmt.Errorf("exporting key: %w", err)
	}
	details += fmt.Sprintf(" version=%d", kv.version)
	if err := s.m.apply(ctx, storage.HSMChange{}, s.user, "key.export", keyID, details); err != nil {
		return nil, 0, fmt.Errorf("exporting key: %w", err)
	}
	return blob, kv.version, nil
}

// GetKey returns a visible key's attributes (an officer sees every key).
func (s *Session) GetKey(ctx context.Context, keyID string) (KeyInfo, error) {
	_, ko, err := s.manageKeyOrUse(ctx, keyID)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("getting key: %w", err)
	}
	return ko.info(), nil
}

// VersionKey is the public key of one version of a key pair.
type VersionKey struct {
	Version   int
	PublicKey crypto.PublicKey
}

// PublicKeys returns the public key of every version of a key pair the
// session may see, oldest first (for a JWKS that still verifies what
// older versions signed). Symmetric keys have none: ErrUnsupported.
func (s *Session) PublicKeys(ctx context.Context, keyID string) ([]VersionKey, error) {
	_, ko, err := s.manageKeyOrUse(ctx, keyID)
	if err != nil {
		return nil, fmt.Errorf("public keys: %w", err)
	}
	var out []VersionKey
	for _, kv := range ko.versions {
		if pub := kv.h.public(); pub != nil {
			out = append(out, VersionKey{Version: kv.version, PublicKey: pub})
		}
	}
	if len(out) == 0 {
		return nil, errf(ErrUnsupported, "public keys: %s keys have none", ko.a.Type)
	}
	return out, nil
}

func (s *Session) manageKeyOrUse(ctx context.Context, keyID string) (*unsealed, *keyObject, error) {
	if s.role == RoleUser {
		ko, err := s.useKey(ctx, keyID, 0)
		return nil, ko, err
	}
	return s.manageKey(ctx, keyID, true)
}

// ListKeys lists the intact keys the session may see; DamagedKeys lists
// the ones that fail to open.
func (s *Session) ListKeys(ctx context.Context) ([]KeyInfo, error) {
	keys, _, err := s.scanKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing keys: %w", err)
	}
	return keys, nil
}

// FindKey returns the visible key with this label; the session's own key
// wins over one shared with it. A damaged key with the label is reported as
// damaged (ErrCorrupt), not as missing.
func (s *Session) FindKey(ctx context.Context, label string) (KeyInfo, error) {
	keys, damaged, err := s.scanKeys(ctx)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("finding key: %w", err)
	}
	var found []KeyInfo
	for _, k := range keys {
		if k.Label == label {
			if k.Owner == s.user {
				return k, nil
			}
			found = append(found, k)
		}
	}
	switch len(found) {
	case 0:
		for _, d := range damaged {
			if d.Label == label {
				return KeyInfo{}, fmt.Errorf("finding key labelled %q: key %s exists but is damaged or fails authentication: %w", label, d.ID, d.err)
			}
		}
		if d, ok, err := s.missingLabelled(ctx, label); err != nil || ok {
			if err == nil {
				err = d.err
			}
			return KeyInfo{}, fmt.Errorf("finding key labelled %q: %w", label, err)
		}
		return KeyInfo{}, errf(ErrNotFound, "finding key labelled %q", label)
	case 1:
		return found[0], nil
	}
	return KeyInfo{}, errf(ErrExists, "finding key: %d keys labelled %q are visible; use an id", len(found), label)
}
