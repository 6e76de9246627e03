package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// On PostgreSQL, each statement of a transaction is a network round trip,
// and the CertWriter runs its batches one after another: with three or four
// statements per issuance, the writer spent its time waiting for the
// server, and on a busy machine (where the server's process waits for a
// core) that wait capped issuance for the whole node. commitPipelined sends
// a batch's statements in one round trip instead (pgx's pipeline mode):
// BEGIN, the statements, COMMIT — three round trips per batch, whatever its
// size.
//
// The operations are the same closures the sequential path runs. They are
// first run against a recorder that answers every statement as the common
// case would — no error, one row affected — and collects the statements.
// An operation's control flow depends only on those answers, so when the
// server's real answers match them (checked statement by statement), the
// recorded statements are exactly what the sequential path would have run,
// with the same outcomes. When any answer differs (a serial taken, a row
// not in the expected state, an error), the pipelined transaction is
// rolled back and the batch runs sequentially, which gives each operation
// its own true outcome. Those cases do not happen in normal issuance.

// errPipelineDiverged means the server's answers differed from the
// recorder's assumptions; the transaction was rolled back.
var errPipelineDiverged = errors.New("pipelined batch diverged from the common case")

// commitPipelined runs batch in one pipelined transaction. It returns
// errPipelineDiverged (nothing committed) when the batch must run
// sequentially; any other error is the transaction's, for every caller.
func (w *CertWriter) commitPipelined(ctx context.Context, batch []*certOp) error {
	rec := &recorder{}
	for _, op := range batch {
		if op.err = op.run(ctx, rec); op.err != nil {
			return errPipelineDiverged
		}
	}
	conn, err := w.DB.sql.Conn(ctx)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return errPipelineDiverged
		}
		tx, err := sc.Conn().Begin(ctx)
		if err != nil {
			return fmt.Errorf("beginning transaction: %w", err)
		}
		b := &pgx.Batch{}
		for _, s := range rec.stmts {
			b.Queue(w.DB.q(s.query), s.args...)
		}
		br := tx.SendBatch(ctx, b)
		diverged := false
		for _, s := range rec.stmts {
			tag, err := br.Exec()
			if err != nil || s.counted && tag.RowsAffected() != 1 {
				diverged = true
				break
			}
		}
		if err := br.Close(); err != nil {
			diverged = true
		}
		if diverged {
			if err := tx.Rollback(ctx); err != nil {
				// Never hand the pool a connection that may still be
				// inside this transaction.
				_ = sc.Conn().Close(ctx)
			}
			return errPipelineDiverged
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("committing transaction: %w", err)
		}
		return nil
	})
}

// recorder is the execer the operations run against to list their
// statements.
type recorder struct{ stmts []*recordedStmt }

type recordedStmt struct {
	query string
	args  []any
	// counted: the operation asked how many rows it affected, and was told
	// one; the server must say the same.
	counted bool
}

func (r *recorder) Exec(_ context.Context, query string, args ...any) (sql.Result, error) {
	s := &recordedStmt{query: query, args: args}
	r.stmts = append(r.stmts, s)
	return assumedResult{s}, nil
}

// assumedResult is the common case's answer: one row affected.
type assumedResult struct{ s *recordedStmt }

func (a assumedResult) RowsAffected() (int64, error) {
	a.s.counted = true
	return 1, nil
}

func (assumedResult) LastInsertId() (int64, error) {
	return 0, errors.New("no insert ids in a pipelined batch")
}
