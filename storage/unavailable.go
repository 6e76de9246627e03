package storage

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"

	"github.com/strongroom-pki/strongroom/core"
)

// Classify marks an error that says the database cannot act now as
// core.KindUnavailable, so front ends answer 503 with Retry-After rather
// than 500: PostgreSQL unreachable, refusing connections, shutting down or
// out of connections, a lost connection, SQLite busy, locked, read-only
// (a file system remounted read-only), full or failing I/O. Text
// PostgreSQL refuses (a NUL byte, bytes that are not UTF-8) is the
// client's: KindMalformed. Any other error is returned as it is.
func Classify(err error) error {
	if err == nil || core.KindOf(err) != core.KindInternal {
		return err
	}
	if badText(err) {
		return core.Wrap(core.KindMalformed, err, "the request holds text that is not UTF-8 or holds a NUL character")
	}
	if !unavailable(err) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// The request's own deadline (server.Options.RequestTimeout).
		return core.Wrap(core.KindUnavailable, err, "the database did not answer in time; retry shortly")
	}
	return core.Wrap(core.KindUnavailable, err, "the database is unavailable; retry shortly")
}

// SQLite primary result codes (the low byte of an extended code).
const (
	sqliteBusy     = 5
	sqliteLocked   = 6
	sqliteReadOnly = 8
	sqliteIOErr    = 10
	sqliteFull     = 13
	sqliteCantOpen = 14
)

// badText reports PostgreSQL refusing text a client sent: a NUL byte
// (22021 character_not_in_repertoire) or bytes that are not UTF-8
// (22021, 22P05 untranslatable_character). SQLite stores such text as
// it is; front ends refuse it first, so both databases answer the same.
func badText(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "22021" || pe.Code == "22P05")
}

func unavailable(err error) bool {
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	var se *sqlite.Error
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), errors.Is(err, driver.ErrBadConn), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, pgconn.ErrConnClosed): // the connection closed under a transaction
		return true
	case errors.As(err, &pe):
		// Class 08 connection exception, 53 insufficient resources, 57P
		// operator intervention (shutdown, cannot connect now).
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "53") || strings.HasPrefix(pe.Code, "57P")
	case errors.As(err, &se):
		switch se.Code() & 0xff {
		case sqliteBusy, sqliteLocked, sqliteReadOnly, sqliteIOErr, sqliteFull, sqliteCantOpen:
			return true
		}
	}
	return false
}
