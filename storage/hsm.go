package storage

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/strongroom-pki/strongroom/core"
)

// The HSM keystore (package hsm declares the interface these methods
// satisfy). storage sees sealed blobs, PIN hashes and wrapped keys only.

// HSMUser is one HSM user: a role, an Argon2id PIN hash (an encoded string
// with its own parameters and salt) and the failed-login state.
type HSMUser struct {
	Name     string
	Role     string
	PINHash  string
	Failures int
	Locked   bool
	Created  time.Time
	// MAC authenticates Name, Role, PINHash and Created under a key only
	// an unsealed HSM has; empty for a row written before user rows were
	// authenticated, or by a node of the previous release.
	MAC []byte `json:",omitempty"`
}

// HSMObject is one version of a key object. Attrs is the canonical attribute
// encoding the HSM binds into Sealed's additional data; Owner and Label are
// copies kept for lookups. Uses is the persisted use count (summaries add to
// it); it is not part of the seal.
type HSMObject struct {
	ID      string
	Version int
	Owner   string
	Label   string
	Attrs   []byte
	Sealed  []byte
	Created time.Time
	Uses    uint64
}

// HSMAuditEntry is one link of the hash chain.
type HSMAuditEntry struct {
	Seq      int64
	At       time.Time
	Actor    string
	Action   string
	Object   string
	Details  string
	PrevHash []byte
	Hash     []byte
	// MAC authenticates Hash under a key only an unsealed HSM has; empty
	// for an entry appended while sealed or before authentication began.
	MAC []byte
}

// HSMUse adds N uses to one key version.
type HSMUse struct {
	ID      string
	Version int
	N       uint64
}

// ErrHSMObjectChanged is the KindConflict error (wrapped with the object it
// names) of a change computed from an object version that is no longer the
// stored one: another node rotated, re-attributed or destroyed the object, or
// stored the version being inserted. The caller re-reads the object.
var ErrHSMObjectChanged = &core.Error{Kind: core.KindConflict, Detail: "hsm object changed in the keystore"}

// ErrHSMLabelTaken is the KindConflict error (wrapped with the label) of a
// change that creates an object under a label its owner already uses.
var ErrHSMLabelTaken = &core.Error{Kind: core.KindConflict, Detail: "hsm object label already in use"}

// ErrHSMUserChanged is the KindConflict error (wrapped with the user it
// names) of a change whose RequireUsers or RequireNoOwned no longer hold:
// another node deleted the user, or gave it a key, meanwhile.
var ErrHSMUserChanged = &core.Error{Kind: core.KindConflict, Detail: "hsm user changed in the keystore"}

// ErrHSMAuditDamaged is the error of reading an audit log that cannot be
// read as the HSM writes it: the head row deleted, or a value of the wrong
// type in a row. Only an edit outside the HSM does that; `ca hsm audit
// verify` reports it as tampering.
var ErrHSMAuditDamaged = &core.Error{Kind: core.KindInternal, Detail: "hsm audit log is damaged"}

// HSMObjectHead is the stored state a change to an object was computed
// from: its highest version and that version's attribute encoding.
type HSMObjectHead struct {
	ID      string
	Version int
	Attrs   []byte
}

// HSMLabel is an owner's object label.
type HSMLabel struct {
	Owner, Label string
}

// HSMChange is a set of keystore writes applied atomically together with
// one audit entry: if any part fails, nothing is written. A change with an
// audit entry takes the audit head's lock before anything else, so changes
// from several nodes serialise and the Require checks see every change
// committed before them.
type HSMChange struct {
	// RequireNoMeta makes the change fail with a core KindConflict error when
	// a meta record of that name already exists (first initialisation).
	RequireNoMeta string
	// RequireMeta makes the change fail with a core KindConflict error
	// unless each meta record holds exactly that value (a record replaced
	// only if it is still the one read).
	RequireMeta map[string][]byte
	// RequireHeads makes the change fail with ErrHSMObjectChanged unless
	// each object's highest stored version is Version with exactly Attrs.
	RequireHeads []HSMObjectHead
	// RequireFreeLabels makes the change fail with ErrHSMLabelTaken when the
	// owner already has an object with that label.
	RequireFreeLabels []HSMLabel
	// RequireUsers makes the change fail with ErrHSMUserChanged unless
	// each user exists (the owner of a key being created).
	RequireUsers []string
	// RequireNoOwned makes the change fail with ErrHSMUserChanged when one
	// of these users owns an object (a user being deleted).
	RequireNoOwned []string
	Meta           map[string][]byte
	// DeleteMeta removes these meta records (those a changed unseal
	// method no longer uses); deleting one that does not exist is no error.
	DeleteMeta []string
	// NewUsers inserts users that must not exist yet: a stored name makes
	// the change fail with ErrHSMUserChanged, so two processes creating
	// the same user at once cannot both succeed, the second replacing the
	// first's PIN and role. Changes to a stored user go through PINCheck,
	// SetPIN, UnlockUsers, ResetUser and AddUserMACs, each one conditional statement
	// (a row computed from an earlier read would undo what another process
	// wrote meanwhile: a failure counted, a lockout, a new PIN).
	NewUsers    []HSMUser
	DeleteUsers []string
	// PINCheck, if set, records a PIN check (see HSMPINCheck); ApplyHSM
	// fills in its outcome before it builds the audit entry.
	PINCheck *HSMPINCheck
	// SetPIN, if set, replaces a user's PIN hash (see HSMPINChange).
	SetPIN *HSMPINChange
	// UnlockUsers clears the lockout and failure count of these users; a
	// user that does not exist makes the change fail with
	// ErrHSMUserChanged.
	UnlockUsers []string
	// ResetUser, if set, replaces the role, PIN hash and MAC of the user of
	// that Name and Created, and clears its lockout and failure count; a
	// user of that name created at another time, or none, makes the change
	// fail with ErrHSMUserChanged.
	ResetUser *HSMUser
	// AddUserMACs stores each user's MAC in the row of that name that has
	// none yet and still has this Role, PINHash and Created; a row that
	// does not makes the change fail with ErrHSMUserChanged.
	AddUserMACs []HSMUser
	// InsertObjects adds versions that must not exist yet: a stored
	// (id, version) makes the change fail with ErrHSMObjectChanged, so new
	// keys and rotations never replace stored key material.
	InsertObjects []HSMObject
	// PutObjects inserts or replaces by (id, version), Uses kept on replace:
	// only for rewriting stored versions under changed attributes (with
	// RequireHeads, so a stale cache cannot undo another node's change).
	PutObjects    []HSMObject
	DeleteObjects []string // every version of these ids
	AddUses       []HSMUse
	// Audit, if set, builds the entry to append from the chain's head
	// (read under the head row's lock, so appends from several nodes
	// serialise). The returned entry must carry Seq = prevSeq+1.
	Audit func(prevSeq int64, prevHash []byte) HSMAuditEntry
	// AuditAuth, if set with Audit, authenticates the appended entry and
	// the head (see HSMAuditAuthFunc). Nil: the entry gets no MAC and the
	// head's authentication stays as stored.
	AuditAuth HSMAuditAuthFunc
}

// HSMPINCheck is the outcome of checking a user's PIN against its stored
// hash, recorded in one statement so that processes and nodes checking
// PINs at once never lose each other's updates: a wrong PIN adds one to
// the failure count of an unlocked user and locks it when the count
// reaches Limit; a right PIN resets the count of a user that is, at that
// moment, still unlocked with the hash the PIN was checked against.
// Neither writes the PIN hash or clears a lock. A user locked meanwhile
// is left as it is, so no failure is counted past the lockout.
//
// ApplyHSM sets Outcome and User in the change's transaction before it
// builds the audit entry, so the entry can say what was stored.
type HSMPINCheck struct {
	Name    string
	PINHash string // the stored hash the PIN was checked against
	Right   bool   // the PIN matched PINHash
	Limit   int    // the failure count that locks the user
	// SpareLast: a wrong PIN that would lock the user is not counted
	// (HSMPINSpared). For a PIN a program keeps: two nodes starting at
	// once with a stale one must not lock the user between them.
	SpareLast bool

	Outcome HSMPINOutcome
	// User is the row as it stands after the check (zero when the user
	// is gone): after HSMPINCounted, Failures is the count stored and
	// Locked whether this failure locked the user.
	User HSMUser
}

// HSMPINOutcome is what recording an HSMPINCheck did.
type HSMPINOutcome int

const (
	HSMPINAccepted HSMPINOutcome = iota + 1 // right PIN: the failure count is 0
	HSMPINCounted                           // wrong PIN: one more failure counted
	HSMPINLocked                            // the user is locked: nothing written
	HSMPINStale                             // right PIN, but against a hash no longer stored: nothing written
	HSMPINNoUser                            // the user does not exist
	HSMPINSpared                            // wrong PIN with SpareLast on the last try: nothing written
)

// HSMPINChange replaces Name's PIN hash with NewHash, and its MAC with
// NewMAC, if the hash is still OldHash, the hash the old PIN was checked
// against; otherwise (the PIN changed again, or the user was deleted,
// meanwhile) the change fails with ErrHSMUserChanged. It resets the
// failure count of an unlocked user and leaves a lock as it is: only an
// unlock clears one.
type HSMPINChange struct {
	Name, OldHash, NewHash string
	NewMAC                 []byte
}

// HSMAuditAuth authenticates the audit chain: MAC is computed by an
// unsealed HSM over the chain up to entry Seq; From is the first entry
// appended with authentication. Zero: nothing authenticated yet.
type HSMAuditAuth struct {
	From, Seq int64
	MAC       []byte
}

// HSMAuditAuthFunc authenticates the append of e: given the stored head
// authentication prev and the stored hash of entry prev.Seq (nil when
// prev.Seq is 0 or that entry is gone), both read under the head's lock, it
// returns e's MAC and the head's new authentication.
type HSMAuditAuthFunc func(e HSMAuditEntry, prev HSMAuditAuth, prevHash []byte) (entryMAC []byte, next HSMAuditAuth)

// HSMMeta returns every module-wide record.
func (d *DB) HSMMeta(ctx context.Context) (map[string][]byte, error) { return hsmMeta(ctx, d) }

func hsmMeta(ctx context.Context, q querier) (map[string][]byte, error) {
	type kv struct {
		n string
		v []byte
	}
	rows, err := queryAll(ctx, q, "reading hsm meta", `SELECT name, value FROM hsm_meta`, nil,
		func(r scanner) (kv, error) {
			var e kv
			return e, r.Scan(&e.n, &e.v)
		})
	if err != nil {
		return nil, err
	}
	m := make(map[string][]byte, len(rows))
	for _, e := range rows {
		m[e.n] = e.v
	}
	return m, nil
}

const hsmUserCols = `name, role, pin_hash, failures, locked, created, mac`

// Typed columns. SQLite stores any value in any column: a user's name or an
// audit entry's object rewritten as a BLOB reads back in Go as the same
// string, so every hash and MAC still verifies, but no longer equals the
// TEXT a lookup by name compares it with (found by a review: a missing
// user, or a key's rotation, hidden from the checks that look it up).
// Reads select whether each such column still holds TEXT (x = CAST(x AS
// TEXT) is false for a BLOB in SQLite, true in PostgreSQL, whose columns
// are typed), and refuse a row where one does not; the walks over every
// row (`ca hsm audit verify`, `ca hsm status`, a node's checks) find it.
const (
	hsmUserRead  = hsmUserCols + `, name = CAST(name AS TEXT)`
	hsmAuditRead = `seq, at, actor, action, object, details, prev_hash, hash, mac,
		actor = CAST(actor AS TEXT) AND action = CAST(action AS TEXT) AND object = CAST(object AS TEXT) AND details = CAST(details AS TEXT)`
)

// fromZero is a user's failed-login count, a negative one read as zero.
const fromZero = `CASE WHEN failures < 0 THEN 0 ELSE failures END`

func scanHSMUser(r scanner) (HSMUser, error) {
	var u HSMUser
	var locked int
	var created int64
	var typed bool
	err := r.Scan(&u.Name, &u.Role, &u.PINHash, &u.Failures, &locked, &created, &u.MAC, &typed)
	u.Locked, u.Created = locked != 0, FromMicros(created)
	if err == nil && !typed {
		err = fmt.Errorf("hsm user %q: its name is stored as another type than text: altered outside the HSM", u.Name)
	}
	return u, err
}

// insertHSMUser inserts u; onConflict is appended to the statement.
func insertHSMUser(ctx context.Context, tx *Tx, u HSMUser, onConflict string) (sql.Result, error) {
	locked := 0
	if u.Locked {
		locked = 1
	}
	return tx.Exec(ctx, `INSERT INTO hsm_users (`+hsmUserCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`+onConflict,
		u.Name, u.Role, u.PINHash, u.Failures, locked, Micros(u.Created), notNull(u.MAC))
}

// notNull is b, or an empty blob for a NOT NULL column when b is nil (an
// empty blob may scan as nil).
func notNull(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// HSMUser returns one user, or core.ErrNotFound.
func (d *DB) HSMUser(ctx context.Context, name string) (HSMUser, error) {
	u, err := scanHSMUser(d.QueryRow(ctx, `SELECT `+hsmUserRead+` FROM hsm_users WHERE name = ?`, name))
	if err != nil {
		return HSMUser{}, notFound(err, "reading hsm user")
	}
	return u, nil
}

// HSMUsers returns every user, by name.
func (d *DB) HSMUsers(ctx context.Context) ([]HSMUser, error) { return hsmUsers(ctx, d) }

func hsmUsers(ctx context.Context, q querier) ([]HSMUser, error) {
	return queryAll(ctx, q, "reading hsm users", `SELECT `+hsmUserRead+` FROM hsm_users ORDER BY name`, nil, scanHSMUser)
}

const hsmObjectCols = `id, version, owner, label, attrs, sealed, created, uses`

// hsmObjectRead reads hsmObjectCols and whether the id is still TEXT (see
// hsmUserRead).
const hsmObjectRead = hsmObjectCols + `, id = CAST(id AS TEXT)`

func scanHSMObject(r scanner) (HSMObject, error) {
	var o HSMObject
	var created, uses int64
	var typed bool
	err := r.Scan(&o.ID, &o.Version, &o.Owner, &o.Label, &o.Attrs, &o.Sealed, &created, &uses, &typed)
	o.Created, o.Uses = FromMicros(created), uint64(uses)
	if err == nil && !typed {
		err = fmt.Errorf("hsm object %q version %d: its id is stored as another type than text: altered outside the HSM", o.ID, o.Version)
	}
	return o, err
}

func hsmObjects(ctx context.Context, q querier, query string, args ...any) ([]HSMObject, error) {
	return queryAll(ctx, q, "reading hsm objects", query, args, scanHSMObject)
}

// HSMObject returns every version of one object, oldest first, or
// core.ErrNotFound.
func (d *DB) HSMObject(ctx context.Context, id string) ([]HSMObject, error) {
	os, err := hsmObjects(ctx, d, `SELECT `+hsmObjectRead+` FROM hsm_objects WHERE id = ? ORDER BY version`, id)
	if err == nil && len(os) == 0 {
		return nil, core.ErrNotFound
	}
	return os, err
}

// HSMObjects returns every version of every object, by id then version.
func (d *DB) HSMObjects(ctx context.Context) ([]HSMObject, error) {
	return hsmObjects(ctx, d, `SELECT `+hsmObjectRead+` FROM hsm_objects ORDER BY id, version`)
}

// HSMObjectCount counts owner's objects (each once, whatever its number of
// versions) whose label starts with labelPrefix, without reading them.
func (d *DB) HSMObjectCount(ctx context.Context, owner, labelPrefix string) (int, error) {
	var n int
	err := d.QueryRow(ctx, `SELECT COUNT(DISTINCT id) FROM hsm_objects WHERE owner = ? AND substr(label, 1, ?) = ?`,
		owner, utf8.RuneCountInString(labelPrefix), labelPrefix).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting hsm objects: %w", err)
	}
	return n, nil
}

// HSMHead is the newest version of one object and its stored attributes.
type HSMHead struct {
	ID      string
	Version int
	Attrs   []byte
}

// HSMHeads returns the newest version of every object, without key
// material: what a node compares its key cache against.
func (d *DB) HSMHeads(ctx context.Context) ([]HSMHead, error) {
	return queryAll(ctx, d, "reading hsm object heads", `SELECT o.id, o.version, o.attrs FROM hsm_objects o
		WHERE o.version = (SELECT MAX(v.version) FROM hsm_objects v WHERE v.id = o.id)`, nil,
		func(r scanner) (HSMHead, error) {
			var h HSMHead
			err := r.Scan(&h.ID, &h.Version, &h.Attrs)
			return h, err
		})
}

// HSMAudit returns up to limit entries with seq >= fromSeq, in seq order.
// limit <= 0 means all.
func (d *DB) HSMAudit(ctx context.Context, fromSeq int64, limit int) ([]HSMAuditEntry, error) {
	return hsmAudit(ctx, d, fromSeq, limit)
}

// HSMAuditByAction returns up to limit audit entries of one action, oldest
// first (a scan of the log: for rare checks such as an unseal's).
func (d *DB) HSMAuditByAction(ctx context.Context, action string, limit int) ([]HSMAuditEntry, error) {
	return auditQuery(ctx, d, `WHERE action = ?`, []any{action}, limit)
}

// HSMAuditFor returns the audit entries about object, every one when
// object is "" (only entries with an object), in order.
func (d *DB) HSMAuditFor(ctx context.Context, object string) ([]HSMAuditEntry, error) {
	if object == "" {
		return auditQuery(ctx, d, `WHERE object <> ''`, nil, 0)
	}
	return auditQuery(ctx, d, `WHERE object = ?`, []any{object}, 0)
}

func hsmAudit(ctx context.Context, q querier, fromSeq int64, limit int) ([]HSMAuditEntry, error) {
	return auditQuery(ctx, q, `WHERE seq >= ?`, []any{fromSeq}, limit)
}

func auditQuery(ctx context.Context, q querier, where string, args []any, limit int) ([]HSMAuditEntry, error) {
	query := `SELECT ` + hsmAuditRead + ` FROM hsm_audit ` + where + ` ORDER BY seq`
	if limit > 0 {
		query += ` LIMIT ?`
		args = append(args, limit)
	}
	return queryAll(ctx, q, "reading hsm audit", query, args, func(r scanner) (HSMAuditEntry, error) {
		var e HSMAuditEntry
		var at int64
		var typed bool
		if err := r.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Object, &e.Details, &e.PrevHash, &e.Hash, &e.MAC, &typed); err != nil {
			return e, fmt.Errorf("%w: %v", ErrHSMAuditDamaged, err)
		}
		if !typed {
			return e, fmt.Errorf("%w: entry #%d holds a value stored as another type than text", ErrHSMAuditDamaged, e.Seq)
		}
		e.At = FromMicros(at)
		return e, nil
	})
}

// HSMAuditHead returns the seq and hash of the last appended entry as
// recorded in the head row (0 and empty before the first).
func (d *DB) HSMAuditHead(ctx context.Context) (int64, []byte, error) {
	var raw any // SQLite keeps whatever was written; a non-integer is damage
	var h []byte
	err := d.QueryRow(ctx, `SELECT seq, hash FROM hsm_audit_head WHERE id = 1`).Scan(&raw, &h)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, fmt.Errorf("the hsm audit head row is missing: %w", ErrHSMAuditDamaged)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("reading hsm audit head: %w", err)
	}
	seq, ok := raw.(int64)
	if !ok {
		return 0, nil, fmt.Errorf("the hsm audit head's seq is not an integer: %w", ErrHSMAuditDamaged)
	}
	return seq, h, nil
}

// ApplyHSM applies ch in one transaction.
func (d *DB) ApplyHSM(ctx context.Context, ch HSMChange) error {
	return d.InTx(ctx, func(tx *Tx) error {
		if ch.Audit != nil {
			// The lock appendHSMAudit takes, taken first: every writer takes
			// it before any row of the keystore (so none deadlocks), and the
			// checks below see what the previous writer committed.
			if _, err := tx.Exec(ctx, `UPDATE hsm_audit_head SET seq = seq WHERE id = 1`); err != nil {
				return fmt.Errorf("locking hsm audit head: %w", err)
			}
		}
		if err := checkHSMChange(ctx, tx, ch); err != nil {
			return err
		}
		for k, v := range ch.Meta {
			if _, err := tx.Exec(ctx, `INSERT INTO hsm_meta (name, value) VALUES (?, ?)
				ON CONFLICT (name) DO UPDATE SET value = excluded.value`, k, v); err != nil {
				return fmt.Errorf("writing hsm meta: %w", err)
			}
		}
		for _, k := range ch.DeleteMeta {
			if _, err := tx.Exec(ctx, `DELETE FROM hsm_meta WHERE name = ?`, k); err != nil {
				return fmt.Errorf("deleting hsm meta: %w", err)
			}
		}
		for _, u := range ch.NewUsers {
			res, err := insertHSMUser(ctx, tx, u, ` ON CONFLICT (name) DO NOTHING`)
			if err := oneUser(res, err, "writing hsm user", fmt.Sprintf("user %q exists already", u.Name)); err != nil {
				return err
			}
		}
		for _, n := range ch.DeleteUsers {
			if _, err := tx.Exec(ctx, `DELETE FROM hsm_users WHERE name = ?`, n); err != nil {
				return fmt.Errorf("deleting hsm user: %w", err)
			}
		}
		if err := changeHSMUsers(ctx, tx, ch); err != nil {
			return err
		}
		for _, o := range ch.InsertObjects {
			_, err := tx.Exec(ctx, `INSERT INTO hsm_objects (`+hsmObjectCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, 0)`,
				o.ID, o.Version, o.Owner, o.Label, o.Attrs, o.Sealed, Micros(o.Created))
			if isUniqueViolation(err) {
				return fmt.Errorf("hsm object %s version %d already exists: %w", o.ID, o.Version, ErrHSMObjectChanged)
			}
			if err != nil {
				return fmt.Errorf("inserting hsm object: %w", err)
			}
		}
		for _, o := range ch.PutObjects {
			if _, err := tx.Exec(ctx, `INSERT INTO hsm_objects (`+hsmObjectCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, 0)
				ON CONFLICT (id, version) DO UPDATE SET owner = excluded.owner, label = excluded.label,
				attrs = excluded.attrs, sealed = excluded.sealed`,
				o.ID, o.Version, o.Owner, o.Label, o.Attrs, o.Sealed, Micros(o.Created)); err != nil {
				return fmt.Errorf("writing hsm object: %w", err)
			}
		}
		for _, id := range ch.DeleteObjects {
			if _, err := tx.Exec(ctx, `DELETE FROM hsm_objects WHERE id = ?`, id); err != nil {
				return fmt.Errorf("deleting hsm object: %w", err)
			}
		}
		for _, u := range ch.AddUses {
			if _, err := tx.Exec(ctx, `UPDATE hsm_objects SET uses = uses + ? WHERE id = ? AND version = ?`,
				int64(u.N), u.ID, u.Version); err != nil {
				return fmt.Errorf("counting hsm object uses: %w", err)
			}
		}
		if ch.Audit != nil {
			return appendHSMAudit(ctx, tx, ch.Audit, ch.AuditAuth)
		}
		return nil
	})
}

// changeHSMUsers applies ch's changes to stored users, each one statement
// conditional on the row as it stands (see HSMChange.NewUsers).
func changeHSMUsers(ctx context.Context, tx *Tx, ch HSMChange) error {
	if ch.PINCheck != nil {
		if err := recordHSMPINCheck(ctx, tx, ch.PINCheck); err != nil {
			return err
		}
	}
	if c := ch.SetPIN; c != nil {
		res, err := tx.Exec(ctx, `UPDATE hsm_users SET pin_hash = ?, mac = ?, failures = CASE WHEN locked = 0 THEN 0 ELSE failures END
			WHERE name = ? AND pin_hash = ?`, c.NewHash, notNull(c.NewMAC), c.Name, c.OldHash)
		if err := oneUser(res, err, "changing hsm user PIN",
			fmt.Sprintf("user %q was deleted, or its PIN changed, since the old PIN was checked", c.Name)); err != nil {
			return err
		}
	}
	for _, n := range ch.UnlockUsers {
		res, err := tx.Exec(ctx, `UPDATE hsm_users SET locked = 0, failures = 0 WHERE name = ?`, n)
		if err := oneUser(res, err, "unlocking hsm user", fmt.Sprintf("user %q does not exist", n)); err != nil {
			return err
		}
	}
	if u := ch.ResetUser; u != nil {
		res, err := tx.Exec(ctx, `UPDATE hsm_users SET role = ?, pin_hash = ?, mac = ?, failures = 0, locked = 0
			WHERE name = ? AND created = ?`, u.Role, u.PINHash, notNull(u.MAC), u.Name, Micros(u.Created))
		if err := oneUser(res, err, "resetting hsm user",
			fmt.Sprintf("user %q was deleted or re-created since it was read", u.Name)); err != nil {
			return err
		}
	}
	for _, u := range ch.AddUserMACs {
		res, err := tx.Exec(ctx, `UPDATE hsm_users SET mac = ?
			WHERE name = ? AND role = ? AND pin_hash = ? AND created = ? AND length(mac) = 0`,
			notNull(u.MAC), u.Name, u.Role, u.PINHash, Micros(u.Created))
		if err := oneUser(res, err, "authenticating hsm user",
			fmt.Sprintf("user %q was deleted, changed or authenticated since it was read", u.Name)); err != nil {
			return err
		}
	}
	return nil
}

// oneUser checks that a statement on a user changed exactly one row; if
// not, the change fails with ErrHSMUserChanged, saying why (otherwise).
func oneUser(res sql.Result, err error, doing, otherwise string) error {
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n != 1 {
			return fmt.Errorf("%s: %w", otherwise, ErrHSMUserChanged)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	return nil
}

// recordHSMPINCheck writes c's outcome and sets c.Outcome and c.User.
func recordHSMPINCheck(ctx context.Context, tx *Tx, c *HSMPINCheck) error {
	var row *sql.Row
	if c.Right {
		row = tx.QueryRow(ctx, `UPDATE hsm_users SET failures = 0
			WHERE name = ? AND locked = 0 AND pin_hash = ? RETURNING `+hsmUserRead, c.Name, c.PINHash)
	} else {
		// On the right of SET, failures is the value before this update.
		// A negative count (written outside the HSM: the column is not
		// under the row's MAC) counts as zero, so it buys no extra tries.
		spare := ""
		if c.SpareLast {
			spare = ` AND ` + fromZero + ` + 1 < ` + strconv.Itoa(c.Limit)
		}
		row = tx.QueryRow(ctx, `UPDATE hsm_users SET failures = `+fromZero+` + 1,
			locked = CASE WHEN `+fromZero+` + 1 >= ? THEN 1 ELSE 0 END
			WHERE name = ? AND locked = 0`+spare+` RETURNING `+hsmUserRead, c.Limit, c.Name)
	}
	u, err := scanHSMUser(row)
	switch {
	case err == nil:
		c.User, c.Outcome = u, HSMPINCounted
		if c.Right {
			c.Outcome = HSMPINAccepted
		}
		return nil
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("recording hsm PIN check: %w", err)
	}
	// Nothing matched: the user is locked, gone, or has another PIN hash.
	u, err = scanHSMUser(tx.QueryRow(ctx, `SELECT `+hsmUserRead+` FROM hsm_users WHERE name = ?`, c.Name))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		c.User, c.Outcome = HSMUser{}, HSMPINNoUser
	case err != nil:
		return fmt.Errorf("recording hsm PIN check: %w", err)
	case u.Locked:
		c.User, c.Outcome = u, HSMPINLocked
	case !c.Right && c.SpareLast:
		c.User, c.Outcome = u, HSMPINSpared
	default:
		c.User, c.Outcome = u, HSMPINStale
	}
	return nil
}

// checkHSMChange checks ch's Require conditions.
func checkHSMChange(ctx context.Context, tx *Tx, ch HSMChange) error {
	for _, h := range ch.RequireHeads {
		var v int
		var attrs []byte
		err := tx.QueryRow(ctx, `SELECT version, attrs FROM hsm_objects WHERE id = ? ORDER BY version DESC LIMIT 1`, h.ID).Scan(&v, &attrs)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("hsm object %s was destroyed: %w", h.ID, ErrHSMObjectChanged)
		}
		if err != nil {
			return fmt.Errorf("checking hsm object %s: %w", h.ID, err)
		}
		if v != h.Version || !bytes.Equal(attrs, h.Attrs) {
			return fmt.Errorf("hsm object %s is at version %d, not version %d as read, or its attributes changed: %w",
				h.ID, v, h.Version, ErrHSMObjectChanged)
		}
	}
	for _, l := range ch.RequireFreeLabels {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM hsm_objects WHERE owner = ? AND label = ?`, l.Owner, l.Label).Scan(&n); err != nil {
			return fmt.Errorf("checking hsm labels: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("%q already has an object labelled %q: %w", l.Owner, l.Label, ErrHSMLabelTaken)
		}
	}
	for _, u := range ch.RequireUsers {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM hsm_users WHERE name = ?`, u).Scan(&n); err != nil {
			return fmt.Errorf("checking hsm users: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("user %q does not exist: %w", u, ErrHSMUserChanged)
		}
	}
	for _, u := range ch.RequireNoOwned {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM hsm_objects WHERE owner = ?`, u).Scan(&n); err != nil {
			return fmt.Errorf("checking hsm objects: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("user %q owns objects: %w", u, ErrHSMUserChanged)
		}
	}
	for name, want := range ch.RequireMeta {
		var v []byte
		err := tx.QueryRow(ctx, `SELECT value FROM hsm_meta WHERE name = ?`, name).Scan(&v)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("checking hsm meta: %w", err)
		}
		if err != nil || !bytes.Equal(v, want) {
			return core.Errorf(core.KindConflict, "hsm meta %q changed since it was read", name)
		}
	}
	if ch.RequireNoMeta != "" {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM hsm_meta WHERE name = ?`, ch.RequireNoMeta).Scan(&n); err != nil {
			return fmt.Errorf("checking hsm meta: %w", err)
		}
		if n > 0 {
			return core.Errorf(core.KindConflict, "hsm meta %q already exists", ch.RequireNoMeta)
		}
	}
	return nil
}

func appendHSMAudit(ctx context.Context, tx *Tx, build func(int64, []byte) HSMAuditEntry, auth HSMAuditAuthFunc) error {
	// The no-op UPDATE takes the head row's lock first (PostgreSQL row lock;
	// SQLite transactions already hold the write lock from BEGIN).
	var seq int64
	var prev []byte
	var pa HSMAuditAuth
	if err := tx.QueryRow(ctx, `UPDATE hsm_audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash, mac_from, mac_seq, mac`).
		Scan(&seq, &prev, &pa.From, &pa.Seq, &pa.MAC); err != nil {
		return fmt.Errorf("locking hsm audit head: %w", err)
	}
	e := build(seq, prev)
	if e.Seq != seq+1 {
		return errors.New("appending hsm audit: entry does not follow the head")
	}
	next := pa
	e.MAC = []byte{}
	if auth != nil {
		var authHash []byte
		if pa.Seq > 0 {
			err := tx.QueryRow(ctx, `SELECT hash FROM hsm_audit WHERE seq = ?`, pa.Seq).Scan(&authHash)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("reading the authenticated hsm audit entry: %w", err)
			}
		}
		e.MAC, next = auth(e, pa, authHash)
	}
	if err := insertHSMAudit(ctx, tx, e); err != nil {
		return fmt.Errorf("appending hsm audit: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE hsm_audit_head SET seq = ?, hash = ?, mac_from = ?, mac_seq = ?, mac = ? WHERE id = 1`,
		e.Seq, e.Hash, next.From, next.Seq, notNull(next.MAC)); err != nil {
		return fmt.Errorf("advancing hsm audit head: %w", err)
	}
	return nil
}

func insertHSMAudit(ctx context.Context, tx *Tx, e HSMAuditEntry) error {
	_, err := tx.Exec(ctx, `INSERT INTO hsm_audit (seq, at, actor, action, object, details, prev_hash, hash, mac)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.Seq, Micros(e.At), e.Actor, e.Action, e.Object, e.Details, e.PrevHash, e.Hash, notNull(e.MAC))
	return err
}

// HSMAuditAuth returns the audit head's authentication (zero before the
// first authenticated append).
func (d *DB) HSMAuditAuth(ctx context.Context) (HSMAuditAuth, error) {
	var a HSMAuditAuth
	err := d.QueryRow(ctx, `SELECT mac_from, mac_seq, mac FROM hsm_audit_head WHERE id = 1`).Scan(&a.From, &a.Seq, &a.MAC)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("the hsm audit head row is missing: %w", ErrHSMAuditDamaged)
	}
	if err != nil {
		return a, fmt.Errorf("reading hsm audit authentication: %w", err)
	}
	return a, nil
}
