#!/usr/bin/env bash
# Benchmark: full chain (loadgen -> pipelock -> egress -> echo-origin, TLS on both
# legs) vs direct (loadgen -> echo-origin). Release builds, loopback only.
#   crates/egress/bench/run.sh [SECONDS_PER_RUN]   (default 5)
# Prints a markdown table. See crates/egress/BENCH.md.
set -euo pipefail
SECS="${1:-5}"
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$ROOT"
cargo build --release -q -p egress -p pipelock -p echo-origin -p loadgen
T="$ROOT/target/release"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_line() { # file prefix -> first line starting with prefix
  for _ in $(seq 1 300); do
    if grep -q "^$2" "$1" 2>/dev/null; then grep -m1 "^$2" "$1"; return 0; fi
    sleep 0.1
  done
  echo "timeout waiting for $2 in $1" >&2; cat "$1" >&2 || true; exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# origin
"$T/echo-origin" --tls-dir "$WORK/origin-tls" >"$WORK/origin.out" 2>"$WORK/origin.log" &
PIDS+=($!)
OLINE="$(wait_line "$WORK/origin.out" http=)"
OPORT="${OLINE##*https=127.0.0.1:}"
OHTTP="$(sed -E 's/.*http=127\.0\.0\.1:([0-9]+).*/\1/' <<<"${OLINE%% *}")"
ORIGIN_CA="$WORK/origin-tls/ca.crt"

# live config: localhost is an injecting route (bearer, scrubbed responses);
# 127.0.0.1 (address line) is allowed without a route (no injection, no scrub)
mkdir -p "$WORK/cfg"
cat >"$WORK/cfg/routes.yaml" <<YAML
routes:
  - host: "localhost:*"
    auth: {scheme: bearer, token_env: BENCH_TOKEN}
YAML
printf '127.0.0.1/32\n' >"$WORK/cfg/allowlist"

BENCH_TOKEN="bench-$(date +%s%N)-secret" "$T/egress" --listen 127.0.0.1:0 --config-dir "$WORK/cfg" \
  --upstream-ca "$ORIGIN_CA" --resolve localhost=127.0.0.1 >"$WORK/egress.out" 2>"$WORK/egress.log" &
PIDS+=($!)
ELINE="$(wait_line "$WORK/egress.out" listening=)"
EADDR="${ELINE#listening=}"

"$T/pipelock" ca init --out "$WORK/plca" >/dev/null
PPORT="$(free_port)"
RUST_LOG=warn "$T/pipelock" --listen "127.0.0.1:$PPORT" --config-dir "$WORK/cfg" \
  --ca-cert "$WORK/plca/ca.crt" --ca-key "$WORK/plca/ca.key" \
  --upstream-proxy "http://$EADDR" --resolve localhost=127.0.0.1 >/dev/null 2>"$WORK/pipelock.log" &
PIDS+=($!)
for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$PPORT") 2>/dev/null && break; sleep 0.1; done

LG="$T/loadgen"
run() { # label args... -> "label|rps|p50|p99|mbps"
  local label="$1"; shift
  local out
  out="$("$LG" "$@" -d "$SECS" 2>"$WORK/loadgen.err" | tail -1)" || { echo "loadgen failed for $label:" >&2; cat "$WORK/loadgen.err" >&2; exit 1; }
  local rps p50 p99 mbps err
  rps="$(sed -E 's/.* rps=([0-9.]+).*/\1/' <<<"$out")"
  p50="$(sed -E 's/.* p50_ms=([0-9.]+).*/\1/' <<<"$out")"
  p99="$(sed -E 's/.* p99_ms=([0-9.]+).*/\1/' <<<"$out")"
  mbps="$(sed -E 's/.* mb_per_s=([0-9.]+).*/\1/' <<<"$out")"
  err="$(sed -E 's/.* errors=([0-9]+).*/\1/' <<<"$out")"
  echo "$label|$rps|$p50|$p99|$mbps|$err"
}

DIRECT=(--url "https://localhost:$OPORT/healthz" --cacert "$ORIGIN_CA")
CHAIN=(--url "https://localhost:$OPORT/healthz" --proxy "http://127.0.0.1:$PPORT" --cacert "$WORK/plca/ca.crt")
CHAIN_NOAUTH=(--url "https://127.0.0.1:$OPORT/healthz" --proxy "http://127.0.0.1:$PPORT" --cacert "$WORK/plca/ca.crt")
BIG=$((256 * 1024 * 1024))

# warm-up (pools, leaf cache)
"$LG" "${CHAIN[@]}" -c 4 -d 1 >/dev/null 2>&1 || true
"$LG" "${DIRECT[@]}" -c 4 -d 1 >/dev/null 2>&1 || true

ROWS=()
for c in 1 32; do
  ROWS+=("$(run "direct c=$c" "${DIRECT[@]}" -c "$c")")
  ROWS+=("$(run "chain (bearer route) c=$c" "${CHAIN[@]}" -c "$c")")
  ROWS+=("$(run "chain (allowlist, no injection) c=$c" "${CHAIN_NOAUTH[@]}" -c "$c")")
done
# egress alone, plain HTTP on both sides (absolute-form from loadgen), bearer route
for c in 1 32; do
  ROWS+=("$(run "plain direct c=$c" --url "http://localhost:$OHTTP/healthz" -c "$c")")
  ROWS+=("$(run "plain via egress only (bearer) c=$c" --url "http://localhost:$OHTTP/healthz" --proxy "http://$EADDR" -c "$c")")
done
# pause between downloads: an origin still streaming to a client that gave up at
# the deadline would slow the next row down
sleep 2
ROWS+=("$(run "direct 256 MiB download" --url "https://localhost:$OPORT/download?bytes=$BIG" --cacert "$ORIGIN_CA" -c 1 --download)")
sleep 2
ROWS+=("$(run "chain 256 MiB download (bearer, scrubbed)" --url "https://localhost:$OPORT/download?bytes=$BIG" --proxy "http://127.0.0.1:$PPORT" --cacert "$WORK/plca/ca.crt" -c 1 --download)")
sleep 2
ROWS+=("$(run "chain 256 MiB download (allowlist)" --url "https://127.0.0.1:$OPORT/download?bytes=$BIG" --proxy "http://127.0.0.1:$PPORT" --cacert "$WORK/plca/ca.crt" -c 1 --download)")

# egress alone on the 256 MiB download (curl sends the absolute-form https:// target)
sleep 2
for h in localhost 127.0.0.1; do
  MBPS="$(curl -s -o /dev/null -w '%{speed_download}' --request-target "https://$h:$OPORT/download?bytes=$BIG" "http://$EADDR/" | awk '{printf "%.1f", $1/1000000}')"
  ROWS+=("curl via egress only, 256 MiB ($h)||||$MBPS|0")
done

echo
echo "| run | req/s | p50 ms | p99 ms | MB/s | errors |"
echo "|---|---:|---:|---:|---:|---:|"
for r in "${ROWS[@]}"; do echo "| ${r//|/ | } |"; done
echo
echo "(${SECS}s per run, $(nproc) cores shared with the load generator and the origin; added latency = chain p50/p99 - direct p50/p99)"
