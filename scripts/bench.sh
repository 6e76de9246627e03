#!/usr/bin/env bash
# make bench: each benchmark family prints its figure beside the reference it
# is measured against in the same run (see the benchmark's own output lines).
set -euo pipefail
run() { echo; echo "== $1"; shift; go test -tags nomsgpack -run '^$' "$@"; }
run "HSM signing vs direct Go crypto (1 and 2 goroutines)" -bench 'Sign' -benchtime 2s -cpu 1,2 ./hsm
# The issue's reference: our HSM signing P-256 with two goroutines against
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

# CRL (issue 5): build and sign 100,000 and 1,000,000 entries with the
# streaming encoder, beside crypto/x509.CreateRevocationList at 100,000.
run "CRL: streaming encoder (100k, 1M entries) beside stdlib CreateRevocationList (100k): s/crl, peak-MiB" \
  -bench 'CRL' -benchtime 3x ./crl

# Issuance (issue 3): REST API over TLS at concurrency 1, 8, 32, linting on,
# every certificate stored in SQLite, beside raw x509.CreateCertificate with
# the same key in the same run.
run "REST issuance over HTTPS (P-256 intermediate, lint on, SQLite) at c=1/8/32 beside raw x509.CreateCertificate" \
  -bench 'IssueHTTP' -benchtime 3000x -v ./api
echo; echo "== REST issuance against a real ca serve over HTTPS (wrk in a separate process) at c=1/8/32 beside raw x509.CreateCertificate"
issue_out=$(mktemp); steps_out=$(mktemp)
trap 'rm -f "$issue_out" "$steps_out"' EXIT
./scripts/bench-issue.sh 10s | tee "$issue_out"
echo; echo "== The same with PostgreSQL and Redis on this machine (as one node of several runs)"
STORE=postgres ./scripts/bench-issue.sh 10s
# The ceiling: the issue's required steps alone (CSR check, build, throwaway
# lint copy, zlint, HSM signature and its check) on both cores, no storage
# or HTTP; the same without the zlint call (the bound if linting were free);
# and the pipeline with storage; beside raw CreateCertificate.
run "Issuance without HTTP: required steps only, the same without zlint, and Issue with SQLite (c=32), beside raw x509.CreateCertificate" \
  -bench 'IssueParallel' -benchtime 4000x ./ca | tee "$steps_out"
# The issue's goal (50% of raw) is out of reach by construction: the steps
# alone are under it. This is the figure a restated goal would use: ca
# serve at c=32 against the required steps' own ceiling, same run.
serve=$(sed -n 's/.*sqlite), c=32: *\([0-9]*\) certs\/s.*/\1/p' "$issue_out")
steps=$(awk '/required-steps-only/ {for (i = 2; i <= NF; i++) if ($i == "certs/s") print $(i-1)}' "$steps_out")
if [ -n "$serve" ] && [ -n "$steps" ]; then
  echo; echo "ca serve over HTTPS at c=32 (SQLite) against the required steps' ceiling, same run: $serve / $steps certs/s = $(( 100 * serve / steps ))%"
fi

# ACME (issue 4): complete orders (new order, http-01 validated for real over
# loopback, finalize, download) at concurrency 8, beside REST issuance and
# raw x509.CreateCertificate in the same run.
run "ACME complete orders at c=8 beside REST issuance and raw x509.CreateCertificate" \
  -bench 'Orders' -benchtime 10s -v ./acme
