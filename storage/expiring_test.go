package storage_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

const day = 24 * time.Hour

// TestCountExpiring: each window counts the valid certificates whose
// not_after is in [now, now+window), to the microsecond at both ends; a
// revoked certificate, a reserved one with its intent recorded, and an
// expired one are not counted. Windows may come in any order, repeat, or
// be zero or negative (counted as none).
func TestCountExpiring(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		now := time.Unix(1_900_000_000, 0).UTC()
		for _, d := range []time.Duration{
			-time.Microsecond,         // expired
			0, day - time.Microsecond, // 24h
			day,                                // 7d
			7 * day, 30*day - time.Microsecond, // 30d
			30 * day, 60 * day, // none
		} {
			issue(t, db, "int", []string{"a.example"}, now.Add(d))
		}
		revoked := issue(t, db, "int", []string{"a.example"}, now.Add(time.Hour))
		if err := db.RevokeCertificate(ctx, revoked, core.ReasonSuperseded, now, time.Time{}); err != nil {
			t.Fatal(err)
		}
		reserved := &core.Certificate{Serial: newSerial(t), IssuerID: "int", Profile: "p", Requester: "r", CreatedAt: now}
		if err := db.ReserveSerial(ctx, reserved); err != nil {
			t.Fatal(err)
		}
		reserved.NotAfter, reserved.TBS = now.Add(time.Hour), []byte("tbs")
		if err := db.RecordIntent(ctx, reserved, now); err != nil {
			t.Fatal(err)
		}
		for _, x := range []struct {
			windows []time.Duration
			want    string
		}{
			{[]time.Duration{day, 7 * day, 30 * day}, "[2 3 5]"},
			{[]time.Duration{30 * day, 0, day, -time.Hour, day}, "[5 0 2 0 2]"},
			{[]time.Duration{time.Microsecond}, "[1]"},
			{nil, "[]"},
		} {
			got, err := db.CountExpiring(ctx, now, x.windows)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != x.want {
				t.Errorf("CountExpiring(%v) = %v, want %s", x.windows, got, x.want)
			}
		}
	})
}

// TestCountExpiringIndexOnly: the count reads certificates_valid_not_after
// alone, never the rows. SQLite without statistics (as ca serve runs it)
// took certificates_status_created for it, which reads every valid
// certificate, and each one's row, until told the index. On PostgreSQL the
// plans checked are those of the very statement pgx prepared for the code:
// the generic plan on a young table, and the generic and custom plans once
// the table holds 20,000 rows spread over 120 days and was vacuumed and
// analyzed (as autovacuum leaves it); with the status bound as a parameter
// the generic plan could not use the partial index.
func TestCountExpiringIndexOnly(t *testing.T) {
	windows := []time.Duration{day, 7 * day, 30 * day}
	now := time.Unix(1_900_000_000, 0)
	t.Run("sqlite", func(t *testing.T) {
		db, _ := storagetest.SQLite(t)
		q := storage.CountExpiringQuery(storage.SQLite, len(windows))
		plan := sqlitePlan(t, db, q, make([]any, 2*len(windows))...)
		if n := strings.Count(plan, "SEARCH certificates USING COVERING INDEX certificates_valid_not_after (not_after>? AND not_after<?)"); n != len(windows) || strings.Count(plan, "certificates USING") != n {
			t.Errorf("%s\nplan:\n%swant each slice counted from certificates_valid_not_after alone", q, plan)
		}
		if _, err := db.CountExpiring(context.Background(), now, windows); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		db := storagetest.Postgres(t)
		db.SQL().SetMaxOpenConns(1) // the statement is prepared on the connection inspected
		if _, err := db.CountExpiring(context.Background(), now, windows); err != nil {
			t.Fatal(err)
		}
		withPgx(t, db, func(c *pgx.Conn) {
			name := ""
			for _, r := range pgExec(t, c, `SELECT name || ' ' || statement FROM pg_prepared_statements`) {
				if n, text, _ := strings.Cut(r, " "); strings.HasPrefix(text, "SELECT 0, COUNT(*) FROM certificates") {
					name = n
				}
			}
			if name == "" {
				t.Fatal("CountExpiring prepared no statement")
			}
			var args []string
			from := now
			for _, w := range windows {
				args = append(args, strconv.FormatInt(storage.Micros(from), 10), strconv.FormatInt(storage.Micros(now.Add(w)), 10))
				from = now.Add(w)
			}
			check := func(mode, when string) {
				pgExec(t, c, `SET plan_cache_mode = `+mode)
				defer pgExec(t, c, `RESET plan_cache_mode`)
				plan := strings.Join(pgExec(t, c, fmt.Sprintf(`EXPLAIN (COSTS OFF) EXECUTE %s(%s)`, name, strings.Join(args, ", "))), "\n")
				if n := strings.Count(plan, "Index Only Scan using certificates_valid_not_after"); n != len(windows) || strings.Count(plan, " on certificates") != n {
					t.Errorf("%s, %s: plan\n%s\nwant each slice counted by an index-only scan of certificates_valid_not_after", when, mode, plan)
				}
			}
			check("force_generic_plan", "young table")
			start, span := storage.Micros(now.Add(-30*day)), (120 * day).Microseconds()
			pgExec(t, c, fmt.Sprintf(`INSERT INTO certificates (serial, issuer_id, profile, requester, status, der,
				not_after, created_at, updated_at, key_hash)
				SELECT md5(g::text), 'int', 'p', 'r', CASE WHEN g %% 500 = 0 THEN 'reserved' WHEN g %% 50 = 0 THEN 'revoked' ELSE 'valid' END,
					'\x00'::bytea, %d + g::bigint * %d, g, g, sha256(g::text::bytea)
				FROM generate_series(1, 20000) g`, start, span/20000))
			pgExec(t, c, `VACUUM ANALYZE certificates`)
			check("force_generic_plan", "20,000 rows")
			check("force_custom_plan", "20,000 rows")
		})
	})
}

// BenchmarkCountExpiring counts the certificates expiring within 24 hours,
// 7 and 30 days, as the metrics do, among STRONGROOM_BENCH_CERTS rows
// (default 200,000; filled by SQL, which takes about a minute a million):
// not_after spread over [now-30d, now+90d) in issuance order, 2% revoked.
// SQLite has no statistics, as ca serve leaves it; PostgreSQL is vacuumed
// and analyzed, as autovacuum leaves it.
func BenchmarkCountExpiring(b *testing.B) {
	n := 200000
	if s := os.Getenv("STRONGROOM_BENCH_CERTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatalf("STRONGROOM_BENCH_CERTS: %v", err)
		}
	}
	now := time.Now()
	windows := []time.Duration{day, 7 * day, 30 * day}
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(fmt.Sprintf("%s-%d", kind, n), func(b *testing.B) {
			var db *storage.DB
			if kind == "postgres" {
				db = storagetest.Postgres(b)
			} else {
				db, _ = storagetest.SQLite(b)
			}
			fillExpiring(b, db, n, now)
			ctx := context.Background()
			var got []int64
			for b.Loop() {
				var err error
				if got, err = db.CountExpiring(ctx, now, windows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(got[2]), "certs-30d")
		})
	}
}

// fillExpiring inserts n certificates: row g issued at now-120d+g/n*120d
// with a 90-day life, every 50th revoked and every 5,000th left reserved.
func fillExpiring(b *testing.B, db *storage.DB, n int, now time.Time) {
	b.Helper()
	start, span, life := storage.Micros(now.Add(-120*day)), (120 * day).Microseconds(), (90 * day).Microseconds()
	const cols = `INSERT INTO certificates (serial, issuer_id, profile, requester, names, not_before, not_after,
		status, der, revoked_at, revocation_reason, created_at, updated_at, key_hash) `
	const batch = 250000
	for lo := 1; lo <= n; lo += batch {
		hi := min(lo+batch-1, n)
		rows := fmt.Sprintf(`SELECT g, %d + (g - 1) * CAST(%d AS BIGINT) AS t,
			CASE WHEN g %% 5000 = 7 THEN 'reserved' WHEN g %% 50 = 0 THEN 'revoked' ELSE 'valid' END AS st`, start, span/int64(n))
		var q string
		if db.Dialect() == storage.Postgres {
			q = cols + `SELECT md5('s' || g), 'int', 'tls-server', 'apikey:k', 'host' || g || '.example', t, t + ` + fmt.Sprint(life) + `,
				st, decode(repeat(md5(g::text), 44), 'hex'), CASE WHEN st = 'revoked' THEN t + 1 ELSE 0 END, 0, t, t, sha256(g::text::bytea)
				FROM (` + rows + fmt.Sprintf(` FROM generate_series(%d, %d) g) s`, lo, hi)
		} else {
			q = cols + fmt.Sprintf(`WITH RECURSIVE s(g) AS (SELECT %d UNION ALL SELECT g + 1 FROM s WHERE g < %d), r AS (`, lo, hi) + rows + ` FROM s)
				SELECT lower(hex(randomblob(16))), 'int', 'tls-server', 'apikey:k', 'host' || g || '.example', t, t + ` + fmt.Sprint(life) + `,
				st, randomblob(704), CASE WHEN st = 'revoked' THEN t + 1 ELSE 0 END, 0, t, t, randomblob(32) FROM r`
		}
		if _, err := db.SQL().Exec(q); err != nil {
			b.Fatalf("filling certificates: %v", err)
		}
	}
	if db.Dialect() == storage.Postgres {
		if _, err := db.SQL().Exec(`VACUUM ANALYZE certificates`); err != nil {
			b.Fatal(err)
		}
	}
}
