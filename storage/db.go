package storage

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver

	"github.com/strongroom-pki/strongroom/core"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// Dialect names a supported database.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is a migrated SQL database of either dialect. It is safe for concurrent
// use.
type DB struct {
	sql     *sql.DB
	dialect Dialect
	// rebound caches '?'→'$n' rewrites for PostgreSQL, keyed by query text.
	rebound syncMap
	// stmts caches prepared statements for SQLite, keyed by query text
	// (modernc's driver otherwise compiles every statement on every call;
	// pgx caches prepared statements per connection by itself). nstmts
	// bounds the cache against queries built at run time.
	stmts  sync.Map
	nstmts atomic.Int32
	// warming holds the queries txStmt is preparing in the background.
	warming sync.Map
	// timeout bounds each transaction (InTx, and the CertWriter's group
	// commits); see SetTimeout.
	timeout time.Duration
}

// DefaultTimeout is how long a transaction may take unless SetTimeout says
// otherwise.
const DefaultTimeout = 10 * time.Second

// SetTimeout bounds each transaction: one that has not committed within d
// is abandoned (rolled back; on PostgreSQL its connection is closed) and
// its callers get a KindUnavailable error, so a database that stops
// answering without closing its connections (a hung server, a network
// that drops packets) costs callers d, not forever. Zero means
// DefaultTimeout. Call it before the DB is used.
func (d *DB) SetTimeout(t time.Duration) {
	if t <= 0 {
		t = DefaultTimeout
	}
	d.timeout = t
}

// maxStmts bounds the prepared-statement cache.
const maxStmts = 512

// stmt returns the cached prepared statement for a SQLite query, preparing
// it on first use, or nil (PostgreSQL, a full cache, or a query that does not
// prepare — the unprepared path then reports its error).
func (d *DB) stmt(ctx context.Context, query string) *sql.Stmt {
	if d.dialect != SQLite {
		return nil
	}
	if v, ok := d.stmts.Load(query); ok {
		return v.(*sql.Stmt)
	}
	if d.nstmts.Load() >= maxStmts {
		return nil
	}
	st, err := d.sql.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	if prev, loaded := d.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt)
	}
	d.nstmts.Add(1)
	return st
}

// txStmt is stmt for a query run inside a transaction: the cached
// statement, or nil, never preparing one there. Preparing on the pool needs
// a second connection while the transaction holds one, and SQLite's write
// lock: with the pool's other connections waiting on that lock (busy
// timeout, 10 s), that deadlocked until the timeout failed them, and the
// transaction's own context could expire meanwhile. A missing statement is
// prepared in the background, once a connection is free, for next time.
func (d *DB) txStmt(query string) *sql.Stmt {
	if d.dialect != SQLite {
		return nil
	}
	if v, ok := d.stmts.Load(query); ok {
		return v.(*sql.Stmt)
	}
	if _, busy := d.warming.LoadOrStore(query, true); !busy && d.nstmts.Load() < maxStmts {
		go func() {
			d.stmt(context.Background(), query)
			d.warming.Delete(query)
		}()
	}
	return nil
}

// Open connects to the database, applies pending migrations and returns it.
// For SQLite, dsn is a file path; the file is created if missing and opened
// in WAL mode with synchronous=FULL: a commit is on disk when it returns,
// across power loss too, as a CA's record of what it signed and its HSM
// keystore must be (NORMAL survives only process crashes). Measured on the
// REST issuance bench: about a fifth fewer certificates/s at concurrency 1
// (an fsync per commit, 0.3 ms on this disk), a few percent at 32 (group
// commit shares it). For
// PostgreSQL, dsn is a pgx connection string or URL.
func Open(ctx context.Context, dialect Dialect, dsn string) (*DB, error) {
	var (
		db  *sql.DB
		err error
	)
	switch dialect {
	case SQLite:
		// Create the file 0600 first: SQLite gives the -wal and -shm files
		// the main file's mode.
		if f, ferr := os.OpenFile(dsn, os.O_RDWR|os.O_CREATE, 0o600); ferr == nil {
			f.Close()
		}
		db, err = sql.Open("sqlite", sqliteDSN(dsn))
		if err == nil {
			// SQLite has one writer at a time; a small pool avoids lock
			// churn while letting readers proceed beside the writer (WAL).
			db.SetMaxOpenConns(max(4, runtime.NumCPU()*2))
			db.SetMaxIdleConns(max(4, runtime.NumCPU()*2))
			db.SetConnMaxIdleTime(0)
		}
	case Postgres:
		db, err = sql.Open("pgx", dsn)
		if err == nil {
			db.SetMaxOpenConns(32)
			db.SetMaxIdleConns(32)
			// pgx prepares each statement once per connection, and
			// PostgreSQL keeps a statement's plan until the table is
			// next analyzed: with autovacuum off, a plan made while the
			// table was tiny would last as long as the connection. New
			// connections every half hour bound that.
			db.SetConnMaxLifetime(30 * time.Minute)
		}
	default:
		return nil, fmt.Errorf("storage: unknown database dialect %q (want sqlite or postgres)", dialect)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s database: %w", dialect, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting to %s database: %w", dialect, err)
	}
	d := &DB{sql: db, dialect: dialect, timeout: DefaultTimeout}
	if err := d.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return d, nil
}

func sqliteDSN(path string) string {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	// Write transactions take the lock at BEGIN, so two writers never
	// deadlock upgrading read locks.
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// pgLockNotAvailable is PostgreSQL's lock_not_available: a migration's
// lock_timeout ran out.
const pgLockNotAvailable = "55P03"

func (d *DB) migrate(ctx context.Context) error {
	dir, gd := "migrations/sqlite", goose.DialectSQLite3
	if d.dialect == Postgres {
		dir, gd = "migrations/postgres", goose.DialectPostgres
	}
	sub, err := fs.Sub(migrations, dir)
	if err != nil {
		return fmt.Errorf("reading embedded migrations: %w", err)
	}
	var opts []goose.ProviderOption
	if d.dialect == Postgres {
		locker, err := d.migrationLock(ctx)
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gd, d.sql, sub, opts...)
	if err != nil {
		return fmt.Errorf("preparing migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == pgLockNotAvailable {
			return fmt.Errorf("migrating %s database: %w: another transaction holds a table this release changes (a backup or a long report?), "+
				"and the migration gave up rather than stall every node's queries behind it; start again once that transaction ends", d.dialect, err)
		}
		return fmt.Errorf("migrating %s database: %w", d.dialect, err)
	}
	return nil
}

// migrationLock is a PostgreSQL advisory lock held while migrating, so
// nodes started together (an orchestrator restarting every node on a new
// release) apply a migration once: without it the second failed with
// "column already exists" and exited. The lock is per schema, so clusters
// (and tests) in other schemas of the database do not wait for each other;
// a node waits at most five minutes, polling every second.
func (d *DB) migrationLock(ctx context.Context) (lock.SessionLocker, error) {
	var schema string
	if err := d.sql.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return nil, fmt.Errorf("reading the schema to lock for migrations: %w", err)
	}
	h := fnv.New64a()
	h.Write([]byte("strongroom migrations " + schema))
	return lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64()>>1)), lock.WithLockTimeout(1, 300))
}

// Close closes the prepared statements and the connection pool.
func (d *DB) Close() error {
	d.stmts.Range(func(k, v any) bool {
		v.(*sql.Stmt).Close()
		d.stmts.Delete(k)
		return true
	})
	return d.sql.Close()
}

// Dialect reports which database this is.
func (d *DB) Dialect() Dialect { return d.dialect }

// Ping checks the database answers (used by /readyz).
func (d *DB) Ping(ctx context.Context) error { return d.sql.PingContext(ctx) }

// SQL exposes the pool for tests that must tamper with rows directly.
func (d *DB) SQL() *sql.DB { return d.sql }

// q rewrites a query written with '?' placeholders for the dialect.
func (d *DB) q(query string) string {
	if d.dialect != Postgres {
		return query
	}
	if s, ok := d.rebound.Load(query); ok {
		return s
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	s := b.String()
	d.rebound.Store(query, s)
	return s
}

// Exec, Query and QueryRow run a '?'-placeholder query on the pool.
func (d *DB) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := d.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return d.sql.ExecContext(ctx, d.q(query), args...)
}

func (d *DB) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := d.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return d.sql.QueryContext(ctx, d.q(query), args...)
}

func (d *DB) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := d.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return d.sql.QueryRowContext(ctx, d.q(query), args...)
}

// Tx is a transaction with the same '?'-placeholder helpers as DB.
type Tx struct {
	tx *sql.Tx
	d  *DB
}

func (t *Tx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.d.txStmt(query); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, t.d.q(query), args...)
}

func (t *Tx) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.d.txStmt(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, t.d.q(query), args...)
}

func (t *Tx) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.d.txStmt(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, t.d.q(query), args...)
}

// InTx runs fn in a transaction, committing if it returns nil and rolling
// back otherwise. The transaction ends with ctx or after the DB's timeout
// (SetTimeout), whichever is first.
func (d *DB) InTx(ctx context.Context, fn func(*Tx) error) error {
	tctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	err := d.inTx(tctx, fn)
	if err != nil && ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
		return d.timedOut(err)
	}
	return err
}

func (d *DB) inTx(ctx context.Context, fn func(*Tx) error) error {
	tx, err := d.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	if err := fn(&Tx{tx: tx, d: d}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing transaction: %w", err)
	}
	return nil
}

// timedOut is err, from a transaction that outlived the DB's timeout, as
// the database not answering (503): whatever the driver said (a cancelled
// statement, a closed connection, a finished transaction) follows from it.
func (d *DB) timedOut(err error) error {
	return core.Wrap(core.KindUnavailable, err, fmt.Sprintf("the database did not answer within %s; retry shortly", d.timeout))
}

// notFound maps sql.ErrNoRows to core.ErrNotFound, wrapping other errors
// with what was being done.
func notFound(err error, doing string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return core.ErrNotFound
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// Micros and FromMicros convert times to and from the stored form: UTC Unix
// microseconds. The zero time is stored as 0.
func Micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UTC().UnixMicro()
}

func FromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// querier is what DB and Tx share, so one read runs in or out of a
// transaction.
type querier interface {
	Query(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// scanner is a row: *sql.Row or *sql.Rows.
type scanner interface{ Scan(...any) error }

// queryAll runs query and scans every row with scan; errors say what was
// being done.
func queryAll[T any](ctx context.Context, q querier, doing, query string, args []any, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", doing, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", doing, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", doing, err)
	}
	return out, nil
}
