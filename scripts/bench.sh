#!/usr/bin/env bash
# make bench: each benchmark family prints its figure beside the reference it
# is measured against in the same run (see the benchmark's own output lines).
set -euo pipefail
run() { echo; echo "== $1"; shift; go test -tags nomsgpack -run '^$' "$@"; }
run "HSM signing vs direct Go crypto (1 and 2 goroutines)" -bench 'Sign' -benchtime 2s -cpu 1,2 ./hsm
# The reference: our HSM signing P-256 with two goroutines against
# SoftHSMv2 through PKCS#11 (needs cgo and Debian's softhsm2), same run.
./scripts/install-test-deps.sh softhsm2
echo; echo "== HSM P-256 signing vs SoftHSMv2 over PKCS#11 (1 and 2 goroutines; ratio printed)"
go test -tags softhsm -run '^$' -bench 'Sign.*p256|SoftHSM' -cpu 1,2 ./hsm

# OCSP (issue 5): in-process cached and fresh GETs at concurrency 32 beside raw
# x/crypto/ocsp.CreateResponse; then wrk against a real ca serve.
run "OCSP in-process: cached GET, fresh GET, raw CreateResponse (concurrency 32; includes the Go client's cost)" \
  -bench 'OCSP|CachedGETHandler' -benchtime 100000x ./ocsp
echo; echo "== OCSP cached GET against ca serve (wrk in a separate process)"
./scripts/bench-ocsp.sh 10s
