#!/usr/bin/env bash
# scripts/stack.sh: run the Achilles pipeline locally, without Docker:
# PostgreSQL + Tansu (Kafka-compatible broker) + achilles-api, achilles-raw-sink, achilles-processor, achilles-agent.
#
#   scripts/stack.sh up                 start everything (idempotent), wait for /readyz
#   scripts/stack.sh down               stop what this stack started, nothing else
#   scripts/stack.sh status             show what runs
#   scripts/stack.sh logs [-f] [NAME]   show (or follow) .stack/logs/NAME.log
#   scripts/stack.sh recycle-broker     wait until every consumer caught up, then restart
#                                       Tansu and the services (frees the broker's memory)
#
# up: ensure-postgres.sh, ensure-tansu.sh, `cargo build --release --bins` (skipped
# with STACK_NO_BUILD=1), `achilles migrate`, then starts the services not already
# running, and waits up to 120 s for GET /readyz to answer 200.
# Configuration: the env vars read by the Rust binaries (DATABASE_URL,
# ACHILLES_KAFKA__BROKERS, ACHILLES_API__LISTEN, ACHILLES_DEV_API_KEY,
# ACHILLES_LOG_FORMAT), defaults in scripts/lib.sh; ACHILLES_BROKER_PORT moves Tansu.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SERVICES=(api raw-sink processor agent) # binary target/release/achilles-NAME, log .stack/logs/NAME.log
BINARIES=(achilles achilles-api achilles-raw-sink achilles-processor achilles-agent)
READY_TIMEOUT=${STACK_READY_TIMEOUT:-120}

# postgres://user:secret@host/db -> postgres://user:***@host/db
redact_url() { sed -E 's#(://[^:/@]+):[^@/]*@#\1:***@#' <<<"$1"; }

start_service() {
  local name=$1 pidf pid exe
  pidf=$(pid_file "$name")
  if is_pid_alive "$pidf"; then
    pid=$(<"$pidf")
    info "$name already running (pid $pid)"
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    if [[ $exe == *" (deleted)" ]]; then
      warn "$name (pid $pid) runs a binary that has been rebuilt since: 'make down up' restarts it"
    fi
    return 0
  fi
  rm -f "$pidf"
  start_bg "$name" "$(release_bin "achilles-$name")"
}

cmd_up() {
  local bin api_url hostport rc=0 name
  "$ROOT/scripts/ensure-postgres.sh"
  "$ROOT/scripts/ensure-tansu.sh"

  if [[ ${STACK_NO_BUILD:-0} == 1 ]]; then
    info "STACK_NO_BUILD=1: not building"
  else
    info "cargo build --release --bins"
    (cd "$ROOT" && cargo build --release --bins)
  fi
  for bin in "${BINARIES[@]}"; do
    [[ -x $(release_bin "$bin") ]] ||
      die "$(release_bin "$bin") is missing: run 'cargo build --release --bins' (or drop STACK_NO_BUILD)"
  done

  export_service_env
  info "achilles migrate ($(redact_url "$DATABASE_URL"))"
  "$(release_bin achilles)" migrate

  api_url=$(api_url_from_listen "$ACHILLES_API__LISTEN")
  hostport=${api_url#http://}
  if ! is_pid_alive "$(pid_file api)" && tcp_open "${hostport%:*}" "${hostport##*:}"; then
    die "something not started by this stack already listens on $hostport: stop it, or set ACHILLES_API__LISTEN"
  fi
  for name in "${SERVICES[@]}"; do
    start_service "$name"
  done

  info "waiting up to ${READY_TIMEOUT}s for $api_url/readyz"
  local pidfiles=()
  for name in "${SERVICES[@]}"; do pidfiles+=("$(pid_file "$name")"); done
  wait_for_http "$api_url/readyz" "$READY_TIMEOUT" "${pidfiles[@]}" || rc=$?
  if ((rc == 0)) && ! _pids_alive "${pidfiles[@]}"; then rc=2; fi
  if ((rc != 0)); then
    for name in "${SERVICES[@]}"; do show_log_tail "$name" 40; done
    if ((rc == 2)); then
      die "a service exited during start-up (logs above; 'scripts/stack.sh status' shows which)"
    fi
    die "$api_url/readyz did not answer 200 within ${READY_TIMEOUT}s (last status $(http_status "$api_url/readyz"); logs above; make down stops what runs)"
  fi

  cat <<EOF

Achilles local stack is up.
  API       $api_url   (GET /healthz, /readyz; dev API key: $ACHILLES_DEV_API_KEY)
  Postgres  $(redact_url "$DATABASE_URL")
  Kafka     $ACHILLES_KAFKA__BROKERS   (Tansu, in memory: topics and messages vanish when it stops)
  CLI       $(release_bin achilles)   (ACHILLES_API_URL=$ACHILLES_API_URL)
  Logs      $LOG_DIR/   (api.log, raw-sink.log, processor.log, agent.log, tansu.log; follow: scripts/stack.sh logs -f)
  Status    make status        Stop: make down        Demo: make demo
EOF
}

cmd_down() {
  local pidf stopped=0 version cluster
  # Services first, the broker after them, Postgres last.
  for pidf in "$STACK_DIR"/*.pid; do
    [[ -e $pidf && $(basename "$pidf") != tansu.pid ]] || continue
    stop_pidfile "$pidf"
    stopped=1
  done
  pidf=$(pid_file tansu)
  if [[ -e $pidf ]]; then
    stop_pidfile "$pidf"
    stopped=1
  fi
  if [[ -f $PG_STARTED_FILE ]]; then
    read -r version cluster <"$PG_STARTED_FILE"
    info "stopping PostgreSQL $version/$cluster (started by this stack)"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" stop ||
      warn "pg_ctlcluster $version $cluster stop failed"
    rm -f "$PG_STARTED_FILE"
    stopped=1
  fi
  ((stopped)) || info "nothing to stop: this stack started nothing that is still recorded in $STACK_DIR"
}

# Tansu's in-memory engine keeps every record until it stops (it ignores
# retention.ms, and DeleteRecords is unimplemented: docs/operations.md, "The
# local broker's memory"). Restarting it is safe once every consumer has
# applied everything: what the API acknowledged is in Postgres by then, the
# exactly-once consumers' positions live in Postgres and are reset to the new,
# empty log (ahead_of_log), and pending outbox records wait in Postgres.
# RECYCLE_LAG_TIMEOUT (300 s) bounds the wait; stop the load first.
# consumer_lag: records not yet applied, summed over the consumers' ops
# endpoints; -1 when one of them does not answer (unknown is not zero).
consumer_lag() {
  local port total=0 body n
  for port in ${STACK_OPS_PORTS:-9101 9102 9103}; do
    body=$(curl -sf --max-time 3 "http://127.0.0.1:$port/metrics" 2>/dev/null) || {
      printf '%d' -1
      return
    }
    n=$(awk '/^achilles_consumer_lag_records[{ ]/ { s += $NF } END { printf "%d", s }' <<<"$body")
    total=$((total + ${n:-0}))
  done
  printf '%d' "$total"
}

cmd_recycle_broker() {
  local deadline zero=0 lag pidf
  have curl || die "recycle-broker needs curl"
  deadline=$((SECONDS + ${RECYCLE_LAG_TIMEOUT:-300}))
  while ((zero < 2)); do
    lag=$(consumer_lag)
    if ((lag == 0)); then zero=$((zero + 1)); else zero=0; fi
    ((SECONDS < deadline)) || die "consumers still $lag records behind (-1: a service does not answer) after ${RECYCLE_LAG_TIMEOUT:-300} s; not restarting"
    ((zero >= 2)) || sleep 2
  done
  info "every consumer caught up; restarting the broker and the services"
  for pidf in "$STACK_DIR"/*.pid; do
    [[ -e $pidf && $(basename "$pidf") != tansu.pid ]] || continue
    stop_pidfile "$pidf"
  done
  pidf=$(pid_file tansu)
  [[ -e $pidf ]] || die "this stack did not start the broker (no $pidf): not restarting someone else's"
  stop_pidfile "$pidf"
  STACK_NO_BUILD=${STACK_NO_BUILD:-1} cmd_up
}

# status_line NAME TEXT
status_line() { printf '  %-9s %s\n' "$1" "$2"; }

cmd_status() {
  local name pidf url state cmdline
  export_service_env
  url=$(api_url_from_listen "$ACHILLES_API__LISTEN")

  if postgres_ready; then
    if [[ -f $PG_STARTED_FILE ]]; then
      state="up on $PG_HOST:$PG_PORT (cluster $(<"$PG_STARTED_FILE"), started by this stack)"
    else
      state="up on $PG_HOST:$PG_PORT (not started by this stack)"
    fi
  else
    state="down"
  fi
  status_line postgres "$state"

  pidf=$(pid_file tansu)
  if is_pid_alive "$pidf"; then
    cmdline=$(tr '\0' ' ' <"/proc/$(<"$pidf")/cmdline")
    cmdline=${cmdline#*--listener-url tcp://}
    state="up, pid $(<"$pidf"), ${cmdline%% *}"
  elif tcp_open 127.0.0.1 "$BROKER_PORT"; then
    state="up on 127.0.0.1:$BROKER_PORT (not started by this stack)"
  else
    state="down"
  fi
  status_line tansu "$state"

  for name in "${SERVICES[@]}"; do
    pidf=$(pid_file "$name")
    if is_pid_alive "$pidf"; then
      state="up, pid $(<"$pidf")"
      [[ $name == api ]] && state+=", $url, readyz: $(http_status "$url/readyz")"
    elif [[ -e $pidf ]]; then
      state="down (exited; see $(log_file "$name"))"
    else
      state="down"
    fi
    status_line "$name" "$state"
  done
  printf '  %-9s %s\n' logs "$LOG_DIR"
}

cmd_logs() {
  local follow=0 name files=()
  if [[ ${1:-} == -f ]]; then
    follow=1
    shift
  fi
  if (($# == 0)); then
    shopt -s nullglob
    files=("$LOG_DIR"/*.log)
    shopt -u nullglob
  fi
  for name in "$@"; do
    [[ -e $(log_file "$name") ]] || die "no log $(log_file "$name")"
    files+=("$(log_file "$name")")
  done
  ((${#files[@]})) || die "no logs yet in $LOG_DIR"
  if ((follow)); then
    exec tail -n 20 -F "${files[@]}"
  fi
  tail -n 100 "${files[@]}"
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  recycle-broker) cmd_recycle_broker ;;
  logs)
    shift
    cmd_logs "$@"
    ;;
  *)
    sed -n '2,18s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
