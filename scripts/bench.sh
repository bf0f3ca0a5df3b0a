#!/usr/bin/env bash
# scripts/bench.sh: `make bench`. Measures the local stack (`make up`) with
# `achilles load` and writes bench/results/latest.json (+ a timestamped copy)
# and the results table in bench/README.md. bench/README.md explains every figure.
#
# Phases, in order (each one a separate `achilles load` run):
#   1. broker   raw rdkafka producer limit, same record size, with as many
#               consumer groups reading as read the events topic   BENCH_BROKER_SECONDS
#   2. ingest   closed loop, as fast as possible, + landed rate   BENCH_SECONDS (>= 60 for the figure)
#   Phases 1 and 2 (the headline capacity figures) run BENCH_REPEATS times
#   (default 2): the headline is the median, the spread (min-max) is shown.
#   3. fresh    open loop at BENCH_FRESHNESS_RATE events/s        BENCH_PHASE_SECONDS
#   4. nearsat  open loop at BENCH_NEAR_SAT_FRACTION x the sustained rate of phase 2
#   5. api      open loop at BENCH_API_RATE requests/s, BENCH_API_BATCH events each
#   6. read     open loop at BENCH_READ_RATE requests/s on the read endpoints (after ANALYZE)
#   7. cluster  `achilles cluster --eval` on the vendored LogHub samples (tests/data/loghub)
#      attribution  `achilles eval attribution` on the labelled sessions of shared/eval
#   8. micro    criterion micro-benchmarks (cargo bench -p achilles-core), BENCH_MICRO=0 skips
#   9. profile  only with BENCH_PROFILE=1: perf record of the API and raw sink under load
# Peak RSS (VmHWM) of every service in .stack/*.pid is read at the end.
#
# Quick trial: BENCH_SECONDS=10 BENCH_PHASE_SECONDS=5 BENCH_MICRO=0 make bench
# Starts the stack if it is not running and stops again only what it started.
# BENCH_STACK=0 measures whatever ACHILLES_API_URL, DATABASE_URL and
# ACHILLES_KAFKA__BROKERS point at (BENCH_SINK_METRICS, BENCH_PROCESSOR_METRICS,
# BENCH_AGENT_METRICS for the metrics addresses) and starts/stops nothing. Service processes are
# found by the port they listen on (or BENCH_PIDS="api=PID raw-sink=PID ...").
# BENCH_NO_BUILD=1 skips `cargo build --release --bins`. A run from a tree with
# uncommitted changes is written to bench/results/<time>-dirty.json only: the
# headline (latest.json, bench/README.md) needs a clean tree, or
# BENCH_ALLOW_DIRTY=1 (which marks it dirty).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

BENCH_SECONDS=${BENCH_SECONDS:-60}
BENCH_PHASE_SECONDS=${BENCH_PHASE_SECONDS:-30}
BENCH_BROKER_SECONDS=${BENCH_BROKER_SECONDS:-$BENCH_PHASE_SECONDS}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-32}
BENCH_BATCH=${BENCH_BATCH:-100}
BENCH_FRESHNESS_RATE=${BENCH_FRESHNESS_RATE:-5000}
BENCH_NEAR_SAT_FRACTION=${BENCH_NEAR_SAT_FRACTION:-0.8}
BENCH_API_RATE=${BENCH_API_RATE:-5000}
BENCH_API_BATCH=${BENCH_API_BATCH:-1}
BENCH_READ_RATE=${BENCH_READ_RATE:-5000}
BENCH_OPEN_CONCURRENCY=${BENCH_OPEN_CONCURRENCY:-256}
BENCH_DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-120}
BENCH_SETTLE_TIMEOUT=${BENCH_SETTLE_TIMEOUT:-60}
BENCH_MICRO=${BENCH_MICRO:-1}
BENCH_PROFILE=${BENCH_PROFILE:-0}
BENCH_LOGHUB_DATA=${BENCH_LOGHUB_DATA:-$ROOT/tests/data/loghub}
BENCH_STACK=${BENCH_STACK:-1}
BENCH_REPEATS=${BENCH_REPEATS:-2}
BENCH_ALLOW_DIRTY=${BENCH_ALLOW_DIRTY:-0}
BENCH_SINK_METRICS=${BENCH_SINK_METRICS:-http://127.0.0.1:9101/metrics}
BENCH_PROCESSOR_METRICS=${BENCH_PROCESSOR_METRICS:-http://127.0.0.1:9102/metrics}
BENCH_AGENT_METRICS=${BENCH_AGENT_METRICS:-http://127.0.0.1:9103/metrics}
RESULTS_DIR="$ROOT/bench/results"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/achilles-bench.XXXXXX")
LOAD_BIN=$(release_bin achilles)

# ------------------------------------------------------------ the stack
# port_pid URL: pid of the process listening on URL's port (empty if none).
port_pid() {
  local hostport=${1#*://}
  hostport=${hostport%%/*}
  hostport=${hostport%%,*}
  { ss -ltnpH "sport = :${hostport##*:}" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2; } || true
}

# service_pids: "NAME PID" for each process of the measured stack: found by
# the port it serves, then any other process in .stack/*.pid.
service_pids() {
  local entry name pid pidf seen=" " seen_names=" "
  if [[ -n ${BENCH_PIDS:-} ]]; then
    tr ' ' '\n' <<<"$BENCH_PIDS" | tr '=' ' ' | grep -v '^$'
    return
  fi
  for entry in "api $ACHILLES_API_URL" "raw-sink $BENCH_SINK_METRICS" \
    "processor $BENCH_PROCESSOR_METRICS" "agent $BENCH_AGENT_METRICS" \
    "tansu tcp://$ACHILLES_KAFKA__BROKERS"; do
    pid=$(port_pid "${entry#* }")
    [[ -n $pid ]] || continue
    printf '%s %s\n' "${entry%% *}" "$pid"
    seen+="$pid "
    seen_names+="${entry%% *} "
  done
  # Other processes of our own stack (BENCH_STACK=0 measures someone
  # else's, whose pid files are not in .stack).
  [[ $BENCH_STACK == 1 ]] || return 0
  for pidf in "$STACK_DIR"/*.pid; do
    if [[ ! -e $pidf ]] || ! is_pid_alive "$pidf"; then continue; fi
    pid=$(cat "$pidf" 2>/dev/null) || continue
    name=$(basename "$pidf" .pid)
    [[ $seen == *" $pid "* ]] && continue
    # A name already taken by a port (another instance): keep both apart.
    [[ $seen_names == *" $name "* ]] && name="$name-$pid"
    printf '%s %s\n' "$name" "$pid"
  done
}

export_service_env
# What ran before we started: only the rest is ours to stop at the end.
declare -A RUNNING_BEFORE=()
for pidf in "$STACK_DIR"/*.pid; do
  [[ -e $pidf ]] && is_pid_alive "$pidf" && RUNNING_BEFORE[$(basename "$pidf" .pid)]=1
done
PIDS_BEFORE=" $(service_pids | awk '{print $2}' | tr '\n' ' ')"
PG_STARTED_BEFORE=0
[[ -f $PG_STARTED_FILE ]] && PG_STARTED_BEFORE=1
SAMPLER_PID=""

cleanup() {
  local rc=$? pidf name version cluster
  if [[ -n $SAMPLER_PID ]]; then kill "$SAMPLER_PID" 2>/dev/null || true; fi
  if [[ $BENCH_STACK == 1 ]]; then
    # Services first, the broker after them, Postgres last (as stack.sh down).
    for pidf in "$STACK_DIR"/*.pid; do
      [[ -e $pidf ]] || continue
      name=$(basename "$pidf" .pid)
      [[ $name == tansu || -n ${RUNNING_BEFORE[$name]:-} ]] && continue
      stop_pidfile "$pidf"
    done
    if [[ -z ${RUNNING_BEFORE[tansu]:-} && -e $(pid_file tansu) ]]; then
      stop_pidfile "$(pid_file tansu)"
    fi
    if ((PG_STARTED_BEFORE == 0)) && [[ -f $PG_STARTED_FILE ]]; then
      read -r version cluster <"$PG_STARTED_FILE"
      info "stopping PostgreSQL $version/$cluster (started by this benchmark)"
      as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" stop || true
      rm -f "$PG_STARTED_FILE"
    fi
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
  info "cargo build --release --bins"
  # Not with the service environment: see export_service_env in lib.sh.
  env -u DATABASE_URL cargo build --release --bins
fi
if [[ $BENCH_STACK == 1 ]]; then
  STACK_NO_BUILD=1 bash "$ROOT/scripts/stack.sh" up
else
  info "BENCH_STACK=0: measuring $ACHILLES_API_URL as it is"
fi
[[ -x $LOAD_BIN ]] || die "$LOAD_BIN is missing"

# Peak RSS: VmHWM is the kernel's own high-water mark (read at the end);
# the sampler adds the highest VmRSS seen *during* this run, which matters
# for processes that were already running (their VmHWM covers their whole life).
service_pids >"$WORK/pids.txt"
info "measuring memory of: $(tr '\n' ' ' <"$WORK/pids.txt")"
rss_sampler() {
  local name pid kb
  while true; do
    while read -r name pid; do
      kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
      [[ -n $kb ]] && printf '%s %s\n' "$name" "$kb"
    done <"$WORK/pids.txt"
    sleep 1
  done
}
rss_sampler >"$WORK/rss-samples.txt" 2>/dev/null &
SAMPLER_PID=$!

events_rows() {
  psql "$DATABASE_URL" -Atqc 'SELECT count(*) FROM events' 2>/dev/null || echo null
}
EVENTS_ROWS_BEFORE=$(events_rows)
# The server settings that decide Postgres' write cost (`make tune-postgres`).
PG_SETTINGS=$(psql "$DATABASE_URL" -Atqc \
  "SELECT coalesce(json_object_agg(name, current_setting(name)), '{}') FROM pg_settings
   WHERE name IN ('shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'synchronous_commit', 'wal_compression')" \
  2>/dev/null || echo '{}')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# cpu_snapshot: "NAME TICKS" of CPU time used so far by each measured process
# and by PostgreSQL (clock ticks, user+system). Postgres backends come and go
# (every connection is a process), so it is the live server processes plus
# what the postmaster collected from the ones that exited (cutime+cstime).
cpu_snapshot() {
  local name pid stat total=0 postmaster
  while read -r name pid; do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    stat=${stat##*) } # fields after "pid (comm) "; utime and stime are 12th and 13th
    awk -v n="$name" '{print n, $12 + $13}' <<<"$stat"
  done <"$WORK/pids.txt"
  postmaster=$(pgrep -x -o postgres || true)
  for pid in $(pgrep -x postgres || true); do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    stat=${stat##*) }
    if [[ $pid == "$postmaster" ]]; then
      total=$((total + $(awk '{print $12 + $13 + $14 + $15}' <<<"$stat")))
    else
      total=$((total + $(awk '{print $12 + $13}' <<<"$stat")))
    fi
  done
  printf 'postgres %s\n' "$total"
}

# phase NAME ARGS...: one `achilles load --json` run into $WORK/NAME.json, with
# the CPU time each process (and the load generator itself) spent on it.
phase() {
  local name=$1 timer=()
  shift
  info "phase $name: achilles load $*"
  [[ -x /usr/bin/time ]] && timer=(/usr/bin/time -f '%U %S' -o "$WORK/$name.loadcpu")
  cpu_snapshot >"$WORK/$name.cpu0"
  if ! "${timer[@]}" "$LOAD_BIN" load --json "$@" >"$WORK/$name.json" 2>"$WORK/$name.err"; then
    warn "phase $name failed: $(tail -n 3 "$WORK/$name.err")"
    jq -n --arg e "$(tail -n 5 "$WORK/$name.err")" '{failed: $e}' >"$WORK/$name.json"
  fi
  cpu_snapshot >"$WORK/$name.cpu1"
  jq -c '{events_per_s, requests_per_s, p50_ms: .latency_ms.p50, p99_ms: .latency_ms.p99,
    landed_per_s: .landing.landed_events_per_s, errors, failed}' "$WORK/$name.json" >&2 || true
  # A processor that could not catch up once will not in the next phase
  # either: stop waiting for it, so a slow processor cannot stretch the run
  # by minutes per phase (its figures say how far behind it is).
  if [[ ${METRICS[*]} != *--skip-processor-wait* ]] &&
    jq -e '.landing.processor_running and .landing.derived_caught_up_after_s == null' \
      "$WORK/$name.json" >/dev/null 2>&1; then
    warn "the processor is behind after phase $name: later phases do not wait for it"
    METRICS+=(--skip-processor-wait)
    NOTES+=("the processor had not caught up after phase $name; later phases neither waited for it to be idle nor for it to apply their events")
  fi
}
NOTES=()

# repeat N: the suffix of the Nth run of a repeated phase ("" for the first).
repeat() { (($1 == 1)) && echo "" || echo ".$1"; }
for ((i = 1; i <= BENCH_REPEATS; i++)); do
  phase "broker$(repeat $i)" --broker-limit --duration "$BENCH_BROKER_SECONDS" --seed "$((10 + i))"
done
# Every ingest phase waits (up to BENCH_SETTLE_TIMEOUT) for the consumers to
# have no lag before it starts, and (up to BENCH_DRAIN_TIMEOUT) for its own
# events to land and be derived after it: no phase measures another's backlog.
METRICS=(--sink-metrics "$BENCH_SINK_METRICS" --processor-metrics "$BENCH_PROCESSOR_METRICS"
  --settle-timeout "$BENCH_SETTLE_TIMEOUT")
for ((i = 1; i <= BENCH_REPEATS; i++)); do
  phase "ingest$(repeat $i)" "${METRICS[@]}" --concurrency "$BENCH_CONCURRENCY" \
    --batch-size "$BENCH_BATCH" --duration "$BENCH_SECONDS" --landing --derived off \
    --drain-timeout "$BENCH_DRAIN_TIMEOUT" --seed "$((20 + i))"
done
phase fresh "${METRICS[@]}" --rate "$BENCH_FRESHNESS_RATE" --batch-size "$BENCH_BATCH" \
  --concurrency "$BENCH_OPEN_CONCURRENCY" --duration "$BENCH_PHASE_SECONDS" --landing \
  --drain-timeout "$BENCH_DRAIN_TIMEOUT" --seed 2

# Near saturation: a fraction of what the whole pipeline sustained, i.e. the
# lower of the acknowledged and the landed rate of phase 2.
NEAR_SAT_RATE=$(jq -r --argjson f "$BENCH_NEAR_SAT_FRACTION" '
  [.events_per_s, (.landing.landed_events_per_s // .events_per_s)]
  | map(select(. != null and . > 0)) | if length == 0 then 0 else (min * $f | floor) end' \
  "$WORK/ingest.json" 2>/dev/null || echo 0)
if ((NEAR_SAT_RATE > 0)); then
  phase nearsat "${METRICS[@]}" --rate "$NEAR_SAT_RATE" --batch-size "$BENCH_BATCH" \
    --concurrency "$BENCH_OPEN_CONCURRENCY" --duration "$BENCH_PHASE_SECONDS" --landing \
    --drain-timeout "$BENCH_DRAIN_TIMEOUT" --seed 3
else
  warn "phase nearsat skipped: phase ingest measured no rate"
  jq -n '{failed: "skipped: the ingest phase measured no rate"}' >"$WORK/nearsat.json"
fi
phase api "${METRICS[@]}" --request-rate "$BENCH_API_RATE" --batch-size "$BENCH_API_BATCH" \
  --concurrency "$BENCH_OPEN_CONCURRENCY" --duration "$BENCH_PHASE_SECONDS" --landing \
  --derived off --drain-timeout "$BENCH_DRAIN_TIMEOUT" --seed 4
# Fresh statistics, as autovacuum would have them in steady state: right
# after millions of inserts the planner may pick a poor plan for reads.
psql "$DATABASE_URL" -qc 'ANALYZE events; ANALYZE sessions' ||
  warn "ANALYZE failed: read latencies may reflect stale planner statistics"
phase read --read --request-rate "$BENCH_READ_RATE" --concurrency "$BENCH_OPEN_CONCURRENCY" \
  --duration "$BENCH_PHASE_SECONDS" --seed 5

# ------------------------------------------------------------ clustering
info "phase cluster: $LOAD_BIN cluster --eval $BENCH_LOGHUB_DATA"
if timeout 600 "$LOAD_BIN" cluster --eval "$BENCH_LOGHUB_DATA" >"$WORK/cluster.txt" 2>&1; then
  tail -n 1 "$WORK/cluster.txt" >&2
else
  warn "phase cluster failed: $(tail -n 2 "$WORK/cluster.txt" 2>/dev/null)"
  echo "FAILED" >>"$WORK/cluster.txt"
fi

# ------------------------------------------------------------ attribution
# Induced-error attribution scored on the project's labelled sessions
# (shared/eval): precision and recall of the claims, break/fix accuracy.
info "phase attribution: $LOAD_BIN eval attribution --json"
if ! timeout 600 "$LOAD_BIN" eval attribution --json >"$WORK/attribution.json" 2>"$WORK/attribution.err"; then
  warn "phase attribution failed: $(tail -n 2 "$WORK/attribution.err")"
  jq -n --arg e "$(tail -n 3 "$WORK/attribution.err")" '{failed: $e}' >"$WORK/attribution.json"
fi

# ------------------------------------------------------------ memory
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""
: >"$WORK/rss.txt"
while read -r name pid; do
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  [[ -n $hwm ]] || {
    warn "$name (pid $pid) is gone: no peak RSS"
    continue
  }
  sampled=$(awk -v n="$name" '$1 == n && $2 > m {m = $2} END {print m + 0}' "$WORK/rss-samples.txt")
  before=0
  [[ $PIDS_BEFORE == *" $pid "* ]] && before=1
  printf '%s %s %s %s\n' "$name" "$hwm" "$sampled" "$before" >>"$WORK/rss.txt"
done <"$WORK/pids.txt"

# ------------------------------------------------------------ micro-benchmarks
if [[ $BENCH_MICRO == 1 ]]; then
  info "phase micro: cargo bench -p achilles-core --bench hot_path"
  if env -u DATABASE_URL cargo bench -p achilles-core --bench hot_path -- \
    --warm-up-time 1 --measurement-time 3 >"$WORK/micro.txt" 2>&1; then
    for f in "$(target_dir)"/criterion/*/*/new/estimates.json; do
      [[ -e $f ]] || continue
      rel=${f#"$(target_dir)/criterion/"}
      printf '%s %s\n' "${rel%/new/estimates.json}" "$(jq '.median.point_estimate' "$f")"
    done >"$WORK/micro-estimates.txt"
  else
    warn "micro-benchmarks failed: $(tail -n 3 "$WORK/micro.txt")"
  fi
fi

# ------------------------------------------------------------ profile (opt-in)
if [[ $BENCH_PROFILE == 1 ]]; then
  bash "$ROOT/bench/profile.sh" "$LOAD_BIN" "$WORK/pids.txt" || warn "profiling failed (see above)"
fi

# ------------------------------------------------------------ results
mkdir -p "$RESULTS_DIR"
python3 "$ROOT/bench/render.py" \
  --work "$WORK" --results "$RESULTS_DIR" --readme "$ROOT/bench/README.md" \
  --started-at "$STARTED_AT" --load-before "$LOAD_BEFORE" --events-rows-before "$EVENTS_ROWS_BEFORE" \
  --postgres-settings "$PG_SETTINGS" \
  --config "$(jq -n \
    --argjson ingest_s "$BENCH_SECONDS" --argjson phase_s "$BENCH_PHASE_SECONDS" \
    --argjson broker_s "$BENCH_BROKER_SECONDS" --argjson concurrency "$BENCH_CONCURRENCY" \
    --argjson batch "$BENCH_BATCH" --argjson fresh_rate "$BENCH_FRESHNESS_RATE" \
    --argjson near_sat_fraction "$BENCH_NEAR_SAT_FRACTION" --argjson api_rate "$BENCH_API_RATE" \
    --argjson api_batch "$BENCH_API_BATCH" --argjson read_rate "$BENCH_READ_RATE" \
    --argjson open_concurrency "$BENCH_OPEN_CONCURRENCY" \
    '{ingest_seconds: $ingest_s, phase_seconds: $phase_s, broker_seconds: $broker_s,
      concurrency: $concurrency, batch_size: $batch, freshness_rate_events_per_s: $fresh_rate,
      near_saturation_fraction: $near_sat_fraction, api_rate_requests_per_s: $api_rate,
      api_batch_size: $api_batch, read_rate_requests_per_s: $read_rate,
      open_loop_max_in_flight: $open_concurrency}')" \
  --brokers "$ACHILLES_KAFKA__BROKERS" --database-url "$DATABASE_URL" --clk-tck "$(getconf CLK_TCK)" \
  --repeats "$BENCH_REPEATS" --allow-dirty "$BENCH_ALLOW_DIRTY" \
  --notes "$(printf '%s\n' "${NOTES[@]}")"
