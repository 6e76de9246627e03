#!/usr/bin/env bash
# REST issuance against a real `ca serve` (fresh data dir, embedded HSM,
# SQLite on disk, P-256 intermediate, lint on), driven by wrk in its own
# process over HTTPS keep-alive connections at concurrency 1, 8 and 32,
# beside the raw x509.CreateCertificate rate with a P-256 key on both cores
# from the Go bench in the same run. Every 2xx must be a certificate stored
# valid in the database: the script counts them afterwards. The CA and wrk
# share the machine's cores.
#
# Usage: scripts/bench-issue.sh [DURATION]   (default 10s per concurrency)
# Environment: CA_BIN (default: build to a temp dir), KEEP=1 keeps the data dir.
# STORE=postgres runs the node as one of several would: certificates in
# PostgreSQL (a fresh schema in STRONGROOM_TEST_POSTGRES, default the test
# database on 127.0.0.1, dropped afterwards) and caches and events in Redis
# (STRONGROOM_TEST_REDIS, default 127.0.0.1:6379), both on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10s}
STORE=${STORE:-sqlite}
./scripts/install-test-deps.sh wrk openssl curl python3 >/dev/null
if [ "$STORE" = postgres ]; then
  ./scripts/install-test-deps.sh postgresql-client >/dev/null
  PG=${STRONGROOM_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
  schema=bench_$$_$RANDOM
  psql -q "$PG" -c "CREATE SCHEMA $schema" || { echo "STORE=postgres needs PostgreSQL at $PG"; exit 1; }
  on_cleanup() { psql -q "$PG" -c "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1 || true; }
  case $PG in *\?*) sep='&' ;; *) sep='?' ;; esac
  export STRONGROOM_DATABASE_DSN="$PG${sep}search_path=$schema"
  CA_INIT_ARGS="--database postgres --redis ${STRONGROOM_TEST_REDIS:-127.0.0.1:6379}"
fi

# shellcheck source=ca-serve.sh
. ./scripts/ca-serve.sh

# The README's request: an openssl CSR in, a PEM chain out.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench.localhost \
  -addext subjectAltName=DNS:bench.localhost -keyout "$work/leaf.key" -out "$work/leaf.csr" 2>/dev/null
url="https://localhost:$P1/api/v1/certificates"
for _ in $(seq 50); do
  sed 's/^/Authorization: Bearer /' "$D/admin.key" | curl -sf --cacert "$D/root.pem" -H @- \
    -H "Content-Type: application/pkcs10" -H "Accept: application/pem-certificate-chain" \
    --data-binary @"$work/leaf.csr" "$url" -o "$work/chain.pem" && break
  sleep 0.2
done
openssl verify -CAfile "$D/root.pem" -untrusted "$D/intermediate.pem" "$work/chain.pem" >/dev/null
python3 - "$work/leaf.csr" "$D/admin.key" >"$work/post.lua" <<'PY'
import json, sys
csr, key = open(sys.argv[1]).read(), open(sys.argv[2]).read().strip()
print('wrk.method = "POST"')
print('wrk.body = %s' % json.dumps(csr))
print('wrk.headers["Content-Type"] = "application/pkcs10"')
print('wrk.headers["Accept"] = "application/pem-certificate-chain"')
print('wrk.headers["Authorization"] = %s' % json.dumps("Bearer " + key))
PY

valid() {
  if [ "$STORE" = postgres ]; then
    PGOPTIONS="-csearch_path=$schema" psql -qtA "$PG" -c "SELECT COUNT(*) FROM certificates WHERE status = 'valid'"
    return
  fi
  python3 - "$D/strongroom.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
print(db.execute("SELECT COUNT(*) FROM certificates WHERE status = 'valid'").fetchone()[0])
PY
}
if [ "$STORE" = sqlite ]; then
  [ -f "$D/strongroom.db" ] || { echo "no SQLite database at $D/strongroom.db"; ls "$D"; exit 1; }
fi

wrk -t2 -c8 -d2s -s "$work/post.lua" "$url" >/dev/null # warm up
declare -A rate
for c in 1 8 32; do
  before=$(valid)
  out=$(wrk -t"$(( c < 2 ? 1 : 2 ))" -c"$c" -d"$DUR" -s "$work/post.lua" "$url")
  echo "$out" | sed "s/^/  wrk c=$c: /" | grep -E 'Latency|Requests/sec|requests in|Non-2xx|Socket errors'
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  [ -n "$non2xx" ] && { echo "wrk saw $non2xx non-2xx responses"; tail -5 "$work/serve.log"; exit 1; }
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  stored=$(( $(valid) - before ))
  # wrk stops the clock with requests still in flight; each was answered or
  # cut, never stored twice.
  if [ "$stored" -lt "$n" ] || [ "$stored" -gt $(( n + c )) ]; then
    echo "wrk counted $n answers but $stored certificates were stored"; exit 1
  fi
  rate[$c]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
done
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""

raw=$(go test -tags nomsgpack -run '^$' -bench 'IssueHTTP/raw' -benchtime 20000x ./api |
  awk '/raw-CreateCertificate/ {for (i=1;i<=NF;i++) if ($(i+1)=="certs/s") print $i}')
echo
for c in 1 8 32; do
  printf 'REST issuance vs ca serve over HTTPS (wrk, separate process, %s), c=%-2s: %6.0f certs/s = %4.1f%% of raw\n' \
    "$STORE" "$c" "${rate[$c]}" "$(awk -v a="${rate[$c]}" -v b="$raw" 'BEGIN {print 100*a/b}')"
done
printf 'raw x509.CreateCertificate, P-256, both cores, same run:           %6.0f certs/s\n' "$raw"
