#!/usr/bin/env bash
# Wallet-signed GET against HMAC GET, side by side on one server (DESIGN §11: within 15 %):
# a fresh embedded SQLite vault, then ROUNDS rounds of `loadgen --scenario get` at 64
# connections for SECS seconds, HMAC then wallet, alternating so that both see the same
# neighbours. Prints one line per run: throughput, latency, the server's CPU time per request
# (user + system, from /proc; less sensitive to the neighbours than throughput) and the load
# average at its start.
#
# Usage: tools/wallet-vs-hmac.sh [BINARY] [ROUNDS] [SECS]
#   BINARY defaults to target/release/data-vault; ROUNDS 3; SECS 10.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

BIN=$(realpath "${1:-target/release/data-vault}")
ROUNDS=${2:-3}
SECS=${3:-10}
WORK=$(mktemp -d)
PORT=${PORT:-18580}
cd "$WORK"

# shellcheck source=tools/bench-vault.sh
source "$HERE/bench-vault.sh"
trap 'kill "${SERVER:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
start_vault "$BIN" "$WORK" "$PORT"

# The server's CPU time so far, in clock ticks (utime + stime).
ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }

run() {
    local label=$1
    shift
    local load before
    load=$(cut -d' ' -f1 /proc/loadavg)
    # The CPU time includes seeding 300 blobs (one at a time, under 2 % of a run's).
    before=$(ticks)
    "$BIN" loadgen --json --scenario get --concurrency 64 --duration "$SECS" --blobs 300 "$@" \
        2>/dev/null >"$WORK/run.json"
    python3 - "$WORK/run.json" "$label" "$load" "$before" "$(ticks)" "$(getconf CLK_TCK)" <<'PY'
import json, sys
path, label, load, before, after, hz = sys.argv[1:]
r = json.load(open(path)); l = r["latency_ms"]
cpu_us = (int(after) - int(before)) / int(hz) * 1e6 / max(r["requests"], 1)
print(f"{label} {r['requests_per_second']:>7.0f} req/s  p50 {l['p50']:6.2f}  p99 {l['p99']:6.2f} ms"
      f"  server CPU {cpu_us:5.0f} us/request  ok {r['ok']}/{r['requests']}"
      f"  transport errors {r['transport_errors']}  load {load}")
PY
}

for round in $(seq "$ROUNDS"); do
    run "round $round hmac  " 
    run "round $round wallet" --wallet-key-file "$WORK/wallet.key"
done
