#!/usr/bin/env bash
# make bench: each benchmark family prints its figure beside the reference it
# is measured against in the same run (see the benchmark's own output lines).
set -euo pipefail
run() { echo; echo "== $1"; shift; go test -tags nomsgpack -run '^$' "$@"; }
run "HSM signing vs direct Go crypto (1 and 2 goroutines)" -bench 'Sign' -benchtime 2s -cpu 1,2 ./hsm
