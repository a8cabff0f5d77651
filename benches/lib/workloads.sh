# shellcheck shell=bash
# workloads.sh - W1..W8, one function per workload; each appends one row to runs.tsv.
# Every run resets the peak RSS (VmHWM) of the peer's processes first and records it after
# (extra column: hwm_NAME=KiB). Needs: OUT, DUR, OHA, LOADGEN, PKI, ORIGIN_PORT, SSE_PORT, HERE.

RAW() { printf '%s/raw/%s-%s-%s' "$OUT" "$1" "$2" "$3"; }   # RAW PEER WL REP -> file stem
record() { python3 "$HERE/lib/record.py" "$OUT/runs.tsv" "$@"; }
LG_TOO_OLD="n/a (loadgen too old)"

LG_HELP=""
lg_has() {  # lg_has --flag: does this loadgen have that option?
  [[ -n $LG_HELP ]] || LG_HELP=$("$LOADGEN" --help 2>&1 || true)
  grep -q -- "$1[ ,=]" <<<"$LG_HELP" || grep -q -- "$1\$" <<<"$LG_HELP"
}

forget_pid() {  # drop a finished background process from PIDS
  local p keep=()
  for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# oha for DUR seconds: oha_run PEER WL REP CONCURRENCY PATH [OHA ARGS...]
oha_run() {
  local peer=$1 wl=$2 rep=$3 c=$4 path=$5; shift 5
  local f; f=$(RAW "$peer" "$wl" "$rep")
  hwm_reset "$peer"
  local perfs=(); [[ $rep == 1 ]] && perf_start "$peer" "$wl" perfs
  local cpu0; cpu0=$(cpu_ticks "$peer")
  # shellcheck disable=SC2046
  timeout $((DUR * 4 + 60)) "$OHA" --no-tui --output-format json -z "${DUR}s" -w -c "$c" "$@" \
    --cacert "$PKI/client-bundle.crt" $(oha_route "$peer") \
    "https://origin.test:$ORIGIN_PORT$path" > "$f.json" 2>"$f.err" || true
  local p; for p in "${perfs[@]}"; do wait "$p" 2>/dev/null || true; forget_pid "$p"; done
  local extra; extra=$(hwm_read "$peer")
  [[ -z $cpu0 ]] || extra+=";$(cpu_since "$peer" "$cpu0")"
  record "$peer" "$wl" "$rep" --oha "$f.json" --extra "$extra"
}

# BENCH_PERF=1: `perf record` every process of a bottle peer during the first repeat of
# W1 (c=1, c=32) and W3 (raw/perf-PEER-PROCESS-WL.data; the report sums them into profile.md).
# perf_start PEER WL ARRAY_NAME: the perf pids go into that array.
perf_start() {
  [[ ${BENCH_PERF:-0} == 1 && ($2 == w1c1 || $2 == w1c32 || $2 == w3) ]] || return 0
  [[ $1 == pipelock || $1 == chain ]] || return 0
  local -n into=$3
  local w name pid
  for w in ${PEER_PROCS[$1]}; do
    name=${w%%=*} pid=${w#*=}
    perf record -q -F 999 -g -o "$OUT/raw/perf-$1-$name-$2.data" -p "$pid" -- sleep "$DUR" \
      >/dev/null 2>&1 &
    into+=($!); PIDS+=($!)
  done
}

run_w1c1()  { oha_run "$1" w1c1 "$2" 1 /small; }
run_w1c32() { oha_run "$1" w1c32 "$2" 32 /small; }
run_w2()    { oha_run "$1" w2 "$2" 8 /small --disable-keepalive; }
run_w3()    { oha_run "$1" w3 "$2" 1 /big; }

# loadgen_run PEER WL REP [LOADGEN ARGS...]: one loadgen run, its output recorded
loadgen_run() {
  local peer=$1 wl=$2 rep=$3; shift 3
  local f; f=$(RAW "$peer" "$wl" "$rep")
  local json=(); lg_has --json && json=(--json)
  hwm_reset "$peer"
  # shellcheck disable=SC2046
  timeout $((DUR * 8 + 120)) "$LOADGEN" "$@" $(proxy_args "$peer") --cacert "$PKI/client-bundle.crt" \
    "${json[@]}" > "$f.out" 2>"$f.err" || true
  record "$peer" "$wl" "$rep" --loadgen "$f.out" --extra "$(hwm_read "$peer")"
}

# W4: 256 MiB uploads over one connection, DLP on in the bottle peers
run_w4() {
  loadgen_run "$1" w4 "$2" --url "https://origin.test:$ORIGIN_PORT/upload" -c 1 -d "$DUR" --upload 268435456
}

# W5: 1,000 host names never seen before (per repeat), one new CONNECT+TLS per URL
run_w5() {
  if ! lg_has --urls; then record "$1" w5 "$2" --none --note "$LG_TOO_OLD"; return; fi
  local urls=$W/w5-urls-r$2.txt
  w5_names "$2" | sed "s|.*|https://&:$ORIGIN_PORT/small|" > "$urls"
  loadgen_run "$1" w5 "$2" --urls "$urls" -c 8
}

# W6: SSE through the proxy: first-event latency and event gaps
run_w6() {
  if ! lg_has --sse; then record "$1" w6 "$2" --none --note "$LG_TOO_OLD"; return; fi
  # every event of the stream is read, so the proxy may reuse its upstream connection: the
  # first repeat pays its connect (DNS, TCP, TLS to the origin), the median does not
  loadgen_run "$1" w6 "$2" --url "https://sse.test:$SSE_PORT/sse" --sse --repeat 5 --events "$SSE_EVENTS"
}

# W7: RSS with 1,000 idle tunnels held open by loadgen --hold (until its stdin closes)
run_w7() {
  local peer=$1 rep=$2
  [[ $peer != direct ]] || return 0
  if ! lg_has --hold; then record "$peer" w7 "$rep" --none --note "$LG_TOO_OLD"; return; fi
  local f fifo=$W/w7.fifo before held n="" lp fd i
  f=$(RAW "$peer" w7 "$rep")
  if ! restart_peer "$peer"; then
    record "$peer" w7 "$rep" --none --note "error: the restart before W7 failed"; return
  fi
  rm -f "$fifo"; mkfifo "$fifo"; : > "$f.out"
  hwm_reset "$peer"
  before=$(rss_now "$peer" before)
  # shellcheck disable=SC2046
  "$LOADGEN" --url "https://origin.test:$ORIGIN_PORT/small" $(proxy_args "$peer") \
    --cacert "$PKI/client-bundle.crt" --hold 1000 --hold-secs 0 -c 32 <"$fifo" >"$f.out" 2>"$f.err" &
  lp=$!; PIDS+=("$lp")
  exec {fd}>"$fifo"
  for ((i = 0; i < 1200; i++)); do
    n=$(awk '$1 == "ready" {print $2; exit}' "$f.out" || true)
    [[ -z $n ]] || break
    kill -0 "$lp" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -n $n ]]; then
    sleep 0.5   # let the proxy settle (buffers of the handshakes freed)
    held=$(rss_now "$peer" held)
  fi
  exec {fd}>&-
  for ((i = 0; i < 100; i++)); do kill -0 "$lp" 2>/dev/null || break; sleep 0.1; done
  kill "$lp" 2>/dev/null || true
  wait "$lp" 2>/dev/null || true
  forget_pid "$lp"
  if [[ -n $n ]]; then
    record "$peer" w7 "$rep" --none --set "ok=$n" --set failed=$((1000 - n)) \
      --extra "tunnels=$n;$before;$held;$(hwm_read "$peer")"
  else
    record "$peer" w7 "$rep" --none --set ok=0 --extra "$before;$(hwm_read "$peer")" \
      --note "error: no 'ready' line (see raw/$peer-w7-$rep.err)"
  fi
}

# W8: keep-alive load (c=8, ~11 s) while lib/reloader.py does 100 reloads 100 ms apart
run_w8() {
  local peer=$1 rep=$2 f op np args=() res
  [[ -n ${PEER_CONFIG[$peer]:-} ]] || return 0   # bottle peers only
  f=$(RAW "$peer" w8 "$rep")
  hwm_reset "$peer"
  # shellcheck disable=SC2046
  timeout 90 "$OHA" --no-tui --output-format json -z 11s -w -c 8 --cacert "$PKI/client-bundle.crt" \
    $(oha_route "$peer") "https://origin.test:$ORIGIN_PORT/small" >"$f.json" 2>"$f.err" &
  op=$!; PIDS+=("$op")
  for np in ${PEER_PROCS[$peer]}; do args+=(--pid "${np#*=}"); done
  for np in ${PEER_STATUS[$peer]}; do args+=(--status "$np"); done
  sleep 0.3
  python3 "$HERE/lib/reloader.py" --config-dir "${PEER_CONFIG[$peer]}" "${args[@]}" \
    --count 100 --interval-ms 100 >"$f.reload.json" 2>"$f.reload.err" || true
  wait "$op" || true
  forget_pid "$op"
  res=$(python3 -c 'import json,sys
try: d=json.load(open(sys.argv[1]))
except Exception: d={}
print(";".join(f"{k}={v}" for k,v in d.items() if v is not None))' "$f.reload.json")
  record "$peer" w8 "$rep" --oha "$f.json" --extra "${res};$(hwm_read "$peer")"
}

# The idle RSS of every proxy process right after the warm-up (workload "idle").
record_idle() {
  local peer=$1
  [[ $peer != direct ]] || return 0
  record "$peer" idle 0 --none --extra "$(rss_now "$peer" idle)"
}
