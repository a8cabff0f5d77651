# shellcheck shell=bash
# w9.sh - W9 (`bottle start` to agent ready, warm engine) and the sidecar image sizes.
# Runs outside the namespace (Docker). Only removes what it started: each bottle it started
# is stopped with `bottle stop SLUG`; no image, container or network is pruned.
# Needs: BIN, ROOT, W, OUT, REPS (W9 does max(REPS, 3) runs), WLS, HERE.

W9_SLUG=""
W9_HOME=$W/bottle-home
W9_MANIFEST=$ROOT/examples/demo.yaml

w9_stop() {  # stop the bottle this script started, if one is up
  [[ -n $W9_SLUG ]] || return 0
  BOTTLE_HOME=$W9_HOME "$BIN/bottle" stop "$W9_SLUG" >>"$OUT/raw/w9-stop.log" 2>&1 || true
  W9_SLUG=""
}

w9_leftovers() {  # containers and networks of project bottle-SLUG still there
  local f="label=com.docker.compose.project=bottle-$1"
  { docker ps -aq --filter "$f"; docker network ls -q --filter "$f"; } | wc -l
}

w9_record() { python3 "$HERE/lib/record.py" "$OUT/runs.tsv" "$@"; }

run_docker_parts() {
  if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
    log "docker is not available: W9 and image sizes skipped"
    want "$WLS" w9 && w9_record bottle w9 1 --none --note "n/a (no docker)"
    return 0
  fi
  trap 'w9_stop' EXIT
  trap 'exit 130' INT TERM
  log "bottle build (not timed; the first one on a fresh machine takes a long while)"
  local blog=$OUT/raw/w9-build.log
  if ! "$BIN/bottle" build >"$blog" 2>&1; then
    log "bottle build failed; see $blog"
    want "$WLS" w9 && w9_record bottle w9 1 --none --note "error: bottle build failed"
    return 1
  fi
  echo "$BIN/bottle build" > "$OUT/cmd-bottle-build.txt"
  if want "$WLS" img; then
    local repo img size
    for repo in pipelock egress; do
      img=$(sed 's/\x1b\[[0-9;]*m//g' "$blog" | grep -o "bottle-$repo:[A-Za-z0-9._-]*" | tail -1 || true)
      [[ -n $img ]] || img=$(docker image ls "bottle-$repo" --format '{{.Repository}}:{{.Tag}}' | head -1)
      size=$(docker image inspect --format '{{.Size}}' "$img" 2>/dev/null || echo "")
      log "image $img: $size bytes"
      w9_record "$repo" img 1 --none --extra "bytes=$size;image=$img"
    done
  fi
  want "$WLS" w9 || return 0
  echo "BOTTLE_HOME=$W9_HOME $BIN/bottle start --detach --yes $W9_MANIFEST" > "$OUT/cmd-bottle-start.txt"
  local runs=$((REPS > 3 ? REPS : 3)) i t0 t1 log phases left
  mkdir -p "$W9_HOME"
  for ((i = 1; i <= runs; i++)); do
    log "W9 run $i/$runs: bottle start --detach (timed until it returns: sidecars ready, agent up)"
    log=$OUT/raw/w9-start-$i.log
    t0=$(date +%s.%N)
    if BOTTLE_HOME=$W9_HOME "$BIN/bottle" start --detach --yes "$W9_MANIFEST" </dev/null >"$log" 2>&1; then
      t1=$(date +%s.%N)
    else
      t1=""
    fi
    W9_SLUG=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -o 'bottle [a-z0-9-]* is running' | awk '{print $2}' | head -1 || true)
    [[ -n $W9_SLUG ]] || W9_SLUG=$(ls "$W9_HOME/state" 2>/dev/null | head -1 || true)
    # The launcher's phases: "sidecars ready in R s (compose up C s), agent started in A s".
    phases=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | sed -n 's/.*sidecars ready in \([0-9.]*\)s (compose up \([0-9.]*\)s), agent started in \([0-9.]*\)s.*/ready_s=\1;compose_up_s=\2;agent_s=\3/p' | head -1)
    local slug=$W9_SLUG
    w9_stop
    left=0; [[ -z $slug ]] || left=$(w9_leftovers "$slug")
    if [[ -n $t1 ]]; then
      w9_record bottle w9 "$i" --none --set ok=1 --set failed=0 \
        --set "secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b - a}')" \
        --extra "${phases:+$phases;}leftovers=$left;slug=$slug"
    else
      w9_record bottle w9 "$i" --none --set ok=0 --set failed=1 --extra "leftovers=$left" \
        --note "error: bottle start failed (raw/w9-start-$i.log)"
    fi
    ((left == 0)) || log "!! bottle-$slug left $left containers/networks behind"
  done
  trap - EXIT
}
