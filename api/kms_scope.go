package api

import (
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/hsm"
)

// Applications share the key service's HSM user, so the service keeps them
// apart itself: a key belongs to the principal that created it (its HSM
// label is "<principal>/<label>"), and another principal's requests for it
// are answered as for a key that does not exist. An admin key sees and may
// use every key, with its full label. (Like a KMS key policy that names
// only the creator.) Since the HSM user alone does not say which principal
// made, rotated, released or destroyed a key, those operations name the
// principal to the HSM, which records it in their audit entries.
//
// One principal's keys are limited in number (Options.KeysPerCredential)
// and in versions (Options.VersionsPerKey), so no application can fill the
// keystore every other one shares. The limits are checked before each
// create or rotation, not in the same write: requests that race may pass
// them by as many as run at once.

// ownedKeys is one principal's view of the key service.
type ownedKeys struct {
	KeyService
	prefix string // "<principal>/"
	all    bool   // admin: every key, labels in full
	who    string // the principal, for the HSM's audit entries

	maxKeys, maxVersions int
}

// hsmLabelMax is the HSM's limit on a label, in bytes (hsm checkSpec).
const hsmLabelMax = 128

// newKey readies spec for a new key of the principal's: it checks the
// label and that the principal has room for another key, gives the label
// its owner prefix and returns the label as the principal gave it. The
// HSM's label limit counts the prefix, so the principal's is what the
// prefix leaves.
func (o ownedKeys) newKey(ctx context.Context, spec *hsm.KeySpec) (string, error) {
	label := spec.Label
	if max := hsmLabelMax - len(o.prefix); len(label) > max || strings.ContainsAny(label, "\x00\r\n") {
		return "", core.Errorf(core.KindMalformed, "label must be at most %d characters (bytes of UTF-8) on one line", max)
	}
	// As an API key's name: a label is shown in listings, the console
	// and the audit log, where a bidirectional override or an invisible
	// character would make it read as another.
	if !utf8.ValidString(label) || strings.ContainsFunc(label, core.Invisible) {
		return "", core.Errorf(core.KindMalformed, "label must be UTF-8 text without control or invisible formatting characters")
	}
	if err := o.roomForKey(ctx); err != nil {
		return "", err
	}
	spec.Label = o.prefix + label
	return label, nil
}

// created answers a create for the principal: its own label, and a taken
// label said in its terms, not the HSM's (its user and the owner prefix).
func (o ownedKeys) created(k hsm.KeyInfo, err error, label string) (hsm.KeyInfo, error) {
	if errors.Is(err, hsm.ErrExists) {
		return hsm.KeyInfo{}, core.Errorf(core.KindConflict, "a key labelled %q already exists", label)
	}
	return o.show(k), err
}

// roomForKey refuses a new key when the principal has its limit of keys.
func (o ownedKeys) roomForKey(ctx context.Context) error {
	n, err := o.KeyService.CountKeys(ctx, o.prefix)
	if err == nil && n >= o.maxKeys {
		err = core.Errorf(core.KindConflict, "this credential already has %d keys, its limit (api.keys_per_credential): destroy one to make another", n)
	}
	return err
}

// audited is ctx naming the principal for the HSM's audit entry.
func (o ownedKeys) audited(ctx context.Context) context.Context { return hsm.WithRequester(ctx, o.who) }

// mine reports whether a key labelled label (in the HSM) is the principal's.
func (o ownedKeys) mine(label string) bool { return o.all || strings.HasPrefix(label, o.prefix) }

// shown is a key's label as its owner sees it: without the owner prefix.
func (o ownedKeys) shown(label string) string {
	if o.all {
		return label
	}
	return strings.TrimPrefix(label, o.prefix)
}

// show strips the owner from a key's label for its owner.
func (o ownedKeys) show(k hsm.KeyInfo) hsm.KeyInfo {
	k.Label = o.shown(k.Label)
	return k
}

// check answers for a key the principal may not use as for a missing one.
func (o ownedKeys) check(ctx context.Context, id string) error {
	_, err := o.GetKey(ctx, id)
	return err
}

func (o ownedKeys) GenerateKey(ctx context.Context, spec hsm.KeySpec) (hsm.KeyInfo, error) {
	label, err := o.newKey(ctx, &spec)
	if err != nil {
		return hsm.KeyInfo{}, err
	}
	k, err := o.KeyService.GenerateKey(o.audited(ctx), spec)
	return o.created(k, err, label)
}

func (o ownedKeys) ListKeys(ctx context.Context) ([]hsm.KeyInfo, error) {
	keys, err := o.KeyService.ListKeys(ctx)
	var out []hsm.KeyInfo
	for _, k := range keys {
		if o.mine(k.Label) {
			out = append(out, o.show(k))
		}
	}
	return out, err
}

// DamagedKeys lists the principal's keys that the HSM refuses as damaged
// (see own).
func (o ownedKeys) DamagedKeys(ctx context.Context) ([]hsm.DamagedKey, error) {
	damaged, err := o.KeyService.DamagedKeys(ctx)
	var out []hsm.DamagedKey
	for _, d := range damaged {
		if d, ok := o.own(d); ok {
			out = append(out, d)
		}
	}
	return out, err
}

// DamagedKey is key id when the HSM refuses it as damaged and it is the
// principal's (see own). It reads that key only: a scan of the keystore
// made another application's damaged id slower to refuse than one that
// does not exist, which told the two apart.
func (o ownedKeys) DamagedKey(ctx context.Context, id string) (hsm.DamagedKey, bool, error) {
	d, ok, err := o.KeyService.DamagedKey(ctx, id)
	if err != nil || !ok {
		return hsm.DamagedKey{}, false, err
	}
	if d, ok = o.own(d); !ok {
		return hsm.DamagedKey{}, false, nil
	}
	return d, true, nil
}

// own reports whether damaged key d is the principal's and labels it for
// the principal, both by the label the HSM's authenticated log says it was
// created with (its row's when the log does not record it): the row's is a
// plain copy that anyone who writes the database can change.
func (o ownedKeys) own(d hsm.DamagedKey) (hsm.DamagedKey, bool) {
	if d.Created.Verified {
		d.Label = d.Created.Label
	}
	if !o.mine(d.Label) {
		return hsm.DamagedKey{}, false
	}
	d.Label = o.shown(d.Label)
	return d, true
}

// GetKey answers a key that is not the caller's exactly as one that does
// not exist, so no answer tells which key ids exist: a damaged one too
// (its owner gets the HSM's ErrCorrupt).
func (o ownedKeys) GetKey(ctx context.Context, id string) (hsm.KeyInfo, error) {
	k, err := o.KeyService.GetKey(ctx, id)
	if errors.Is(err, hsm.ErrCorrupt) {
		_, mine, ferr := o.DamagedKey(ctx, id)
		switch {
		case ferr != nil:
			return hsm.KeyInfo{}, ferr
		case !mine:
			err = hsm.ErrNotFound
		}
	}
	if err == nil && !o.mine(k.Label) || errors.Is(err, hsm.ErrNotFound) {
		return hsm.KeyInfo{}, core.Errorf(core.KindNotFound, "no such key %s", quotedRef(id))
	}
	return o.show(k), err
}

func (o ownedKeys) RotateKey(ctx context.Context, id string) (hsm.KeyInfo, error) {
	k, err := o.GetKey(ctx, id)
	if err != nil {
		return hsm.KeyInfo{}, err
	}
	if k.Versions >= o.maxVersions {
		return hsm.KeyInfo{}, core.Errorf(core.KindConflict, "key %s has %d versions, the limit (api.versions_per_key): create a new key instead", id, k.Versions)
	}
	k, err = o.KeyService.RotateKey(o.audited(ctx), id)
	return o.show(k), err
}

func (o ownedKeys) DestroyKey(ctx context.Context, id string) error {
	if err := o.check(ctx, id); err != nil {
		return err
	}
	return o.KeyService.DestroyKey(o.audited(ctx), id)
}

func (o ownedKeys) SignVersioned(ctx context.Context, id string, digest []byte, opts crypto.SignerOpts) ([]byte, int, error) {
	if err := o.check(ctx, id); err != nil {
		return nil, 0, err
	}
	return o.KeyService.SignVersioned(ctx, id, digest, opts)
}

func (o ownedKeys) Verify(ctx context.Context, id string, version int, digest, sig []byte, opts crypto.SignerOpts) error {
	if err := o.check(ctx, id); err != nil {
		return err
	}
	return o.KeyService.Verify(ctx, id, version, digest, sig, opts)
}

func (o ownedKeys) Encrypt(ctx context.Context, id string, plaintext, aad []byte) ([]byte, error) {
	if err := o.check(ctx, id); err != nil {
		return nil, err
	}
	return o.KeyService.Encrypt(ctx, id, plaintext, aad)
}

func (o ownedKeys) DecryptVersion(ctx context.Context, id string, version int, ciphertext, aad []byte) ([]byte, error) {
	if err := o.check(ctx, id); err != nil {
		return nil, err
	}
	return o.KeyService.DecryptVersion(ctx, id, version, ciphertext, aad)
}

func (o ownedKeys) HMACVersioned(ctx context.Context, id string, data []byte) ([]byte, int, error) {
	if err := o.check(ctx, id); err != nil {
		return nil, 0, err
	}
	return o.KeyService.HMACVersioned(ctx, id, data)
}

func (o ownedKeys) VerifyHMAC(ctx context.Context, id string, data, mac []byte) error {
	if err := o.check(ctx, id); err != nil {
		return err
	}
	return o.KeyService.VerifyHMAC(ctx, id, data, mac)
}

func (o ownedKeys) GenerateDataKey(ctx context.Context, id string, bits int) ([]byte, []byte, error) {
	if err := o.check(ctx, id); err != nil {
		return nil, nil, err
	}
	return o.KeyService.GenerateDataKey(ctx, id, bits)
}

func (o ownedKeys) DecryptDataKey(ctx context.Context, id string, wrapped []byte) ([]byte, error) {
	if err := o.check(ctx, id); err != nil {
		return nil, err
	}
	return o.KeyService.DecryptDataKey(ctx, id, wrapped)
}

func (o ownedKeys) PublicKeys(ctx context.Context, id string) ([]hsm.VersionKey, error) {
	if err := o.check(ctx, id); err != nil {
		return nil, err
	}
	return o.KeyService.PublicKeys(ctx, id)
}

func (o ownedKeys) ImportWrapped(ctx context.Context, spec hsm.KeySpec, wrappingKeyID string, blob []byte) (hsm.KeyInfo, error) {
	if err := o.check(ctx, wrappingKeyID); err != nil {
		return hsm.KeyInfo{}, err
	}
	label, err := o.newKey(ctx, &spec)
	if err != nil {
		return hsm.KeyInfo{}, err
	}
	k, err := o.KeyService.ImportWrapped(o.audited(ctx), spec, wrappingKeyID, blob)
	return o.created(k, err, label)
}

func (o ownedKeys) ExportWrappedAlg(ctx context.Context, id, wrappingKeyID string) ([]byte, int, string, error) {
	for _, k := range []string{id, wrappingKeyID} {
		if err := o.check(ctx, k); err != nil {
			return nil, 0, "", err
		}
	}
	return o.KeyService.ExportWrappedAlg(o.audited(ctx), id, wrappingKeyID)
}

func (o ownedKeys) ExportWrappedTo(ctx context.Context, id string, pub *rsa.PublicKey) ([]byte, int, error) {
	if err := o.check(ctx, id); err != nil {
		return nil, 0, err
	}
	return o.KeyService.ExportWrappedTo(o.audited(ctx), id, pub)
}
