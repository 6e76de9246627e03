package main

import (
	"os"
	"runtime/debug"
)

// serveGCPercent is the garbage collector's target `ca serve` runs with
// when GOGC is not set. Issuance allocates about 140 KB per certificate
// (zlint's parse and lints, x509 encoding, JSON), so at Go's default of 100
// the collector ran often enough to take about a tenth of the CPU. 400 lets
// the heap grow to five times what is live between collections: `make
// bench`'s REST issuance at c=32 went from about 2,100 to 2,550 certs/s,
// the server's resident memory under that load from 65 to 85 MB. GOGC in
// the environment (a number or "off", as for any Go program) wins, and
// GOMEMLIMIT caps the heap either way.
const serveGCPercent = 400

// tuneGC applies serveGCPercent unless GOGC is set, and says whether it did.
func tuneGC() bool {
	if _, set := os.LookupEnv("GOGC"); set {
		return false
	}
	debug.SetGCPercent(serveGCPercent)
	return true
}
