#!/bin/sh
# HTTPS keep-alive small GETs: direct to the echo origin vs through pipelock (standalone mode).
# Usage: crates/pipelock/bench.sh [CONCURRENCY] [SECONDS]   (from the workspace root)
set -eu
C=${1:-16}
D=${2:-5}
cargo build --release -q -p pipelock -p loadgen -p echo-origin
T=$(mktemp -d)
trap 'kill $ORIGIN $PL 2>/dev/null; rm -rf "$T"' EXIT
OP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
PP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
target/release/echo-origin --tls-dir "$T/origin" --https "127.0.0.1:$OP" >/dev/null 2>&1 &
ORIGIN=$!
target/release/pipelock ca init --out "$T/ca" >/dev/null
mkdir -p "$T/cfg"
printf 'localhost:*\n127.0.0.1/32\n' > "$T/cfg/allowlist"
sleep 1
RUST_LOG=warn target/release/pipelock --listen "127.0.0.1:$PP" --config-dir "$T/cfg" \
  --ca-cert "$T/ca/ca.crt" --ca-key "$T/ca/ca.key" --upstream-ca "$T/origin/ca.crt" \
  --resolve localhost=127.0.0.1 &
PL=$!
sleep 1
echo "direct:        $(target/release/loadgen --url "https://localhost:$OP/" --cacert "$T/origin/ca.crt" -c "$C" -d "$D")"
echo "via pipelock:  $(target/release/loadgen --url "https://localhost:$OP/" --proxy "http://127.0.0.1:$PP" --cacert "$T/ca/ca.crt" -c "$C" -d "$D")"
echo "download direct:       $(target/release/loadgen --url "https://localhost:$OP/download?bytes=104857600" --cacert "$T/origin/ca.crt" -c 2 -d "$D" --download)"
echo "download via pipelock: $(target/release/loadgen --url "https://localhost:$OP/download?bytes=104857600" --proxy "http://127.0.0.1:$PP" --cacert "$T/ca/ca.crt" -c 2 -d "$D" --download)"
echo "upload direct:         $(target/release/loadgen --url "https://localhost:$OP/upload" --cacert "$T/origin/ca.crt" -c 2 -d "$D" --upload 4194304)"
echo "upload via pipelock:   $(target/release/loadgen --url "https://localhost:$OP/upload" --proxy "http://127.0.0.1:$PP" --cacert "$T/ca/ca.crt" -c 2 -d "$D" --upload 4194304)"
