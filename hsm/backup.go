package hsm

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/strongroom-pki/strongroom/storage"
)

// A backup file is:
//
//	"SRBK" | uint16 format version (1) | uint32 header length | header JSON | body
//
// The header (public: the keystore's meta — unseal method, wrapped KEK, KDF
// parameters, Shamir commitments — plus, for a passphrase backup, the KEK
// wrapped under the backup passphrase) tells how to recover the KEK. The body
// is AES-256-GCM under a key derived from the KEK (HKDF-SHA256), with every
// byte before it as additional data, so any change to the file is refused
// before anything is written. Inside it: users (PIN hashes, roles, lock
// state), every object version sealed and with its attributes exactly as
// stored (so their AAD binding still holds), and the whole audit chain.

const (
	backupMagic       = "SRBK"
	backupVersion     = 1
	backupFormat      = "strongroom-hsm-backup"
	backupKeyInfo     = "strongroom-hsm-backup-v1"
	maxBackupSize     = MaxBackupBytes
	maxBackupHeader   = 1 << 20
	wrapModule        = "module"
	wrapPassphrase    = "passphrase"
	backupPassMethod  = UnsealMethod("backup-passphrase") // AAD of the passphrase wrap
	backupSnapshotVer = 1
)

// BackupOptions chooses who can open a backup.
type BackupOptions struct {
	// Passphrase, when set (at least 8 bytes), wraps the KEK under an
	// Argon2id key from this passphrase instead of the module's own unseal
	// material; Restore then needs it (RestoreInput.BackupPassphrase). The
	// restored module still unseals with its original material, unless it
	// is restored with new material (RestoreRekeyed): only that recovers a
	// module whose key file, token or shares are lost.
	Passphrase []byte
	// Actor names who asked, for the audit entry ("" = the module itself,
	// e.g. the schedule).
	Actor string
}

// RestoreInput is what opens a backup.
type RestoreInput struct {
	// Unseal is the module's unseal material (key file, passphrase or
	// shares) for a backup made without a backup passphrase.
	Unseal UnsealInput
	// BackupPassphrase opens a backup made with BackupOptions.Passphrase.
	BackupPassphrase []byte
	// Actor names who restored, for the audit entry.
	Actor string
}

type backupHeader struct {
	Format  string            `json:"format"`
	Created time.Time         `json:"created"`
	Wrap    string            `json:"wrap"` // "module" or "passphrase"
	Meta    map[string][]byte `json:"meta"` // the keystore's meta, as stored
	// For Wrap "passphrase": the KEK wrapped under Argon2id(passphrase).
	BackupKDF        *passphraseKDF `json:"backup_kdf,omitempty"`
	BackupWrappedKEK []byte         `json:"backup_wrapped_kek,omitempty"`
	// Informational counts (authenticated with the rest).
	Users, Objects, AuditEntries int
	// Unverified names the users whose records did not verify when the
	// backup was taken (altered outside the HSM): they restore, still
	// refused. Omitted when none, so a backup without them stays readable
	// by a release that does not know the field.
	Unverified []string `json:"unverified_users,omitempty"`
}

type backupBody struct {
	Version  int                     `json:"version"`
	Users    []storage.HSMUser       `json:"users"`
	Objects  []storage.HSMObject     `json:"objects"`
	Audit    []storage.HSMAuditEntry `json:"audit"`
	HeadSeq  int64                   `json:"head_seq"`
	HeadHash []byte                  `json:"head_hash"`
	// HeadAuth is the head's authentication (auditmac.go); absent in
	// backups made before it existed.
	HeadAuth storage.HSMAuditAuth `json:"head_auth,omitzero"`
}

// backupStore is what Backup and Restore need beyond Store; *storage.DB has
// it.
type backupStore interface {
	SnapshotHSM(ctx context.Context, audit func(int64, []byte) storage.HSMAuditEntry, auth storage.HSMAuditAuthFunc) (storage.HSMSnapshot, error)
	RestoreHSM(ctx context.Context, s storage.HSMSnapshot, audit func(int64, []byte) storage.HSMAuditEntry, auth storage.HSMAuditAuthFunc) error
}

var _ backupStore = (*storage.DB)(nil)

func (m *Module) backupStore() (backupStore, error) {
	bs, ok := m.store.(backupStore)
	if !ok {
		return nil, errf(ErrUnsupported, "this module's store cannot take or restore backups")
	}
	return bs, nil
}

// Backup writes one backup file to w: every object still sealed, the users,
// the meta, the audit chain (including this backup's own "hsm.backup"
// entry) and the KEK wrapped for the recovery holders. The module must be
// unsealed (the KEK authenticates the file). Pending usage counts are
// flushed first.
func (m *Module) Backup(ctx context.Context, w io.Writer, o BackupOptions) error {
	bs, err := m.backupStore()
	if err != nil {
		return err
	}
	m.mu.Lock() // Seal zeroes the KEK under mu: take a copy first
	st := m.state.Load()
	var kek []byte
	if st != nil {
		kek = bytes.Clone(st.kek)
	}
	m.mu.Unlock()
	if _, err := m.live(); err != nil || st == nil {
		return fmt.Errorf("backup: %w", ErrSealed)
	}
	defer clear(kek)
	h := backupHeader{Format: backupFormat, Created: m.now().UTC().Truncate(time.Microsecond), Wrap: wrapModule}
	if o.Passphrase != nil {
		if len(o.Passphrase) < minPassphrase {
			return errf(ErrInvalid, "backup: the backup passphrase must be at least %d bytes", minPassphrase)
		}
		kdf, err := newPassphraseKDF()
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		wk, err := kdf.derive(o.Passphrase)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		h.BackupWrappedKEK, err = sealKEK(wk, backupPassMethod, kek)
		clear(wk)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		h.Wrap, h.BackupKDF = wrapPassphrase, &kdf
	}
	_ = m.flushUsage(ctx)
	snap, err := bs.SnapshotHSM(ctx, m.auditFunc(o.Actor, "hsm.backup", "", "wrap="+h.Wrap), m.state.Load().auditAuth())
	if err != nil {
		return fmt.Errorf("backup: %w (%w)", ErrAuditFailed, err)
	}
	// A backup that would not restore is worse than none: every object must
	// open under the KEK it travels with, and the audit log's hash chain
	// must hold, as restore requires (an altered log made backups that
	// said "written" and restored never: found by a review).
	if err := checkObjects(kek, UnsealMethod(snap.Meta[metaMethod]), snap.Objects); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if p := chainProblem(snap.Audit, snap.HeadSeq, snap.HeadHash); p != "" {
		return errf(ErrCorrupt, "backup: the HSM audit log was altered outside the HSM (%s), and a backup of it would not restore: nothing was written; `ca hsm audit verify` shows what changed", p)
	}
	h.Meta, h.Users, h.Objects, h.AuditEntries = snap.Meta, len(snap.Users), len(snap.Objects), len(snap.Audit)
	if h.Unverified, err = m.unverifiedUsers(ctx, st, snap.Users); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if len(h.Unverified) > 0 {
		m.log.Warn("hsm backup holds user records altered outside the HSM: they restore still refused; `ca hsm users reset` mends them",
			"users", strings.Join(h.Unverified, ","))
	}
	hdr, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	body, err := json.Marshal(backupBody{Version: backupSnapshotVer, Users: snap.Users, Objects: snap.Objects,
		Audit: snap.Audit, HeadSeq: snap.HeadSeq, HeadHash: snap.HeadHash, HeadAuth: snap.HeadAuth})
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	prefix := binary.BigEndian.AppendUint16([]byte(backupMagic), backupVersion)
	prefix = binary.BigEndian.AppendUint32(prefix, uint32(len(hdr)))
	prefix = append(prefix, hdr...)
	g, err := backupAEAD(kek)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	out := g.Seal(append(prefix, nonce...), nonce, body, prefix)
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("backup: writing: %w", err)
	}
	m.log.Info("hsm backup written", "wrap", h.Wrap, "objects", h.Objects, "users", h.Users, "bytes", len(out))
	return nil
}

// unverifiedUsers names the users in us whose records do not verify under
// st (which must still be the module's state).
func (m *Module) unverifiedUsers(ctx context.Context, st *unsealed, us []storage.HSMUser) ([]string, error) {
	m.mu.Lock() // Seal zeroes the key the rows are checked with under mu
	defer m.mu.Unlock()
	if m.state.Load() != st {
		return nil, ErrSealed
	}
	if err := m.refreshUsersBound(ctx, st); err != nil {
		return nil, err
	}
	var out []string
	for _, u := range us {
		if !st.userVerifies(u) {
			out = append(out, u.Name)
		}
	}
	return out, nil
}

// Restore reads a backup from r and writes it into this module, which must
// be empty (never initialised). The file is checked completely first — its
// authentication tag, every object opening under the recovered KEK, and the
// audit chain — so a damaged or tampered file is refused with nothing
// written. Everything is then written in one transaction followed by a
// "hsm.restore" audit entry. The module is left sealed: unseal it with the
// original unseal material (RestoreRekeyed gives it new material).
func (m *Module) Restore(ctx context.Context, r io.Reader, in RestoreInput) error {
	_, err := m.restore(ctx, r, in, nil)
	return err
}

// RestoreRekeyed is Restore with the restored KEK wrapped under new unseal
// material (to) instead of the backed-up module's, in the same
// transaction: with a backup passphrase, a module whose key file, token or
// shares are lost is recovered. The backup's own material no longer
// unseals the restored module. The restore entry records the change of
// method. A key file for to is removed again if the restore fails.
func (m *Module) RestoreRekeyed(ctx context.Context, r io.Reader, in RestoreInput, to Material) (RekeyResult, error) {
	return m.restore(ctx, r, in, &to)
}

func (m *Module) restore(ctx context.Context, r io.Reader, in RestoreInput, to *Material) (RekeyResult, error) {
	bs, err := m.backupStore()
	if err != nil {
		return RekeyResult{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ok, err := m.Initialized(ctx); err != nil {
		return RekeyResult{}, fmt.Errorf("restore: %w", err)
	} else if ok || m.state.Load() != nil {
		return RekeyResult{}, errf(ErrInitialized, "restore: a backup can only be restored into an empty module; this one is initialised")
	}
	data, err := io.ReadAll(io.LimitReader(r, maxBackupSize+1))
	if err != nil {
		return RekeyResult{}, fmt.Errorf("restore: reading backup: %w", err)
	}
	if len(data) > maxBackupSize {
		return RekeyResult{}, errf(ErrInvalid, "restore: backup is larger than %d bytes", maxBackupSize)
	}
	h, prefix, sealed, err := parseBackup(data)
	if err != nil {
		return RekeyResult{}, fmt.Errorf("restore: %w", err)
	}
	kek, err := backupKEK(h, in)
	if err != nil {
		return RekeyResult{}, fmt.Errorf("restore: %w", err)
	}
	defer clear(kek)
	g, err := backupAEAD(kek)
	if err != nil {
		return RekeyResult{}, fmt.Errorf("restore: %w", err)
	}
	if len(sealed) < g.NonceSize()+g.Overhead() {
		return RekeyResult{}, errf(ErrCorrupt, "restore: backup is truncated; nothing was written")
	}
	plain, err := g.Open(nil, sealed[:g.NonceSize()], sealed[g.NonceSize():], prefix)
	if err != nil {
		return RekeyResult{}, errf(ErrCorrupt, "restore: backup fails its integrity check (damaged or tampered with); nothing was written")
	}
	var b backupBody
	if err := json.Unmarshal(plain, &b); err != nil || b.Version != backupSnapshotVer {
		return RekeyResult{}, errf(ErrCorrupt, "restore: backup contents are unreadable (version %d); nothing was written", b.Version)
	}
	method := UnsealMethod(h.Meta[metaMethod])
	if err := checkObjects(kek, method, b.Objects); err != nil {
		return RekeyResult{}, fmt.Errorf("restore: %w; nothing was written", err)
	}
	for i := range b.Audit {
		if b.Audit[i].PrevHash == nil {
			b.Audit[i].PrevHash = []byte{}
		}
	}
	if p := chainProblem(b.Audit, b.HeadSeq, b.HeadHash); p != "" {
		return RekeyResult{}, errf(ErrCorrupt, "restore: the backup's audit chain does not verify: %s; nothing was written", p)
	}
	snap := storage.HSMSnapshot{Meta: h.Meta, Users: b.Users, Objects: b.Objects, Audit: b.Audit,
		HeadSeq: b.HeadSeq, HeadHash: b.HeadHash, HeadAuth: b.HeadAuth}
	details := fmt.Sprintf("restored from backup created=%s wrap=%s users=%d objects=%d audit_entries=%d",
		h.Created.Format(time.RFC3339), h.Wrap, len(b.Users), len(b.Objects), len(b.Audit))
	auth, err := restoreAuth(kek, method, b.HeadAuth)
	if err != nil {
		return RekeyResult{}, fmt.Errorf("restore: %w", err)
	}
	mat := madeMaterial{undo: func() {}}
	if to != nil {
		if snap.Meta, mat, err = rekeyedMeta(h.Meta, kek, *to); err != nil {
			return RekeyResult{}, err
		}
		details += " rekeyed from=" + string(method) + " to " + mat.details
		if err := mat.deliver(to.Deliver, "restore"); err != nil {
			mat.undo()
			return RekeyResult{}, err
		}
	}
	if err := bs.RestoreHSM(ctx, snap, m.auditFunc(in.Actor, "hsm.restore", "", details), auth); err != nil {
		mat.undo()
		if errors.Is(err, storage.ErrHSMNotEmpty) {
			return RekeyResult{}, errf(ErrInitialized, "restore: a backup can only be restored into an empty module; this one holds data")
		}
		return RekeyResult{}, fmt.Errorf("restore: %w", err)
	}
	m.log.Info("hsm restored from backup", "created", h.Created, "objects", len(b.Objects), "users", len(b.Users))
	return RekeyResult{Shares: mat.shares}, nil
}

// restoreAuth authenticates the restore's own audit entry under the
// backup's KEK (the module's, once restored) when the backup's log is
// authenticated, so the entry verifies like any other instead of being
// listed as one from the previous release. A log not yet authenticated
// (a backup from before audit MACs) is left so: its authentication begins
// at the keystore's first unseal, where the unseal material binds it.
func restoreAuth(kek []byte, method UnsealMethod, head storage.HSMAuditAuth) (storage.HSMAuditAuthFunc, error) {
	if len(head.MAC) == 0 {
		return nil, nil
	}
	st, err := newUnsealed(bytes.Clone(kek), method)
	if err != nil {
		return nil, err
	}
	defer st.zero() // auditAuth keeps its own copy of the MAC key
	setAuditAnchor(st, head.From)
	return st.auditAuth(), nil
}

// parseBackup splits a backup into its header, the authenticated prefix and
// the sealed body.
func parseBackup(data []byte) (backupHeader, []byte, []byte, error) {
	var h backupHeader
	if len(data) < 10 || string(data[:4]) != backupMagic {
		return h, nil, nil, errf(ErrInvalid, "not a Strongroom HSM backup file")
	}
	if v := binary.BigEndian.Uint16(data[4:6]); v != backupVersion {
		return h, nil, nil, errf(ErrInvalid, "backup format version %d is not supported (this build reads version %d)", v, backupVersion)
	}
	n := binary.BigEndian.Uint32(data[6:10])
	if n > maxBackupHeader || int(n) > len(data)-10 {
		return h, nil, nil, errf(ErrCorrupt, "backup header length is out of range (damaged file)")
	}
	prefix := data[:10+n]
	dec := json.NewDecoder(bytes.NewReader(prefix[10:]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil || h.Format != backupFormat {
		return h, nil, nil, errf(ErrCorrupt, "backup header is unreadable (damaged or tampered with)")
	}
	return h, prefix, data[10+n:], nil
}

// backupKEK recovers the KEK from the header with the material in in.
func backupKEK(h backupHeader, in RestoreInput) ([]byte, error) {
	switch h.Wrap {
	case wrapPassphrase:
		if h.BackupKDF == nil || len(h.BackupKDF.Salt) == 0 {
			return nil, errf(ErrCorrupt, "backup passphrase parameters are unreadable")
		}
		if len(in.BackupPassphrase) == 0 {
			return nil, errf(ErrInvalid, "this backup is protected by a backup passphrase; none given")
		}
		wk, err := h.BackupKDF.derive(in.BackupPassphrase)
		if err != nil {
			return nil, fmt.Errorf("the backup is damaged or not a Strongroom backup: %w", err)
		}
		defer clear(wk)
		kek, err := openKEK(wk, backupPassMethod, h.BackupWrappedKEK)
		if err != nil {
			return nil, errf(ErrBadUnseal, "wrong backup passphrase (or the backup's key block is damaged)")
		}
		return kek, nil
	case wrapModule:
		kek, _, err := recoverKEK(h.Meta, in.Unseal)
		if errors.Is(err, errArgonRange) {
			return nil, fmt.Errorf("the backup is damaged or not a Strongroom backup: %w", errArgonRange)
		}
		if errors.Is(err, ErrBadUnseal) {
			return nil, fmt.Errorf("%w (or the backup's key block is damaged)", err)
		}
		return kek, err
	}
	return nil, errf(ErrCorrupt, "backup names an unknown key wrapping %q", h.Wrap)
}

func backupAEAD(kek []byte) (cipher.AEAD, error) {
	key, err := kekSubkey(kek, backupKeyInfo)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	return gcmOf(key)
}

// checkObjects opens every object version under kek and forgets it.
func checkObjects(kek []byte, method UnsealMethod, objs []storage.HSMObject) error {
	st, err := newUnsealed(bytes.Clone(kek), method)
	if err != nil {
		return err
	}
	defer st.zero()
	if d := damagedObjects(st, objs); len(d) > 0 {
		return d[0].err
	}
	return nil
}

// chainProblem checks a list of audit entries as VerifyAudit checks the
// stored log; "" means intact.
func chainProblem(es []storage.HSMAuditEntry, headSeq int64, headHash []byte) string {
	prev := []byte{}
	for i, e := range es {
		switch {
		case e.Seq != int64(i+1):
			return fmt.Sprintf("entry %d is missing", i+1)
		case !bytes.Equal(e.PrevHash, prev):
			return fmt.Sprintf("entry %d does not link to the one before it", e.Seq)
		case !bytes.Equal(auditHash(e), e.Hash):
			return fmt.Sprintf("entry %d does not match its hash", e.Seq)
		}
		prev = e.Hash
	}
	if int64(len(es)) != headSeq || !bytes.Equal(prev, headHash) {
		return fmt.Sprintf("log ends at %d but the head records %d", len(es), headSeq)
	}
	return ""
}

// BackupInfo describes a backup file from its header. It is read before
// the file is authenticated (that needs the KEK): use it to ask for the
// right material, not as proof of anything.
type BackupInfo struct {
	Created time.Time
	// Method is the unseal method of the backed-up module: the material
	// that opens the backup unless PassphraseProtected, and that unseals the
	// module once restored (unless restored with new material,
	// RestoreRekeyed).
	Method UnsealMethod
	// PassphraseProtected: the backup opens with its backup passphrase.
	PassphraseProtected          bool
	Users, Objects, AuditEntries int
	// Unverified names the users whose records did not verify when the
	// backup was taken: they restore, still refused until reset.
	Unverified []string
}

// MaxBackupBytes is the largest backup Restore reads.
const MaxBackupBytes = 1 << 30

// InspectBackup reads a backup file's header.
func InspectBackup(r io.Reader) (BackupInfo, error) {
	head := make([]byte, 10)
	if _, err := io.ReadFull(r, head); err != nil {
		return BackupInfo{}, errf(ErrInvalid, "not a Strongroom HSM backup file (too short)")
	}
	if string(head[:4]) != backupMagic {
		return BackupInfo{}, errf(ErrInvalid, "not a Strongroom HSM backup file")
	}
	n := binary.BigEndian.Uint32(head[6:10])
	if n > maxBackupHeader {
		return BackupInfo{}, errf(ErrCorrupt, "backup header length is out of range (damaged file)")
	}
	rest := make([]byte, n)
	if _, err := io.ReadFull(r, rest); err != nil {
		return BackupInfo{}, errf(ErrCorrupt, "backup is truncated")
	}
	h, _, _, err := parseBackup(append(head, rest...))
	if err != nil {
		return BackupInfo{}, err
	}
	return BackupInfo{Created: h.Created, Method: UnsealMethod(h.Meta[metaMethod]), PassphraseProtected: h.Wrap == wrapPassphrase,
		Users: h.Users, Objects: h.Objects, AuditEntries: h.AuditEntries, Unverified: h.Unverified}, nil
}
