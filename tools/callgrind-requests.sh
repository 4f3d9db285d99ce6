#!/usr/bin/env bash
# Instructions per request, which the machine's noise does not change: runs a release
# `data-vault serve` under `valgrind --tool=callgrind` on a fresh embedded SQLite vault, drives
# a fixed workload with `data-vault loadgen`, and dumps callgrind's counters after each phase,
# so each phase's instructions are in a file of their own:
#
#   put          PUTS PUTs at 16 connections (HMAC)
#   hmac-seed    the seeding of the HMAC GET run: SEED PUTs, one at a time
#   hmac-get     the same seeding, then GETS GETs at 16 connections (HMAC)
#   wallet-seed  as hmac-seed, signed by a wallet
#   wallet-get   as hmac-get, signed by a wallet
#
# Per PUT = put / PUTS; per GET = (hmac-get - hmac-seed) / GETS (the seeding cancels out), the
# same for wallet GETs. Start-up, client creation and idle time fall into other dumps.
# Background work that runs on a timer (the rotation poll every 2 s) still lands in the phases;
# under valgrind a phase takes tens of seconds, so it is a small share, not zero.
#
# Usage: tools/callgrind-requests.sh [BINARY] [GETS] [PUTS] [SEED]
#   BINARY defaults to target/release/data-vault; GETS 2000, PUTS 1000, SEED 200 (the figures divide by the requests each phase really made).
# Output: the per-request figures, and the callgrind files in $OUT (default: a fresh temp dir)
# for `callgrind_annotate $OUT/callgrind.out.<pid>.<n>`.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

BIN=$(realpath "${1:-target/release/data-vault}")
GETS=${2:-2000}
PUTS=${3:-1000}
SEED=${4:-200}
OUT=${OUT:-$(mktemp -d)}
PORT=${PORT:-18480}
mkdir -p "$OUT"
cd "$OUT"

# Keep timed background passes out of the phases: the periodic audit verification runs once
# at start-up and then not for an hour; the retention sweeper is off.
export DATA_VAULT_AUDIT__VERIFY_INTERVAL_SECS=3600
export DATA_VAULT_RETENTION__SWEEP_INTERVAL_SECS=0
# valgrind runs the server tens of times slower; give requests time.
export DATA_VAULT_SERVER__REQUEST_TIMEOUT_SECS=300

# shellcheck source=tools/bench-vault.sh
source "$HERE/bench-vault.sh"
trap 'kill "${SERVER:-}" 2>/dev/null || true' EXIT
start_vault "$BIN" "$OUT" "$PORT" valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.%p"

dump() { callgrind_control --dump="$1" "$SERVER" >/dev/null 2>&1; }
# A day's --duration: under valgrind on a busy machine the default 30 s may end a phase early.
load() { "$BIN" loadgen --json --duration 86400 "$@" >>"$OUT/loadgen.jsonl"; }

dump setup
load --scenario put --requests "$PUTS" --concurrency 16
dump put
load --scenario get --blobs "$SEED" --requests 0 --concurrency 16
dump hmac-seed
load --scenario get --blobs "$SEED" --requests "$GETS" --concurrency 16
dump hmac-get
load --wallet-key-file "$OUT/wallet.key" --scenario get --blobs "$SEED" --requests 0 --concurrency 16
dump wallet-seed
load --wallet-key-file "$OUT/wallet.key" --scenario get --blobs "$SEED" --requests "$GETS" --concurrency 16
dump wallet-get

kill "$SERVER"
wait "$SERVER" 2>/dev/null || true
trap - EXIT

python3 - "$OUT" <<'EOF'
import glob, json, re, sys
out = sys.argv[1]
totals = {}
for path in glob.glob(f"{out}/callgrind.out.*"):
    text = open(path, errors="replace").read()
    trigger = re.search(r"^desc: Trigger: dump (\S+)", text, re.M)
    total = re.search(r"^summary: (\d+)", text, re.M)
    if trigger and total:
        totals[trigger.group(1)] = (int(total.group(1)), path)
# The loadgen runs, in the order of the phases; divide by the requests each really made.
runs = [json.loads(line) for line in open(f"{out}/loadgen.jsonl")]
for run in runs:
    print(f"  loadgen {run['scenario']}: {run['requests']} requests, {run['ok']} ok, "
          f"{run['transport_errors']} transport errors")
puts, hmac_gets, wallet_gets = runs[0]["requests"], runs[2]["requests"], runs[4]["requests"]
def ir(name):
    return totals[name][0]
print(f"files in {out}")
for name, (n, path) in sorted(totals.items(), key=lambda kv: kv[1][1]):
    print(f"  {name:12} {n:>16,} Ir  {path}")
print(f"instructions per PUT (16 connections):        {ir('put') / puts:>12,.0f}")
print(f"instructions per HMAC GET (16 connections):   {(ir('hmac-get') - ir('hmac-seed')) / hmac_gets:>12,.0f}")
print(f"instructions per wallet GET (16 connections): {(ir('wallet-get') - ir('wallet-seed')) / wallet_gets:>12,.0f}")
EOF
