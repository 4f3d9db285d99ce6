# Sourced by the benchmark scripts in tools/: starts a fresh vault for them.
#
#   start_vault BIN DIR PORT [WRAPPER...]
#
# Runs `BIN serve` in DIR (a fresh embedded SQLite vault there), on PORT and PORT + 1 (metrics),
# with rate limits off, optionally under WRAPPER (e.g. valgrind); waits until it is ready; then
# exports DATA_VAULT_URL, DATA_VAULT_PRINCIPAL and DATA_VAULT_SECRET for an HMAC client `bench`,
# writes a wallet key to DIR/wallet.key and sets SERVER to the server's process id (the
# caller kills it). Other DATA_VAULT_* variables set by the caller reach the server.
start_vault() {
    local bin=$1 dir=$2 port=$3
    shift 3
    export DATA_VAULT_SERVER__LISTEN=127.0.0.1:$port
    export DATA_VAULT_SERVER__METRICS_LISTEN=127.0.0.1:$((port + 1))
    export DATA_VAULT_URL=http://127.0.0.1:$port
    export DATA_VAULT_RATE_LIMIT__ENABLED=false
    (cd "$dir" && exec "$@" "$bin" serve >"$dir/server.log" 2>&1) &
    SERVER=$!
    # Up to five minutes: under valgrind start-up takes tens of seconds.
    for _ in $(seq 600); do
        curl -sf "$DATA_VAULT_URL/readyz" >/dev/null && break
        sleep 0.5
    done
    curl -sf "$DATA_VAULT_URL/readyz" >/dev/null || { echo "server did not start" >&2; return 1; }
    export DATA_VAULT_PRINCIPAL=bench
    DATA_VAULT_SECRET=$(cd "$dir" && "$bin" admin client create bench --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
    export DATA_VAULT_SECRET
    openssl rand -hex 32 >"$dir/wallet.key"
}
