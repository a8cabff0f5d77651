# shellcheck shell=bash
# peers.sh - start every proxy under test on its own loopback port.
# Each start_* sets PEER_PORT[peer] and PEER_PROCS[peer] ("name=pid" words), writes the
# exact command line to $OUT/cmd-PEER.txt and waits until the port listens.
# Needs: W, PKI, OUT, ORIGIN_PORT, SSE_PORT, MITMDUMP, BIN (target/release), BENCH_TOKEN.

MITM_PORT=18081 SQUID_PORT=18082 TINY_PORT=18083 RELAY2_PORT=18084 RELAY2_PORT_B=18085
PIPELOCK_PORT=18090 CHAIN_BASE_PORT=18091

# The allowlist every bottle peer starts with (the reloader of W8 appends to it).
base_allowlist() {
  printf '# bottle-bench\norigin.test:%s\nsse.test:%s\n*.w5.test:*\n127.0.0.1\n' "$ORIGIN_PORT" "$SSE_PORT"
}

start_mitmproxy() {
  local d=$W/mitm; rm -rf "$d"; mkdir -p "$d/conf"
  cp "$PKI/proxy-ca.pem" "$d/conf/mitmproxy-ca.pem"
  cp "$PKI/proxy-ca.crt" "$d/conf/mitmproxy-ca-cert.pem"
  cat > "$d/allowlist.py" <<'EOF'
"""Allowlist addon: 403 for any host other than origin.test, sse.test and *.w5.test."""
from mitmproxy import http

ALLOWED = {"origin.test", "sse.test"}
SUFFIX = ".w5.test"


def _ok(host: str) -> bool:
    return host in ALLOWED or host.endswith(SUFFIX)


def _deny(flow: http.HTTPFlow) -> None:
    flow.response = http.Response.make(403, b"blocked by allowlist\n", {"content-type": "text/plain"})


def http_connect(flow: http.HTTPFlow) -> None:
    if not _ok(flow.request.host):
        _deny(flow)


def request(flow: http.HTTPFlow) -> None:
    if not _ok(flow.request.pretty_host):
        _deny(flow)
EOF
  local cmd=("$MITMDUMP" -q --mode regular --listen-host 127.0.0.1 -p "$MITM_PORT"
    --set confdir="$d/conf" --set ssl_verify_upstream_trusted_ca="$PKI/origin-ca.crt"
    -s "$d/allowlist.py")
  echo "${cmd[*]}" > "$OUT/cmd-mitmproxy.txt"
  "${cmd[@]}" >"$d/mitmdump.log" 2>&1 &
  PIDS+=($!); PEER_PROCS[mitmproxy]="mitmdump=$!"; PEER_PORT[mitmproxy]=$MITM_PORT
  wait_port "$MITM_PORT" mitmproxy $!
}

start_squid() {
  local d=$W/squid
  rm -rf "$d"; mkdir -p "$d"
  cp "$PKI/proxy-ca.pem" "$d/proxy-ca.pem"
  /usr/lib/squid/security_file_certgen -c -s "$d/ssl_db" -M 64MB >/dev/null
  cat > "$d/squid.conf" <<EOF
# squid TLS interception (ssl_bump: bump all) with an allowlist
http_port 127.0.0.1:$SQUID_PORT ssl-bump tls-cert=$d/proxy-ca.pem generate-host-certificates=on dynamic_cert_mem_cache_size=16MB
sslcrtd_program /usr/lib/squid/security_file_certgen -s $d/ssl_db -M 64MB
sslcrtd_children 5 startup=1 idle=1
ssl_bump bump all
tls_outgoing_options cafile=$PKI/origin-ca.crt
acl allowed dstdomain origin.test sse.test .w5.test
acl localnet src 127.0.0.1/32
acl SSL_ports port $ORIGIN_PORT $SSE_PORT
http_access deny !allowed
http_access allow localnet
http_access deny all
cache deny all
cache_mem 8 MB
max_filedescriptors 65536
client_request_buffer_max_size 1 MB
access_log none
cache_store_log none
cache_log $d/cache.log
pid_filename $d/squid.pid
coredump_dir $d
hosts_file /etc/hosts
dns_nameservers 127.0.0.1
cache_effective_user proxy
shutdown_lifetime 1 seconds
EOF
  chown -R proxy:proxy "$d"
  squid -k parse -f "$d/squid.conf" >"$d/parse.log" 2>&1 || { cat "$d/parse.log" >&2; return 1; }
  squid -N -f "$d/squid.conf" >"$d/stdout.log" 2>&1 &
  PIDS+=($!); PEER_PROCS[squid]="squid=$!"; PEER_PORT[squid]=$SQUID_PORT
  echo "squid -N -f $d/squid.conf" > "$OUT/cmd-squid.txt"
  cp "$d/squid.conf" "$OUT/squid.conf"
  wait_port "$SQUID_PORT" squid $!
}

start_tinyproxy() {  # start_tinyproxy [NAME PORT UPSTREAM_PORT]
  local name=${1:-tinyproxy} port=${2:-$TINY_PORT} upstream=${3:-}
  local d=$W/$name; rm -rf "$d"; mkdir -p "$d"
  printf '^origin\\.test$\n^sse\\.test$\n\\.w5\\.test$\n' > "$d/filter"
  cat > "$d/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port $port
Listen 127.0.0.1
Timeout 600
LogLevel Error
MaxClients 4096
Allow 127.0.0.1
DisableViaHeader Yes
ConnectPort $ORIGIN_PORT
ConnectPort $SSE_PORT
Filter "$d/filter"
FilterURLs Off
FilterExtended On
FilterDefaultDeny Yes
EOF
  [[ -z $upstream ]] || echo "Upstream http 127.0.0.1:$upstream" >> "$d/tinyproxy.conf"
  chmod 755 "$d"; chmod 644 "$d"/*
  tinyproxy -d -c "$d/tinyproxy.conf" >"$d/tinyproxy.log" 2>&1 &
  PIDS+=($!); PEER_PROCS[$name]="tinyproxy=$!"; PEER_PORT[$name]=$port
  echo "tinyproxy -d -c $d/tinyproxy.conf" > "$OUT/cmd-$name.txt"
  wait_port "$port" "$name" $!
}

# Two tinyproxies in series (the first's upstream is the second): the floor of any design
# with two processes on the path, as the chain has, with no TLS or HTTP work in either.
start_relay2() {
  start_tinyproxy relay2-b "$RELAY2_PORT_B"
  local second=${PEER_PROCS[relay2-b]}
  unset 'PEER_PROCS[relay2-b]' 'PEER_PORT[relay2-b]'
  start_tinyproxy relay2 "$RELAY2_PORT" "$RELAY2_PORT_B"
  PEER_PROCS[relay2]="${PEER_PROCS[relay2]/tinyproxy=/first=} ${second/tinyproxy=/second=}"
}

# pipelock alone: intercepts, checks the allowlist, scans (DLP), connects to origins itself.
start_pipelock() {
  local d=$W/pipelock; rm -rf "$d"; mkdir -p "$d/config"
  base_allowlist > "$d/config/allowlist"
  printf 'dlp:\n  action: block\n' > "$d/config/routes.yaml"
  local cmd=("$BIN/pipelock" --listen "127.0.0.1:$PIPELOCK_PORT" --config-dir "$d/config"
    --ca-cert "$PKI/proxy-ca.crt" --ca-key "$PKI/proxy-ca.key" --upstream-ca "$PKI/origin-ca.crt"
    --resolve origin.test=127.0.0.1 --status-file "$d/status-pipelock.json")
  echo "${cmd[*]}" > "$OUT/cmd-pipelock.txt"
  RUST_LOG=${BENCH_RUST_LOG:-warn} "${cmd[@]}" >"$d/pipelock.log" 2>&1 &
  PIDS+=($!); PEER_PROCS[pipelock]="pipelock=$!"; PEER_PORT[pipelock]=$PIPELOCK_PORT
  PEER_CONFIG[pipelock]=$d/config; PEER_STATUS[pipelock]="$d/status-pipelock.json"
  wait_port "$PIPELOCK_PORT" pipelock $!
}

# The full chain (as shared/bench/bottle-chain.sh): pipelock --upstream-proxy -> egress,
# which injects a bearer token (env BENCH_TOKEN) on the origin.test route. Both share DIR.
start_chain() {  # start_chain NAME BINDIR INDEX
  # its files under $W/peer-NAME: never a directory the caller named (--chain-bin NAME=DIR)
  local name=$1 bindir=$2 port=$((CHAIN_BASE_PORT + $3)) d=$W/peer-$1
  local eport=$((port + 500))
  rm -rf "$d"; mkdir -p "$d/config"
  base_allowlist > "$d/config/allowlist"
  printf 'routes:\n  - host: origin.test:%s\n    auth: {scheme: bearer, token_env: BENCH_TOKEN}\ndlp:\n  action: block\n' \
    "$ORIGIN_PORT" > "$d/config/routes.yaml"
  local ecmd=("$bindir/egress" --listen "127.0.0.1:$eport" --config-dir "$d/config"
    --upstream-ca "$PKI/origin-ca.crt" --resolve origin.test=127.0.0.1 --status-file "$d/status-egress.json")
  local pcmd=("$bindir/pipelock" --listen "127.0.0.1:$port" --config-dir "$d/config"
    --ca-cert "$PKI/proxy-ca.crt" --ca-key "$PKI/proxy-ca.key" --upstream-proxy "http://127.0.0.1:$eport"
    --resolve origin.test=127.0.0.1 --status-file "$d/status-pipelock.json")
  { echo "BENCH_TOKEN=<32 chars> ${ecmd[*]}"; echo "${pcmd[*]}"; } > "$OUT/cmd-$name.txt"
  BENCH_TOKEN=$BENCH_TOKEN RUST_LOG=${BENCH_RUST_LOG:-warn} "${ecmd[@]}" >"$d/egress.log" 2>&1 &
  local epid=$!; PIDS+=("$epid")
  wait_port "$eport" "$name/egress" "$epid"
  RUST_LOG=${BENCH_RUST_LOG:-warn} "${pcmd[@]}" >"$d/pipelock.log" 2>&1 &
  local ppid=$!; PIDS+=("$ppid")
  PEER_PROCS[$name]="pipelock=$ppid egress=$epid"; PEER_PORT[$name]=$port
  PEER_CONFIG[$name]=$d/config; PEER_STATUS[$name]="$d/status-pipelock.json $d/status-egress.json"
  wait_port "$port" "$name/pipelock" "$ppid"
}

declare -A PEER_CONFIG PEER_STATUS

# warm_up PEER: one second of W1-like load (lazy set-up is done before anything is measured)
warm_up() {
  # shellcheck disable=SC2046
  timeout 30 "$OHA" --no-tui --output-format json -z 1s -w -c 8 --cacert "$PKI/client-bundle.crt" \
    $(oha_route "$1") "https://origin.test:$ORIGIN_PORT/small" >/dev/null 2>&1 || true
}

# start_peer PEER: start a peer by its name (a --chain-bin name starts that chain)
start_peer() {
  local i
  case $1 in
    mitmproxy) start_mitmproxy ;;
    squid) start_squid ;;
    tinyproxy) start_tinyproxy ;;
    relay2) start_relay2 ;;
    pipelock) start_pipelock ;;
    chain) start_chain chain "$BIN" 0 ;;
    *)
      for i in "${!CHAIN_NAMES[@]}"; do
        [[ ${CHAIN_NAMES[$i]} != "$1" ]] || { start_chain "$1" "${CHAIN_DIRS[$i]}" $((i + 1)); return; }
      done ;;
  esac
}

# restart_peer PEER: stop its processes, start it again on the same ports and warm it up.
# W7 measures a fresh process: memory that earlier workloads made the heap grow by and then
# freed would otherwise be reused by the tunnels and hide what they cost.
restart_peer() {
  local np
  for np in ${PEER_PROCS[$1]}; do kill "${np#*=}" 2>/dev/null || true; done
  for np in ${PEER_PROCS[$1]}; do wait "${np#*=}" 2>/dev/null || true; forget_pid "${np#*=}"; done
  start_peer "$1" || return 1
  warm_up "$1"
  sleep 0.5
}

# sanity PEER: 200 for origin.test, the issuer the client sees, a refusal for blocked.test
sanity() {
  local peer=$1 px=() code issuer bcode
  [[ $peer == direct ]] || px=(--proxy "http://127.0.0.1:${PEER_PORT[$peer]}")
  code=$(curl -sS -m 10 "${px[@]}" --cacert "$PKI/client-bundle.crt" -o /dev/null \
    -w '%{http_code}' "https://origin.test:$ORIGIN_PORT/small" 2>>"$OUT/sanity.err" || true)
  issuer=$(curl -sS -m 10 -v "${px[@]}" --cacert "$PKI/client-bundle.crt" -o /dev/null \
    "https://origin.test:$ORIGIN_PORT/small" 2>&1 | sed -n 's/^\*  *issuer: //p' | head -1)
  if [[ $peer == direct ]]; then bcode=n/a; else
    bcode=$(curl -sS -m 10 "${px[@]}" --cacert "$PKI/client-bundle.crt" -o /dev/null \
      -w '%{http_connect}/%{http_code}' "https://blocked.test:$ORIGIN_PORT/small" 2>/dev/null || true)
  fi
  printf '%s\t%s\t%s\t%s\n' "$peer" "$code" "$issuer" "$bcode" | tee -a "$OUT/sanity.tsv" >&2
  [[ $code == 200 ]]
}
