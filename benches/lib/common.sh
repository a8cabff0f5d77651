# shellcheck shell=bash
# common.sh - logging, process bookkeeping and /proc sampling for benches/run.
# Sourced by benches/run (both outside and inside the private mount namespace).

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

PIDS=()   # background processes this run started; cleanup() ends them by pid

cleanup() {
  local p
  ((${#PIDS[@]})) || return 0
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.2
  done
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  PIDS=()
}

wait_port() {  # wait_port PORT NAME PID: until something listens on 127.0.0.1:PORT
  local i
  for i in $(seq 1 150); do
    if ss -Hltn "sport = :$1" | grep -q LISTEN; then return 0; fi
    kill -0 "$3" 2>/dev/null || { log "$2 exited early; see its log"; return 1; }
    sleep 0.1
  done
  log "$2 did not listen on :$1"; return 1
}

# want LIST ITEM: is ITEM in the comma-separated LIST?
want() { [[ ",$1," == *",$2,"* ]]; }

proc_kib() {  # proc_kib PID FIELD (VmRSS | VmHWM) -> KiB, or empty if gone
  awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || true
}

# Every process of a peer as "name=pid" words (for the chain: pipelock and egress apart).
# PEER_PROCS[peer] is filled by the start_* functions.
declare -A PEER_PROCS PEER_PORT

hwm_reset() {  # hwm_reset PEER: write 5 to clear_refs of each process (resets VmHWM)
  local np
  for np in ${PEER_PROCS[$1]:-}; do echo 5 > "/proc/${np#*=}/clear_refs" 2>/dev/null || true; done
}

hwm_read() {  # hwm_read PEER -> "hwm_NAME=KiB;..." for the extra column
  local np out=""
  for np in ${PEER_PROCS[$1]:-}; do
    out+="hwm_${np%%=*}=$(proc_kib "${np#*=}" VmHWM);"
  done
  printf '%s' "${out%;}"
}

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() {  # cpu_ticks PEER -> "NAME=TICKS ..." (user + system time of each process so far)
  local np f
  for np in ${PEER_PROCS[$1]:-}; do
    read -r -a f < "/proc/${np#*=}/stat" 2>/dev/null || continue
    # fields 14 and 15 (utime, stime); the process name holds no space for these peers
    printf '%s=%s ' "${np%%=*}" $((f[13] + f[14]))
  done
}

cpu_since() {  # cpu_since PEER "$(cpu_ticks PEER)" -> "cpu_NAME=SECONDS;..." for the extra column
  local before=" $2" now w name out=""
  for w in $(cpu_ticks "$1"); do
    name=${w%%=*} now=${w#*=}
    [[ $before =~ \ $name=([0-9]+) ]] || continue
    out+="cpu_$name=$(awk -v t=$((now - BASH_REMATCH[1])) -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", t/hz}');"
  done
  printf '%s' "${out%;}"
}

rss_now() {  # rss_now PEER PREFIX -> "PREFIX_NAME=KiB;..."
  local np out=""
  for np in ${PEER_PROCS[$1]:-}; do
    out+="$2_${np%%=*}=$(proc_kib "${np#*=}" VmRSS);"
  done
  printf '%s' "${out%;}"
}

peer_alive() {  # peer_alive PEER: every process of the peer still runs
  local np
  for np in ${PEER_PROCS[$1]:-}; do kill -0 "${np#*=}" 2>/dev/null || return 1; done
}

# proxy_args PEER -> "--proxy http://127.0.0.1:PORT" for loadgen (nothing for direct)
proxy_args() { [[ $1 == direct ]] || printf -- '--proxy http://127.0.0.1:%s' "${PEER_PORT[$1]}"; }

# oha routing: direct is pinned to 127.0.0.1 (as well as /etc/hosts), the others go via -x
oha_route() {
  if [[ $1 == direct ]]; then
    printf -- '--connect-to origin.test:%s:127.0.0.1:%s' "$ORIGIN_PORT" "$ORIGIN_PORT"
  else
    printf -- '-x http://127.0.0.1:%s' "${PEER_PORT[$1]}"
  fi
}
