package storage

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/strongroom-pki/strongroom/core"
)

// ErrSerialTaken is returned by ReserveSerial when the serial already has a
// row: the caller draws a new serial. It is a core.Error of KindConflict.
var ErrSerialTaken = &core.Error{Kind: core.KindConflict, Detail: "serial already reserved"}

// isUniqueViolation reports whether err is a primary-key or unique
// constraint failure in either dialect.
func isUniqueViolation(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
	}
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// execer is a DB or a Tx.
type execer interface {
	Exec(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// ReserveSerial inserts a row for c.Serial with status reserved. The INSERT
// on the primary key is what makes a serial single-use: if any row (of any
// status) has the serial, it fails with ErrSerialTaken and changes nothing.
func (d *DB) ReserveSerial(ctx context.Context, c *core.Certificate) error {
	return reserveSerial(ctx, d, c)
}

func reserveSerial(ctx context.Context, x execer, c *core.Certificate) error {
	now := Micros(c.CreatedAt)
	res, err := x.Exec(ctx, `INSERT INTO certificates
		(serial, issuer_id, profile, requester, status, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (serial) DO NOTHING`,
		string(c.Serial), c.IssuerID, c.Profile, c.Requester, string(core.StatusReserved), now, now)
	if isUniqueViolation(err) {
		return ErrSerialTaken
	}
	if err != nil {
		return fmt.Errorf("reserving serial: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return ErrSerialTaken
	}
	return nil
}

// ReserveSerials reserves serials of issuerID ahead of use, in one
// transaction (the CA's serial pool): each gets a reserved row with no
// profile, requester or TBS — RecordIntent fills those in. It returns the
// serials inserted; one that already has a row is skipped (ON CONFLICT DO
// NOTHING), never overwritten.
func (d *DB) ReserveSerials(ctx context.Context, issuerID string, serials []core.Serial, at time.Time) ([]core.Serial, error) {
	var got []core.Serial
	err := d.InTx(ctx, func(tx *Tx) error {
		var err error
		got, err = reserveSerials(ctx, tx, issuerID, serials, at)
		return err
	})
	return got, err
}

func reserveSerials(ctx context.Context, x execer, issuerID string, serials []core.Serial, at time.Time) ([]core.Serial, error) {
	got := make([]core.Serial, 0, len(serials))
	for _, s := range serials {
		err := reserveSerial(ctx, x, &core.Certificate{Serial: s, IssuerID: issuerID, CreatedAt: at})
		if errors.Is(err, ErrSerialTaken) {
			continue
		}
		if err != nil {
			return nil, err
		}
		got = append(got, s)
	}
	return got, nil
}

// RecordIntent stores the linted to-be-signed certificate and its names on
// a reserved row. It fails unless the row is reserved and has no TBS yet,
// so an intent is recorded once.
func (d *DB) RecordIntent(ctx context.Context, c *core.Certificate, at time.Time) error {
	return d.InTx(ctx, func(tx *Tx) error { return recordIntent(ctx, tx, c, at) })
}

func recordIntent(ctx context.Context, x execer, c *core.Certificate, at time.Time) error {
	// profile and requester are set here too: a serial reserved ahead of
	// use (ReserveSerials) does not know them yet. The issuer must be the
	// one the serial was reserved for.
	//
	// A blocked key (blocked_keys) records no intent, so nothing is signed
	// for it: the check rides on the statement the intent needs anyway.
	res, err := x.Exec(ctx, `UPDATE certificates SET profile = ?, requester = ?, origin = ?, subject = ?, names = ?,
		not_before = ?, not_after = ?, tbs = ?, key_hash = ?, updated_at = ?
		WHERE serial = ? AND issuer_id = ? AND status = ? AND tbs IS NULL
		AND NOT EXISTS (SELECT 1 FROM blocked_keys WHERE key_hash = ?)`,
		c.Profile, c.Requester, c.Origin, c.Subject, strings.Join(c.Names, "\n"), Micros(c.NotBefore), Micros(c.NotAfter), c.TBS,
		c.KeyHash, Micros(at), string(c.Serial), c.IssuerID, string(core.StatusReserved), c.KeyHash)
	if err := oneRow(res, err, "recording intent"); err != nil {
		if q, ok := x.(rowQuerier); ok && len(c.KeyHash) > 0 {
			if blocked, berr := keyBlocked(ctx, q, c.KeyHash); berr == nil && blocked {
				return core.ErrKeyBlocked
			}
		}
		return err
	}
	names := dedupe(c.Names)
	if len(names) == 0 {
		return nil
	}
	// One multi-row INSERT instead of one statement per name (both
	// dialects accept VALUES lists); the query text depends only on the
	// number of names, so the CertWriter's prepared-statement cache stays
	// small.
	args := make([]any, 0, 2*len(names))
	for _, n := range names {
		args = append(args, string(c.Serial), strings.ToLower(n))
	}
	if _, err := x.Exec(ctx, namesInsert(len(names)), args...); err != nil {
		return fmt.Errorf("recording names: %w", err)
	}
	return nil
}

// namesInsert is the INSERT of n certificate_names rows.
func namesInsert(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO certificate_names (serial, name) VALUES (?, ?)")
	for i := 1; i < n; i++ {
		b.WriteString(", (?, ?)")
	}
	b.WriteString(" ON CONFLICT DO NOTHING")
	return b.String()
}

// AbandonIntent withdraws the intent recorded on a reserved row whose
// certificate was not signed (the signer answered an error, so no
// signature exists): the row stays reserved, so its serial is never used
// again, as one of a serial pool lost in a crash is, but it is no longer
// an intent that `ca cert list --status intent` and a node's start report
// as perhaps signed. A row that is not such an intent is left as it is.
func (d *DB) AbandonIntent(ctx context.Context, serial core.Serial, at time.Time) error {
	return d.InTx(ctx, func(tx *Tx) error {
		res, err := tx.Exec(ctx, `UPDATE certificates SET tbs = NULL, updated_at = ?
			WHERE serial = ? AND `+statusIs+` AND tbs IS NOT NULL`,
			Micros(at), string(serial), string(core.StatusReserved))
		if err := oneRow(res, err, "withdrawing intent"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM certificate_names WHERE serial = ?`, string(serial)); err != nil {
			return fmt.Errorf("withdrawing intent's names: %w", err)
		}
		return nil
	})
}

// statusIs tests the status of the row a write finds by its serial. It
// compares the status joined to an empty string, which no index serves, so
// that PostgreSQL can only take the primary key. With the bare column, its
// plans of a young table (a few rows, never analyzed) estimated one row
// through the status index as through the primary key and took the status
// index; pgx prepares a statement once per connection and PostgreSQL keeps
// its generic plan until the table is next analyzed, so at 400,000 rows
// storing a certificate read every reserved row and revoking one every
// valid row (TestBySerialQueriesIndexed).
const statusIs = "status || '' = ?"

// StoreIssued marks a reserved certificate valid with its signed DER. The
// row is only updated while reserved and after its intent was recorded.
func (d *DB) StoreIssued(ctx context.Context, serial core.Serial, der []byte, at time.Time) error {
	return storeIssued(ctx, d, serial, der, at)
}

func storeIssued(ctx context.Context, x execer, serial core.Serial, der []byte, at time.Time) error {
	// The TBS recorded with the intent is cleared: the DER holds the same
	// bytes (the pipeline checked them equal), and keeping both made every
	// stored certificate's row about twice the size of its certificate.
	res, err := x.Exec(ctx, `UPDATE certificates SET status = ?, der = ?, tbs = NULL, updated_at = ?
		WHERE serial = ? AND `+statusIs+` AND tbs IS NOT NULL`,
		string(core.StatusValid), der, Micros(at), string(serial), string(core.StatusReserved))
	return oneRow(res, err, "storing certificate")
}

// RevokeCertificate records the revocation of a valid certificate. A
// certificate already revoked, or only reserved, is a KindConflict error; an
// unknown serial is core.ErrNotFound. invalidity may be zero.
//
// One exception, as Boulder makes it: a certificate revoked for another
// reason may be revoked again for keyCompromise, which relying parties treat
// specially. The reason changes, and the invalidity date if one is given;
// the revocation date stays.
//
// It never blocks the key: a keyCompromise claim blocks it only when the
// claimant proved it holds the key or is trusted (RevokeAndBlockKey).
func (d *DB) RevokeCertificate(ctx context.Context, serial core.Serial, reason core.RevocationReason, at, invalidity time.Time) error {
	return d.InTx(ctx, func(tx *Tx) error { return revokeCertificate(ctx, tx, serial, reason, at, invalidity) })
}

// RevokeAndBlockKey revokes a certificate for keyCompromise and blocks its
// key in the same transaction: no certificate is issued for the key again,
// and RevokeBlockedKeys revokes the others that carry it. For a claimant
// who proved it holds the key, or an operator. A certificate revoked for
// keyCompromise already has its key blocked (not a conflict): its
// revocation may have come from someone trusted less.
func (d *DB) RevokeAndBlockKey(ctx context.Context, serial core.Serial, at, invalidity time.Time) error {
	return d.InTx(ctx, func(tx *Tx) error {
		err := revokeCertificate(ctx, tx, serial, core.ReasonKeyCompromise, at, invalidity)
		if errors.Is(err, errRevokedForKeyCompromise) {
			err = nil
		}
		if err != nil {
			return err
		}
		return blockKeyOf(ctx, tx, serial, invalidity, at)
	})
}

// errRevokedForKeyCompromise marks revokeCertificate's conflict when the
// certificate is revoked for keyCompromise already.
var errRevokedForKeyCompromise = core.Errorf(core.KindConflict, "revoked for keyCompromise already")

func revokeCertificate(ctx context.Context, tx *Tx, serial core.Serial, reason core.RevocationReason, at, invalidity time.Time) error {
	res, err := tx.Exec(ctx, `UPDATE certificates SET status = ?, revoked_at = ?, revocation_reason = ?,
		invalidity_date = ?, updated_at = ? WHERE serial = ? AND `+statusIs,
		string(core.StatusRevoked), Micros(at), int(reason), Micros(invalidity), Micros(at), string(serial), string(core.StatusValid))
	if err != nil {
		return fmt.Errorf("revoking certificate: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	if reason == core.ReasonKeyCompromise {
		raised, err := raiseToKeyCompromise(ctx, tx, serial, at, invalidity)
		if err != nil || raised {
			return err
		}
	}
	c, err := getCertificate(ctx, tx, serial)
	if err != nil {
		return err
	}
	if c.Status == core.StatusRevoked && c.RevocationReason == core.ReasonKeyCompromise {
		// Restated, not wrapped: the message says it once.
		return core.Restate(errRevokedForKeyCompromise, fmt.Sprintf("certificate %s is revoked already (keyCompromise)", serial))
	}
	if c.Status == core.StatusRevoked {
		return core.Errorf(core.KindConflict, "certificate %s is revoked already (%s); only keyCompromise may replace an earlier reason", serial, c.RevocationReason)
	}
	return core.Errorf(core.KindConflict, "certificate %s is %s, not valid", serial, c.Status)
}

// raiseToKeyCompromise makes keyCompromise the reason of a certificate
// revoked for another one; the revocation date stays, the invalidity date
// changes if one is given. It reports whether the row changed.
func raiseToKeyCompromise(ctx context.Context, x execer, serial core.Serial, at, invalidity time.Time) (bool, error) {
	q, args := `UPDATE certificates SET revocation_reason = ?, updated_at = ?`, []any{int(core.ReasonKeyCompromise), Micros(at)}
	if !invalidity.IsZero() {
		q, args = q+`, invalidity_date = ?`, append(args, Micros(invalidity))
	}
	res, err := x.Exec(ctx, q+` WHERE serial = ? AND `+statusIs+` AND revocation_reason <> ?`,
		append(args, string(serial), string(core.StatusRevoked), int(core.ReasonKeyCompromise))...)
	if err != nil {
		return false, fmt.Errorf("revoking certificate for keyCompromise: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

const certColumns = `serial, issuer_id, profile, requester, subject, names, not_before, not_after,
	status, tbs, der, revoked_at, revocation_reason, invalidity_date, created_at, key_hash, origin`

const certColumnsC = `c.serial, c.issuer_id, c.profile, c.requester, c.subject, c.names, c.not_before,
	c.not_after, c.status, c.tbs, c.der, c.revoked_at, c.revocation_reason, c.invalidity_date, c.created_at, c.key_hash, c.origin`

func scanCert(row interface{ Scan(...any) error }) (*core.Certificate, error) {
	var (
		c                                  core.Certificate
		serial, names, status              string
		nb, na, revAt, invalidity, created int64
		reason                             int
	)
	if err := row.Scan(&serial, &c.IssuerID, &c.Profile, &c.Requester, &c.Subject, &names, &nb, &na,
		&status, &c.TBS, &c.DER, &revAt, &reason, &invalidity, &created, &c.KeyHash, &c.Origin); err != nil {
		return nil, err
	}
	c.Serial, c.Status, c.RevocationReason = core.Serial(serial), core.CertStatus(status), core.RevocationReason(reason)
	if names != "" {
		c.Names = strings.Split(names, "\n")
	}
	c.NotBefore, c.NotAfter, c.RevokedAt, c.CreatedAt = FromMicros(nb), FromMicros(na), FromMicros(revAt), FromMicros(created)
	c.InvalidityDate = FromMicros(invalidity)
	return &c, nil
}

// GetCertificate returns the row of serial (of any status), or a
// KindNotFound error that names the serial.
func (d *DB) GetCertificate(ctx context.Context, serial core.Serial) (*core.Certificate, error) {
	return getCertificate(ctx, d, serial)
}

// rowQuerier is a DB or a Tx.
type rowQuerier interface {
	QueryRow(ctx context.Context, query string, args ...any) *sql.Row
}

func getCertificate(ctx context.Context, q rowQuerier, serial core.Serial) (*core.Certificate, error) {
	c, err := scanCert(q.QueryRow(ctx, `SELECT `+certColumns+` FROM certificates WHERE serial = ?`, string(serial)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.KindNotFound, "no certificate has serial %s", serial)
	}
	if err != nil {
		return nil, fmt.Errorf("reading certificate: %w", err)
	}
	return c, nil
}

// CountExpiring counts, for each of windows, the valid certificates whose
// not_after falls in [now, now+window) (none for a window that is not
// positive): what the expiry metrics publish.
//
// One statement answers every window, reading each entry of the widest
// window once from certificates_valid_not_after (migration 00200), an
// index of the valid rows' not_after, never the rows: it counts the slices
// between consecutive window ends, which are summed here. The status is a
// literal, which the partial index needs: PostgreSQL uses one only in a
// plan that knows the value, and pgx's prepared statement may run with a
// generic plan. SQLite is told the index (INDEXED BY): without statistics,
// which ca serve never gathers, it prefers certificates_status_created for
// the equality on status, and so read every valid certificate ever issued,
// and each one's row.
func (d *DB) CountExpiring(ctx context.Context, now time.Time, windows []time.Duration) ([]int64, error) {
	var ends []time.Duration
	for _, w := range windows {
		if w > 0 {
			ends = append(ends, w)
		}
	}
	slices.Sort(ends)
	ends = slices.Compact(ends)
	counts := make([]int64, len(windows))
	if len(ends) == 0 {
		return counts, nil
	}
	args := make([]any, 0, 2*len(ends))
	start := now
	for _, w := range ends {
		args = append(args, Micros(start), Micros(now.Add(w)))
		start = now.Add(w)
	}
	rows, err := d.Query(ctx, countExpiringQuery(d.dialect, len(ends)), args...)
	if err != nil {
		return nil, fmt.Errorf("counting expiring certificates: %w", err)
	}
	defer rows.Close()
	within := make([]int64, len(ends)) // by end, first each slice's count
	for rows.Next() {
		var i int
		var n int64
		if err := rows.Scan(&i, &n); err != nil {
			return nil, fmt.Errorf("counting expiring certificates: %w", err)
		}
		within[i] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("counting expiring certificates: %w", err)
	}
	for i := 1; i < len(within); i++ {
		within[i] += within[i-1]
	}
	for i, w := range windows {
		if j, ok := slices.BinarySearch(ends, w); ok {
			counts[i] = within[j]
		}
	}
	return counts, nil
}

// countExpiringQuery counts the valid certificates in each of n slices of
// not_after, [?, ?) each, as rows (slice number, count).
func countExpiringQuery(dialect Dialect, n int) string {
	from := "certificates"
	if dialect == SQLite {
		from = "certificates INDEXED BY certificates_valid_not_after"
	}
	var q strings.Builder
	for i := range n {
		if i > 0 {
			q.WriteString(" UNION ALL ")
		}
		fmt.Fprintf(&q, "SELECT %d, COUNT(*) FROM %s WHERE status = 'valid' AND not_after >= ? AND not_after < ?", i, from)
	}
	return q.String()
}

// CeremonyCertificates lists the valid CA certificates recorded by key
// ceremonies (`ca init`, `ca issuer add`): a node missing an issuer's PEM
// file finds it here by its key.
func (d *DB) CeremonyCertificates(ctx context.Context) ([]core.Certificate, error) {
	return queryAll(ctx, d, "listing ceremony certificates", `SELECT `+certColumns+` FROM certificates
		WHERE requester = ? AND status = ? ORDER BY created_at DESC`, []any{CeremonyRequester, string(core.StatusValid)},
		func(r scanner) (core.Certificate, error) {
			c, err := scanCert(r)
			if err != nil {
				return core.Certificate{}, err
			}
			return *c, nil
		})
}

// CeremonyRequester is the requester recorded for certificates a key
// ceremony made.
const CeremonyRequester = "ceremony"

// CountIntents counts the intents recorded after after and no later than
// until that were never stored (CertFilter.Intents): certificates signed,
// perhaps, when a node stopped or failed before storing them.
func (d *DB) CountIntents(ctx context.Context, after, until time.Time) (int, error) {
	var n int
	err := d.QueryRow(ctx, `SELECT COUNT(*) FROM certificates WHERE status = ? AND tbs IS NOT NULL
		AND updated_at > ? AND updated_at <= ?`, string(core.StatusReserved), Micros(after), Micros(until)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting intents: %w", err)
	}
	return n, nil
}

// CertFilter selects certificates for ListCertificates. Zero fields do not
// filter.
type CertFilter struct {
	Status core.CertStatus
	// Intents selects reserved rows whose intent was recorded and that
	// were never stored: signed perhaps (a crash, or a failure after
	// signing), never handed out. Status must be empty or reserved.
	Intents bool
	Name    string // exact SAN (DNS name, IP, email or URI), case-insensitive
	// Under selects certificates with a DNS name equal to or under this
	// suffix (team-a.corp.internal: also x.team-a.corp.internal and
	// *.team-a.corp.internal). It scans the names (not an index lookup:
	// with 100,000 certificates, ~30 ms when few match and ~0.2-0.5 s
	// when all do, SQLite and PostgreSQL). The caller checks it is a DNS
	// name: "%" and "_" are LIKE wildcards.
	Under    string
	IssuerID string
	// Requester selects what one principal asked for ("apikey:<id>",
	// "acme:<endpoint>/<account>"): a scan, for incident response (`ca
	// cert revoke-all --requester`), not an index lookup.
	Requester      string
	ExpiringAfter  time.Time // not_after >= this
	ExpiringBefore time.Time // not_after < this
	// After is the cursor: only serials greater than it (results are in
	// serial order, which is random, so pages are stable under inserts).
	After core.Serial
	Limit int // zero: 100; at most 1000
	// Keep, when set, drops the rows it refuses after the query: what a
	// credential limited to names may see, which SQL does not express.
	// Pages are refilled, reading at most keepScan rows per call, so a
	// page may hold fewer than Limit rows, even none, and still have a
	// next cursor.
	Keep func(*core.Certificate) bool
}

// keepScan bounds the rows one ListCertificates with Keep reads, in
// queries of keepPage rows (variables for tests).
var (
	keepScan = 10000
	keepPage = 500
)

// ListCertificates returns one page of certificates matching f, and the
// cursor of the next page ("" on the last page). Reserved rows are listed
// only when f.Status asks for them.
func (d *DB) ListCertificates(ctx context.Context, f CertFilter) ([]core.Certificate, core.Serial, error) {
	if f.Keep == nil {
		return d.listPage(ctx, f)
	}
	want := min(cmp.Or(max(f.Limit, 0), 100), 1000)
	// Read in pages of at least keepPage rows whatever the caller's
	// limit: limit=1 must not cost a query per row scanned.
	f.Limit = max(want, keepPage)
	var out []core.Certificate
	from := f.After
	for scanned := 0; ; {
		rows, next, err := d.listPage(ctx, f)
		if err != nil {
			return nil, "", err
		}
		scanned += len(rows)
		for i := range rows {
			if !f.Keep(&rows[i]) {
				continue
			}
			if out = append(out, rows[i]); len(out) == want {
				if i < len(rows)-1 || next != "" {
					return out, rows[i].Serial, nil
				}
				return out, "", nil
			}
		}
		if next == "" {
			return out, "", nil
		}
		if scanned >= keepScan {
			floor := from
			if len(out) > 0 {
				floor = out[len(out)-1].Serial
			}
			return out, scanCursor(next, floor), nil
		}
		f.After = next
	}
}

// scanCursor is where a listing whose scan stopped at last goes on without
// naming last, a row the caller may not see (a security review: the
// cursor gave away another team's serial): the shortest prefix of last,
// two hex digits at a time, that sorts after floor, the caller's cursor or the last row it
// was given. Serials compare as text, and a prefix sorts before the serials
// it begins, so the next page starts after every row this one was given
// and reads again only the unkept rows between the prefix and last; the
// prefix tells the caller at most two hex digits beyond what floor did.
func scanCursor(last, floor core.Serial) core.Serial {
	for k := 2; k < len(last); k += 2 {
		if p := last[:k]; p > floor {
			return p
		}
	}
	return last
}

func (d *DB) listPage(ctx context.Context, f CertFilter) ([]core.Certificate, core.Serial, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	var where []string
	var args []any
	switch {
	case f.Intents:
		where, args = append(where, "c.status = ? AND c.tbs IS NOT NULL"), append(args, string(core.StatusReserved))
	case f.Status != "":
		where, args = append(where, "c.status = ?"), append(args, string(f.Status))
	default:
		where, args = append(where, "c.status <> ?"), append(args, string(core.StatusReserved))
	}
	from := "certificates c"
	if f.Name != "" {
		from = "certificate_names n JOIN certificates c ON c.serial = n.serial"
		where, args = append(where, "n.name = ?"), append(args, strings.ToLower(f.Name))
	}
	if f.Under != "" {
		u := strings.ToLower(f.Under)
		where = append(where, "c.serial IN (SELECT u.serial FROM certificate_names u WHERE u.name = ? OR u.name LIKE ?)")
		args = append(args, u, "%."+u)
	}
	if f.IssuerID != "" {
		where, args = append(where, "c.issuer_id = ?"), append(args, f.IssuerID)
	}
	if f.Requester != "" {
		where, args = append(where, "c.requester = ?"), append(args, f.Requester)
	}
	if !f.ExpiringAfter.IsZero() {
		where, args = append(where, "c.not_after >= ?"), append(args, Micros(f.ExpiringAfter))
	}
	if !f.ExpiringBefore.IsZero() {
		where, args = append(where, "c.not_after < ?"), append(args, Micros(f.ExpiringBefore))
	}
	if f.After != "" {
		where, args = append(where, "c.serial > ?"), append(args, string(f.After))
	}
	args = append(args, limit+1)
	rows, err := d.Query(ctx, `SELECT `+certColumnsC+` FROM `+from+` WHERE `+strings.Join(where, " AND ")+
		` ORDER BY c.serial LIMIT ?`, args...)
	if err != nil {
		return nil, "", fmt.Errorf("listing certificates: %w", err)
	}
	defer rows.Close()
	var out []core.Certificate
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, "", fmt.Errorf("listing certificates: %w", err)
		}
		out = append(out, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("listing certificates: %w", err)
	}
	var next core.Serial
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].Serial
	}
	return out, next, nil
}

func oneRow(res sql.Result, err error, doing string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	if n != 1 {
		return core.Errorf(core.KindConflict, "%s: the certificate is not in the expected state", doing)
	}
	return nil
}

func dedupe(names []string) []string {
	seen := make(map[string]bool, len(names))
	out := names[:0:0]
	for _, n := range names {
		k := strings.ToLower(n)
		if !seen[k] {
			seen[k] = true
			out = append(out, n)
		}
	}
	return out
}
