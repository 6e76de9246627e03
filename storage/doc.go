// Package storage owns everything Strongroom keeps: the SQL repositories
// (SQLite, the embedded default, and PostgreSQL for several nodes) with their
// migrations, and the shared fast state (nonces, caches, rate limits, events)
// in memory or Redis.
//
// One repository implementation serves both databases: queries are written
// once with '?' placeholders in the SQL both dialects accept (ON CONFLICT,
// RETURNING), and DB rebinds them for PostgreSQL. Only the schema differs, so
// each dialect has its own migrations folder (BLOB vs BYTEA and so on).
// Times are stored as UTC Unix microseconds in BIGINT columns, so both
// databases sort and compare them the same way.
//
// storage never decides policy and never sees a private key in the clear: the
// HSM hands it sealed blobs only.
package storage
