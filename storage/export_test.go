package storage

import "time"

// PipelineCounts returns how many PostgreSQL batches w committed pipelined
// and how many fell back to running sequentially.
func PipelineCounts(w *CertWriter) (pipelined, diverged int64) {
	return w.pipelined.Load(), w.diverged.Load()
}

// SetSubscribeIdle sets how long a subscription may stay silent before it
// is pinged, and returns a function that restores it.
func SetSubscribeIdle(d time.Duration) (restore func()) {
	old := subscribeIdle
	subscribeIdle = d
	return func() { subscribeIdle = old }
}

// SetKeepScan sets how many rows a filtered listing reads per call and per
// query, and returns a function that restores them.
func SetKeepScan(scan, page int) (restore func()) {
	oldScan, oldPage := keepScan, keepPage
	keepScan, keepPage = scan, page
	return func() { keepScan, keepPage = oldScan, oldPage }
}

// BlockedCertsQuery is the query RevokeBlockedKeys reads with.
const BlockedCertsQuery = blockedCertsQuery

// CountExpiringQuery is the statement CountExpiring counts n slices with.
func CountExpiringQuery(dialect Dialect, n int) string { return countExpiringQuery(dialect, n) }
