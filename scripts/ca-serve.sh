# Sourced by the bench scripts: starts a real `ca serve` on a fresh data
# directory in a temporary work dir, with free ports, and waits until it
# answers. Sets work, CA, P1 (HTTPS), P2 (plain HTTP), D (data dir) and pid;
# request logs go to $work/serve.log. The EXIT trap stops the server and
# removes the work dir (KEEP=1 keeps it). CA_BIN names a binary to use
# instead of building one. CA_INIT_ARGS adds arguments to `ca init` (for
# example --database postgres); on_cleanup, if the caller defines it, runs
# after the server has stopped.
work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  declare -F on_cleanup >/dev/null && on_cleanup
  [ "${KEEP:-0}" = 1 ] && echo "data kept in $work" || rm -rf "$work"
}
trap cleanup EXIT

CA=${CA_BIN:-}
if [ -z "$CA" ]; then
  CA=$work/ca
  go build -tags nomsgpack -o "$CA" ./cmd/ca
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P1=$(free_port); P2=$(free_port)
D=$work/data
# shellcheck disable=SC2086
"$CA" init --data "$D" --key-type p256 ${CA_INIT_ARGS:-} --listen-https "127.0.0.1:$P1" --listen-http "127.0.0.1:$P2" >/dev/null
# Request logs go to a file, as a production journal would take them.
"$CA" serve --data "$D" >"$work/serve.out" 2>"$work/serve.log" &
pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$P2/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$P2/healthz" >/dev/null || { echo "ca serve did not start"; cat "$work/serve.log"; exit 1; }
