#!/usr/bin/env bash
# Upload and download throughput of one large envelope through a release build, as
# docs/performance.md ("Large blobs") reports it. A real age envelope (Debian's `age`), sent
# and fetched by curl (which streams from and to files), signed with openssl; the server's peak
# RSS from /proc.
#
#   tools/bench-large.sh [SIZE_MIB]            # file:// store in a temporary directory
#   tools/bench-large.sh [SIZE_MIB] s3         # S3 on a moto_server started here
#
# Needs: target/release/data-vault (cargo build --release), age, curl, openssl, python3; for
# s3, moto_server (pip install 'moto[server]') and boto3.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
store=${2:-file}
bin=${DATA_VAULT_BIN:-target/release/data-vault}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

port=$(free_port)
metrics=$(free_port)
cat > "$work/vault.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
metrics_listen = "127.0.0.1:$metrics"
[storage]
database_url = "sqlite://$work/vault.db"
[keys]
master_key_file = "$work/master.key"
[audit]
log_key_file = "$work/log.key"
[rate_limit]
enabled = false
EOF
if [ "$store" = s3 ]; then
  s3port=$(free_port)
  moto_server -H 127.0.0.1 -p "$s3port" >"$work/moto.log" 2>&1 &
  pids+=($!)
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$s3port/" >/dev/null 2>&1 && break; sleep 0.2; done
  python3 -c "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:$s3port').create_bucket(Bucket='bench')"
  printf '[object_store]\nurl = "s3://bench"\nendpoint = "http://127.0.0.1:%s"\nregion = "us-east-1"\n' "$s3port" >> "$work/vault.toml"
fi
export DATA_VAULT_CONFIG="$work/vault.toml"

"$bin" serve >"$work/server.log" 2>&1 &
server=$!
pids+=("$server")
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
secret=$("$bin" admin client create bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')

age-keygen -o "$work/id.txt" 2>/dev/null
recipient=$(age-keygen -y "$work/id.txt")
head -c $((size_mib * 1048576)) /dev/zero | age -r "$recipient" > "$work/envelope.age"
hash=$(sha256sum "$work/envelope.age" | cut -d' ' -f1)

# Prints the HMAC headers (DESIGN §6) of METHOD PATH QUERY BODY_SHA256 as curl -H arguments.
sign() {
  local ts nonce sig
  ts=$(date +%s)
  nonce=$(openssl rand -hex 16)
  sig=$(printf '%s\n%s\n%s\n%s\n%s\n%s\n%s' "$1" "$2" "$3" bench "$ts" "$nonce" "$4" \
        | openssl dgst -sha256 -hmac "$secret" -hex | awk '{print $NF}')
  printf -- '-H\nX-VE-Principal: bench\n-H\nX-VE-Timestamp: %s\n-H\nX-VE-Nonce: %s\n-H\nX-VE-Content-SHA256: %s\n-H\nX-VE-Signature: %s\n' \
    "$ts" "$nonce" "$4" "$sig"
}

mapfile -t headers < <(sign POST /api/v1/vault/blobs scope=veid "$hash")
up=$(curl -sS -X POST -T "$work/envelope.age" -H 'Content-Type: application/octet-stream' \
      "${headers[@]}" -o "$work/created.json" -w '%{http_code} %{time_total}' \
      "http://127.0.0.1:$port/api/v1/vault/blobs?scope=veid")
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metadata"]["id"])' "$work/created.json")
empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
mapfile -t headers < <(sign GET "/api/v1/vault/blobs/$id" "" "$empty")
down=$(curl -sS -H 'Accept: application/octet-stream' "${headers[@]}" -o "$work/fetched.age" \
        -w '%{http_code} %{time_total}' "http://127.0.0.1:$port/api/v1/vault/blobs/$id")
cmp "$work/envelope.age" "$work/fetched.age"
age -d -i "$work/id.txt" "$work/fetched.age" | cmp - <(head -c $((size_mib * 1048576)) /dev/zero)
bytes=$(stat -c %s "$work/envelope.age")
peak=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
python3 - "$bytes" "$up" "$down" "$peak" "$store" <<'PY'
import sys
size, up, down, peak, store = int(sys.argv[1]), sys.argv[2].split(), sys.argv[3].split(), int(sys.argv[4]), sys.argv[5]
mib = size / 1048576
assert up[0] == "201" and down[0] == "200", (up, down)
print(f"{store}: {mib:.0f} MiB  upload {mib/float(up[1]):.0f} MiB/s ({float(up[1]):.2f} s)  "
      f"download {mib/float(down[1]):.0f} MiB/s ({float(down[1]):.2f} s)  server peak RSS {peak/1024:.0f} MiB")
PY
