package storage

import (
	"context"
	"fmt"

	"github.com/strongroom-pki/strongroom/core"
)

// HSMSnapshot is the whole HSM keystore as one consistent read: what a
// backup carries and what a restore writes back. Objects carry their sealed
// blobs and attributes exactly as stored; nothing in it is a plaintext
// secret.
type HSMSnapshot struct {
	Meta     map[string][]byte
	Users    []HSMUser
	Objects  []HSMObject
	Audit    []HSMAuditEntry
	HeadSeq  int64
	HeadHash []byte
	HeadAuth HSMAuditAuth
}

// SnapshotHSM appends the audit entry audit builds (when not nil) and reads
// every keystore table in the same transaction. Appending first takes the
// audit head's lock, which every keystore write also takes, so the snapshot
// is consistent on PostgreSQL as well as SQLite, and it includes its own
// entry.
func (d *DB) SnapshotHSM(ctx context.Context, audit func(prevSeq int64, prevHash []byte) HSMAuditEntry, auth HSMAuditAuthFunc) (HSMSnapshot, error) {
	var s HSMSnapshot
	err := d.InTx(ctx, func(tx *Tx) error {
		if audit != nil {
			if err := appendHSMAudit(ctx, tx, audit, auth); err != nil {
				return err
			}
		}
		var err error
		if s.Meta, err = hsmMeta(ctx, tx); err != nil {
			return err
		}
		if s.Users, err = hsmUsers(ctx, tx); err != nil {
			return err
		}
		if s.Objects, err = hsmObjects(ctx, tx, `SELECT `+hsmObjectRead+` FROM hsm_objects ORDER BY id, version`); err != nil {
			return err
		}
		if s.Audit, err = hsmAudit(ctx, tx, 0, 0); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT seq, hash, mac_from, mac_seq, mac FROM hsm_audit_head WHERE id = 1`).
			Scan(&s.HeadSeq, &s.HeadHash, &s.HeadAuth.From, &s.HeadAuth.Seq, &s.HeadAuth.MAC); err != nil {
			return fmt.Errorf("reading hsm audit head: %w", err)
		}
		return nil
	})
	return s, err
}

// ErrHSMNotEmpty is returned by RestoreHSM when the keystore already holds
// anything.
var ErrHSMNotEmpty = core.Errorf(core.KindConflict, "hsm keystore is not empty")

// RestoreHSM writes s into an empty keystore in one transaction — meta,
// users, objects (with their use counts), the audit entries verbatim and
// the head — then appends the entry audit builds (when not nil) after them,
// authenticated by auth (nil: not authenticated).
// If the keystore holds any meta, user, object or audit entry it fails with
// ErrHSMNotEmpty and writes nothing.
func (d *DB) RestoreHSM(ctx context.Context, s HSMSnapshot, audit func(prevSeq int64, prevHash []byte) HSMAuditEntry, auth HSMAuditAuthFunc) error {
	return d.InTx(ctx, func(tx *Tx) error {
		// Lock the head row first so a concurrent initialisation serialises.
		var headSeq int64
		var h []byte
		if err := tx.QueryRow(ctx, `UPDATE hsm_audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash`).Scan(&headSeq, &h); err != nil {
			return fmt.Errorf("locking hsm audit head: %w", err)
		}
		var n int
		err := tx.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM hsm_meta) + (SELECT COUNT(*) FROM hsm_users)
			+ (SELECT COUNT(*) FROM hsm_objects) + (SELECT COUNT(*) FROM hsm_audit)`).Scan(&n)
		if err != nil {
			return fmt.Errorf("checking hsm keystore is empty: %w", err)
		}
		if n > 0 || headSeq != 0 {
			return ErrHSMNotEmpty
		}
		for k, v := range s.Meta {
			if _, err := tx.Exec(ctx, `INSERT INTO hsm_meta (name, value) VALUES (?, ?)`, k, v); err != nil {
				return fmt.Errorf("restoring hsm meta: %w", err)
			}
		}
		for _, u := range s.Users {
			// With their MACs: a restore needs the same KEK, so they
			// verify as before.
			if _, err := insertHSMUser(ctx, tx, u, ""); err != nil {
				return fmt.Errorf("restoring hsm user: %w", err)
			}
		}
		for _, o := range s.Objects {
			if _, err := tx.Exec(ctx, `INSERT INTO hsm_objects (`+hsmObjectCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				o.ID, o.Version, o.Owner, o.Label, o.Attrs, o.Sealed, Micros(o.Created), int64(o.Uses)); err != nil {
				return fmt.Errorf("restoring hsm object: %w", err)
			}
		}
		for _, e := range s.Audit {
			if err := insertHSMAudit(ctx, tx, e); err != nil {
				return fmt.Errorf("restoring hsm audit entry %d: %w", e.Seq, err)
			}
		}
		// The entries keep their MACs and the head its authentication:
		// a restore needs the same KEK, so they verify as before.
		if _, err := tx.Exec(ctx, `UPDATE hsm_audit_head SET seq = ?, hash = ?, mac_from = ?, mac_seq = ?, mac = ? WHERE id = 1`,
			s.HeadSeq, notNull(s.HeadHash), s.HeadAuth.From, s.HeadAuth.Seq, notNull(s.HeadAuth.MAC)); err != nil {
			return fmt.Errorf("restoring hsm audit head: %w", err)
		}
		if audit != nil {
			return appendHSMAudit(ctx, tx, audit, auth)
		}
		return nil
	})
}
