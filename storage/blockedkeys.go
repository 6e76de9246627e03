package storage

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"github.com/strongroom-pki/strongroom/core"
)

// BlockedKey is a key no certificate is issued for again.
type BlockedKey struct {
	Hash []byte // core.KeyHash of its SubjectPublicKeyInfo
	// Serial is the certificate whose keyCompromise revocation blocked
	// it; empty when an operator blocked the key itself.
	Serial core.Serial
	// InvalidityDate is given to the certificates revoked because of it
	// (zero: none).
	InvalidityDate time.Time
	BlockedAt      time.Time
	Comment        string
}

// KeyBlocked reports whether the key with this hash is blocked.
func (d *DB) KeyBlocked(ctx context.Context, hash []byte) (bool, error) {
	return keyBlocked(ctx, d, hash)
}

func keyBlocked(ctx context.Context, q rowQuerier, hash []byte) (bool, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT COUNT(*) FROM blocked_keys WHERE key_hash = ?`, hash).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("checking blocked keys: %w", err)
	}
	return n > 0, nil
}

// BlockKey blocks a key. A key blocked already keeps its first record, and
// BlockKey reports false.
func (d *DB) BlockKey(ctx context.Context, k BlockedKey) (bool, error) {
	return insertBlockedKey(ctx, d, k)
}

func insertBlockedKey(ctx context.Context, x execer, k BlockedKey) (bool, error) {
	if len(k.Hash) != 32 {
		return false, fmt.Errorf("blocking key: a key hash is 32 bytes, not %d", len(k.Hash))
	}
	res, err := x.Exec(ctx, `INSERT INTO blocked_keys (key_hash, serial, invalidity_date, blocked_at, comment)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_hash) DO NOTHING`,
		k.Hash, string(k.Serial), Micros(k.InvalidityDate), Micros(k.BlockedAt), k.Comment)
	if err != nil {
		return false, fmt.Errorf("blocking key: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// UnblockKey removes a key's block (an operator's undo of a mistaken
// block) and reports whether it was blocked. Certificates revoked because
// of it stay revoked: revocation is final.
func (d *DB) UnblockKey(ctx context.Context, hash []byte) (bool, error) {
	res, err := d.Exec(ctx, `DELETE FROM blocked_keys WHERE key_hash = ?`, hash)
	if err != nil {
		return false, fmt.Errorf("unblocking key: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// BlockedKeys lists the blocked keys, oldest first.
func (d *DB) BlockedKeys(ctx context.Context) ([]BlockedKey, error) {
	return queryAll(ctx, d, "listing blocked keys", `SELECT key_hash, serial, invalidity_date, blocked_at, comment
		FROM blocked_keys ORDER BY blocked_at, key_hash`, nil,
		func(r scanner) (BlockedKey, error) {
			var k BlockedKey
			var serial string
			var inv, at int64
			err := r.Scan(&k.Hash, &serial, &inv, &at, &k.Comment)
			k.Serial, k.InvalidityDate, k.BlockedAt = core.Serial(serial), FromMicros(inv), FromMicros(at)
			return k, err
		})
}

// blockKeyOf blocks the key of a certificate just revoked for
// keyCompromise, inside its revocation's transaction.
func blockKeyOf(ctx context.Context, tx *Tx, serial core.Serial, invalidity, at time.Time) error {
	var hash, der []byte
	if err := tx.QueryRow(ctx, `SELECT key_hash, der FROM certificates WHERE serial = ?`, string(serial)).Scan(&hash, &der); err != nil {
		return fmt.Errorf("reading the revoked certificate's key: %w", err)
	}
	if hash == nil { // a row from before key hashes were recorded
		var err error
		if hash, err = keyHashOf(der); err != nil {
			// A stored certificate that does not parse is a damaged row:
			// its revocation must still stand, with no key to block.
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE certificates SET key_hash = ? WHERE serial = ?`, hash, string(serial)); err != nil {
			return fmt.Errorf("recording the key of %s: %w", serial, err)
		}
	}
	_, err := insertBlockedKey(ctx, tx, BlockedKey{Hash: hash, Serial: serial, InvalidityDate: invalidity, BlockedAt: at,
		Comment: "revoked for keyCompromise"})
	return err
}

// CACertificatesWithKey lists the valid CA certificates carrying a key:
// blocking it leaves them valid (see RevokeBlockedKeys).
func (d *DB) CACertificatesWithKey(ctx context.Context, hash []byte) ([]core.Serial, error) {
	ders, err := queryAll(ctx, d, "finding CA certificates with a key", `SELECT serial, der FROM certificates
		WHERE key_hash = ? AND status = ?`, []any{hash, string(core.StatusValid)},
		func(r scanner) (core.Certificate, error) {
			var c core.Certificate
			var serial string
			err := r.Scan(&serial, &c.DER)
			c.Serial = core.Serial(serial)
			return c, err
		})
	var out []core.Serial
	for _, c := range ders {
		if core.IsCA(c.DER) {
			out = append(out, c.Serial)
		}
	}
	return out, err
}

func keyHashOf(der []byte) ([]byte, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing stored certificate: %w", err)
	}
	return core.KeyHash(c.RawSubjectPublicKeyInfo), nil
}

// blockedCertsQuery finds the unexpired certificates of blocked keys not
// yet revoked for keyCompromise. The blocked keys are the outer loop, each
// looked up by certificates_key_hash: SQLite treats the left side of a
// CROSS JOIN as the outer loop, and otherwise chose to walk every valid
// certificate by its status index (a full read every 15 s on every node;
// found by a performance review). PostgreSQL reads the same text as a
// plain join and orders it by its statistics.
const blockedCertsQuery = `SELECT c.serial, c.issuer_id, c.status, c.revoked_at, b.invalidity_date, c.der
	FROM blocked_keys b CROSS JOIN certificates c
	WHERE c.key_hash = b.key_hash AND (c.status = ? OR (c.status = ? AND c.revocation_reason <> ?)) AND c.not_after > ?
	ORDER BY c.serial`

// RevokeBlockedKeys revokes for keyCompromise every unexpired certificate
// whose key is blocked (Boulder's bad-key-revoker), and returns them
// (Serial, IssuerID and the revocation fields set): a valid one is revoked
// dated at, with the invalidity date the key was blocked with; one revoked
// for another reason gets keyCompromise as its reason, its revocation date
// kept (as a keyCompromise revocation may replace an earlier reason). One
// another node changed meanwhile is left as it is and not returned.
//
// It finds a certificate once its key hash is recorded: at its intent, or
// for rows from before key hashes by BackfillKeyHashes. A certificate whose
// intent was recorded just before its key was blocked becomes valid after
// this ran; the next run revokes it, so servers run it periodically.
func (d *DB) RevokeBlockedKeys(ctx context.Context, at time.Time) ([]core.Certificate, error) {
	// Read first: on SQLite an UPDATE takes the write lock even when it
	// matches nothing, and this runs every few seconds on every node.
	found, err := queryAll(ctx, d, "finding certificates with blocked keys", blockedCertsQuery,
		[]any{string(core.StatusValid), string(core.StatusRevoked), int(core.ReasonKeyCompromise), Micros(at)},
		func(r scanner) (core.Certificate, error) {
			var c core.Certificate
			var serial, status string
			var revokedAt, inv int64
			err := r.Scan(&serial, &c.IssuerID, &status, &revokedAt, &inv, &c.DER)
			c.Serial, c.Status, c.RevokedAt, c.InvalidityDate = core.Serial(serial), core.CertStatus(status), FromMicros(revokedAt), FromMicros(inv)
			return c, err
		})
	// A CA certificate is left alone: revoking one stops everything it
	// issued from verifying, an operator's decision (`ca cert revoke
	// --ca`), not a side effect of blocking its key.
	found = slices.DeleteFunc(found, func(c core.Certificate) bool { return core.IsCA(c.DER) })
	if err != nil || len(found) == 0 {
		return nil, err
	}
	var out []core.Certificate
	err = d.InTx(ctx, func(tx *Tx) error {
		out = out[:0]
		for _, c := range found {
			var changed bool
			if c.Status == core.StatusRevoked {
				var err error
				if changed, err = raiseToKeyCompromise(ctx, tx, c.Serial, at, c.InvalidityDate); err != nil {
					return err
				}
			} else {
				res, err := tx.Exec(ctx, `UPDATE certificates SET status = ?, revoked_at = ?, revocation_reason = ?, invalidity_date = ?,
					updated_at = ? WHERE serial = ? AND `+statusIs, string(core.StatusRevoked), Micros(at), int(core.ReasonKeyCompromise),
					Micros(c.InvalidityDate), Micros(at), string(c.Serial), string(core.StatusValid))
				if err != nil {
					return fmt.Errorf("revoking a certificate with a blocked key: %w", err)
				}
				n, _ := res.RowsAffected()
				changed, c.RevokedAt = n == 1, at
			}
			if changed {
				c.Status, c.RevocationReason = core.StatusRevoked, core.ReasonKeyCompromise
				out = append(out, c)
			}
		}
		return nil
	})
	return out, err
}

// backfillBatch is how many rows BackfillKeyHashes reads at a time.
const backfillBatch = 500

// BackfillKeyHashes records the key hash of certificates stored without
// one (before migration 00120, or by a node still on the previous release
// during a rolling upgrade), so RevokeBlockedKeys finds them too. It works
// in batches until none is left and returns how many it filled; nodes
// running it at once only repeat each other's work. A row whose DER does
// not parse gets an empty hash (matching no key) and is counted in
// unparsable, so it is not read again. Servers run it before every sweep:
// with nothing to fill it is one index lookup.
func (d *DB) BackfillKeyHashes(ctx context.Context) (filled, unparsable int, err error) {
	for {
		type row struct {
			serial string
			der    []byte
		}
		rows, err := queryAll(ctx, d, "reading certificates without a key hash", `SELECT serial, der FROM certificates
			WHERE key_hash IS NULL AND der IS NOT NULL LIMIT ?`, []any{backfillBatch},
			func(r scanner) (row, error) {
				var x row
				err := r.Scan(&x.serial, &x.der)
				return x, err
			})
		if err != nil || len(rows) == 0 {
			return filled, unparsable, err
		}
		err = d.InTx(ctx, func(tx *Tx) error {
			for _, x := range rows {
				h, err := keyHashOf(x.der)
				if err != nil {
					h = []byte{}
					unparsable++
				} else {
					filled++
				}
				if _, err := tx.Exec(ctx, `UPDATE certificates SET key_hash = ? WHERE serial = ? AND key_hash IS NULL`, h, x.serial); err != nil {
					return fmt.Errorf("recording key hash: %w", err)
				}
			}
			return nil
		})
		if err != nil {
			return filled, unparsable, err
		}
		if err := ctx.Err(); err != nil {
			return filled, unparsable, err
		}
	}
}
