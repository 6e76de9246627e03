package storage_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// The statements that find one certificate by its serial, as the code
// prepares them on PostgreSQL (the start of their text).
var bySerial = []struct{ what, prefix string }{
	{"RecordIntent", "UPDATE certificates SET profile = $1"},
	{"StoreIssued", "UPDATE certificates SET status = $1, der = $2"},
	{"RevokeCertificate, RevokeBlockedKeys", "UPDATE certificates SET status = $1, revoked_at = $2"},
	{"the raise to keyCompromise", "UPDATE certificates SET revocation_reason = $1"},
	{"GetCertificate", "SELECT serial, issuer_id, profile"},
	{"CertStatus", "SELECT status, not_after"},
	{"RevokeAndBlockKey", "SELECT key_hash, der FROM certificates WHERE serial = $1"},
}

// TestBySerialQueriesIndexed: the statements that find a certificate by
// its serial — issuance's intent and store, the revocations, the reads by
// serial — are planned on the primary key (or the (issuer_id, serial)
// index), never on the status index. On PostgreSQL the plan checked is the
// generic plan (plan_cache_mode = force_generic_plan) of the very statement
// pgx prepared for the code, on a young table (a few rows, never analyzed)
// and after it grew to 20,000 rows and was analyzed. On the young table the
// plans of StoreIssued and RevokeCertificate took certificates_status_created
// (one row estimated either way); pgx keeps a connection's prepared
// statements, and PostgreSQL their generic plan until the table is next
// analyzed, so at 400,000 rows storing a certificate read every reserved
// row and revoking one every valid row (0.4-0.6 s each). A table analyzed
// while it held a few rows is read by scans instead, whatever the
// statements say, until its next ANALYZE: autovacuum's job.
func TestBySerialQueriesIndexed(t *testing.T) {
	db := storagetest.Postgres(t)
	// One connection: the code's statements are prepared on the one the
	// test inspects.
	db.SQL().SetMaxOpenConns(1)
	runBySerial(t, db)
	var stmts map[string]string // name → text
	withPgx(t, db, func(c *pgx.Conn) {
		stmts = preparedBySerial(t, c)
		checkGenericPlans(t, c, stmts, "young table")
		grow(t, c, 20000)
		checkGenericPlans(t, c, stmts, "20,000 rows, analyzed")
	})
	// SQLite runs the same text with '?' placeholders.
	sq, _ := storagetest.SQLite(t)
	for _, text := range stmts {
		q := placeholder.ReplaceAllString(text, "?")
		plan := sqlitePlan(t, sq, q, make([]any, strings.Count(q, "?"))...)
		if !strings.Contains(plan, "SEARCH certificates USING INDEX sqlite_autoindex_certificates_1 (serial=?)") {
			t.Errorf("SQLite: %s\nplan:\n%swant it to use the primary key", q, plan)
		}
	}
}

// runBySerial runs every statement of bySerial through the code: issuance
// through the CertWriter (pipelined, as ca serve runs it), the reads, and
// the revocations.
func runBySerial(t *testing.T, db *storage.DB) {
	ctx := context.Background()
	w := storage.NewCertWriter(db)
	defer w.Close()
	now := time.Now().UTC()
	var s []core.Serial
	for range 3 {
		c := &core.Certificate{Serial: newSerial(t), IssuerID: "int", Profile: "p", Requester: "r", CreatedAt: now}
		c.Names, c.TBS, c.NotAfter, c.KeyHash = []string{"a.example"}, []byte("tbs"), now.Add(time.Hour), core.KeyHash([]byte(c.Serial))
		for _, err := range []error{w.ReserveSerial(ctx, c), w.RecordIntent(ctx, c, now), w.StoreIssued(ctx, c.Serial, []byte("der"), now)} {
			if err != nil {
				t.Fatal(err)
			}
		}
		s = append(s, c.Serial)
	}
	if _, err := db.GetCertificate(ctx, s[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CertStatus(ctx, "int", s[0]); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		db.RevokeCertificate(ctx, s[0], core.ReasonSuperseded, now, time.Time{}),
		db.RevokeCertificate(ctx, s[0], core.ReasonKeyCompromise, now, time.Time{}), // raised
		db.RevokeAndBlockKey(ctx, s[1], now, time.Time{}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.BlockKey(ctx, storage.BlockedKey{Hash: core.KeyHash([]byte(s[2])), BlockedAt: now}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.RevokeBlockedKeys(ctx, now); err != nil || len(got) != 1 {
		t.Fatalf("RevokeBlockedKeys = %v, %v; want the certificate with the blocked key", got, err)
	}
}

// withPgx runs fn on the pool's connection.
func withPgx(t *testing.T, db *storage.DB, fn func(*pgx.Conn)) {
	t.Helper()
	conn, err := db.SQL().Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Raw(func(dc any) error { fn(dc.(*stdlib.Conn).Conn()); return nil }); err != nil {
		t.Fatal(err)
	}
}

// pgExec runs sql in the simple protocol (no statement of its own is
// prepared) and returns the first column of its last result's rows.
func pgExec(t *testing.T, c *pgx.Conn, sql string) []string {
	t.Helper()
	res, err := c.PgConn().Exec(context.Background(), sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	var out []string
	for _, row := range res[len(res)-1].Rows {
		out = append(out, string(row[0]))
	}
	return out
}

// preparedBySerial returns the statements of bySerial prepared on c, by
// name, and fails unless each was.
func preparedBySerial(t *testing.T, c *pgx.Conn) map[string]string {
	t.Helper()
	out := map[string]string{}
	rows := pgExec(t, c, `SELECT name || ' ' || statement FROM pg_prepared_statements`)
	for _, x := range bySerial {
		found := false
		for _, r := range rows {
			name, text, _ := strings.Cut(r, " ")
			if strings.HasPrefix(text, x.prefix) {
				out[name], found = text, true
			}
		}
		if !found {
			t.Fatalf("no statement of %s (%q…) was prepared; prepared:\n%s", x.what, x.prefix, strings.Join(rows, "\n"))
		}
	}
	return out
}

var (
	placeholder      = regexp.MustCompile(`\$\d+`)
	certIndex        = regexp.MustCompile(`(?:using|Bitmap Index Scan on) (certificates_\w+)`)
	issuerSerialCond = regexp.MustCompile(`Index Cond: \(\(issuer_id = \$\d+\) AND \(serial = \$\d+\)\)`)
)

// checkGenericPlans fails unless the generic plan of each statement reads
// certificates by its primary key, or by (issuer_id, serial) on both
// columns, and by nothing else.
func checkGenericPlans(t *testing.T, c *pgx.Conn, stmts map[string]string, when string) {
	t.Helper()
	pgExec(t, c, `SET plan_cache_mode = force_generic_plan`)
	defer pgExec(t, c, `RESET plan_cache_mode`)
	for name, text := range stmts {
		params := strings.TrimSuffix(strings.Repeat("NULL, ", len(placeholder.FindAllString(text, -1))), ", ")
		plan := strings.Join(pgExec(t, c, fmt.Sprintf(`EXPLAIN (COSTS OFF) EXECUTE %s(%s)`, name, params)), "\n")
		used := certIndex.FindAllStringSubmatch(plan, -1)
		ok := len(used) > 0 && !strings.Contains(plan, "Seq Scan on certificates")
		for _, u := range used {
			ok = ok && (u[1] == "certificates_pkey" || u[1] == "certificates_issuer_serial" && issuerSerialCond.MatchString(plan))
		}
		if !ok {
			t.Errorf("%s: the generic plan of\n%s\nis\n%s\nwant certificates read by serial (certificates_pkey, or certificates_issuer_serial on both columns)", when, text, plan)
		}
	}
}

// grow adds n rows to certificates as a year of issuance leaves them
// (nearly all valid, some revoked, a few reserved) and analyzes it.
func grow(t *testing.T, c *pgx.Conn, n int) {
	t.Helper()
	pgExec(t, c, fmt.Sprintf(`INSERT INTO certificates (serial, issuer_id, profile, requester, status, der,
		not_after, created_at, updated_at, key_hash)
		SELECT md5(g::text), 'int', 'p', 'r', CASE WHEN g %% 500 = 0 THEN 'reserved' WHEN g %% 25 = 0 THEN 'revoked' ELSE 'valid' END,
			'\x00'::bytea, g, g, g, sha256(g::text::bytea)
		FROM generate_series(1, %d) g`, n))
	pgExec(t, c, `ANALYZE certificates`)
}
