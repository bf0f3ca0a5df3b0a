#!/usr/bin/env bash
# scripts/bench.sh: `make bench`. Measures the local stack (`make up`) with
# `achilles load` and writes bench/results/latest.json (+ a timestamped copy)
# and the results table in bench/README.md. bench/README.md explains every figure.
#
# Phases, in order (each one a separate `achilles load` run):
#   1. broker   raw rdkafka producer limit, same record size      BENCH_BROKER_SECONDS
#   2. ingest   closed loop, as fast as possible, + landed rate   BENCH_SECONDS (>= 60 for the figure)
#   3. fresh    open loop at BENCH_FRESHNESS_RATE events/s        BENCH_PHASE_SECONDS
#   4. nearsat  open loop at BENCH_NEAR_SAT_FRACTION x the sustained rate of phase 2
#   5. api      open loop at BENCH_API_RATE requests/s, BENCH_API_BATCH events each
#   6. read     open loop at BENCH_READ_RATE requests/s on the read endpoints
#   7. cluster  ../shared/tools/loghub_eval.py on `achilles cluster`
#   8. micro    criterion micro-benchmarks (cargo bench -p achilles-core), BENCH_MICRO=0 skips
#   9. profile  only with BENCH_PROFILE=1: perf record of the API and raw sink under load
# Peak RSS (VmHWM) of every service in .stack/*.pid is read at the end.
#
# Quick trial: BENCH_SECONDS=10 BENCH_PHASE_SECONDS=5 BENCH_MICRO=0 make bench
# Starts the stack if it is not running and stops again only what it started.
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
BENCH_DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-180}
BENCH_MICRO=${BENCH_MICRO:-1}
BENCH_PROFILE=${BENCH_PROFILE:-0}
BENCH_LOGHUB_EVAL=${BENCH_LOGHUB_EVAL:-$ROOT/../shared/tools/loghub_eval.py}
RESULTS_DIR="$ROOT/bench/results"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/achilles-bench.XXXXXX")
LOAD_BIN=$(release_bin achilles)

# ------------------------------------------------------------ the stack
# What ran before we started: only the rest is ours to stop at the end.
declare -A RUNNING_BEFORE=()
for pidf in "$STACK_DIR"/*.pid; do
  [[ -e $pidf ]] && is_pid_alive "$pidf" && RUNNING_BEFORE[$(basename "$pidf" .pid)]=1
done
PG_STARTED_BEFORE=0
[[ -f $PG_STARTED_FILE ]] && PG_STARTED_BEFORE=1
SAMPLER_PID=""

cleanup() {
  local rc=$? pidf name version cluster
  [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null
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
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
  info "cargo build --release --bins"
  cargo build --release --bins
fi
STACK_NO_BUILD=1 bash "$ROOT/scripts/stack.sh" up
export_service_env
[[ -x $LOAD_BIN ]] || die "$LOAD_BIN is missing"

# Peak RSS: VmHWM is the kernel's own high-water mark (read at the end);
# the sampler adds the highest VmRSS seen *during* this run, which matters
# for services that were already running (their VmHWM covers their whole life).
rss_sampler() {
  local pidf name pid kb
  while true; do
    for pidf in "$STACK_DIR"/*.pid; do
      [[ -e $pidf ]] || continue
      name=$(basename "$pidf" .pid)
      pid=$(<"$pidf")
      kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
      [[ -n $kb ]] && printf '%s %s\n' "$name" "$kb"
    done
    sleep 1
  done
}
rss_sampler >"$WORK/rss-samples.txt" 2>/dev/null &
SAMPLER_PID=$!

events_rows() {
  psql "$DATABASE_URL" -Atqc 'SELECT count(*) FROM events' 2>/dev/null || echo null
}
EVENTS_ROWS_BEFORE=$(events_rows)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# phase NAME ARGS...: one `achilles load --json` run into $WORK/NAME.json.
phase() {
  local name=$1
  shift
  info "phase $name: achilles load $*"
  if ! "$LOAD_BIN" load --json "$@" >"$WORK/$name.json" 2>"$WORK/$name.err"; then
    warn "phase $name failed: $(tail -n 3 "$WORK/$name.err")"
    jq -n --arg e "$(tail -n 5 "$WORK/$name.err")" '{failed: $e}' >"$WORK/$name.json"
  fi
  jq -c '{events_per_s, requests_per_s, latency_ms: .latency_ms | {p50, p95, p99}?, errors}' \
    "$WORK/$name.json" 2>/dev/null >&2 || true
}

phase broker --broker-limit --duration "$BENCH_BROKER_SECONDS"
phase ingest --concurrency "$BENCH_CONCURRENCY" --batch-size "$BENCH_BATCH" \
  --duration "$BENCH_SECONDS" --landing --derived off --drain-timeout "$BENCH_DRAIN_TIMEOUT"
phase fresh --rate "$BENCH_FRESHNESS_RATE" --batch-size "$BENCH_BATCH" \
  --concurrency "$BENCH_OPEN_CONCURRENCY" --duration "$BENCH_PHASE_SECONDS" --landing \
  --drain-timeout "$BENCH_DRAIN_TIMEOUT" --seed 2

# Near saturation: a fraction of what the whole pipeline sustained, i.e. the
# lower of the acknowledged and the landed rate of phase 2.
NEAR_SAT_RATE=$(jq -r --argjson f "$BENCH_NEAR_SAT_FRACTION" '
  [.events_per_s, (.landing.landed_events_per_s // .events_per_s)]
  | map(select(. != null and . > 0)) | if length == 0 then 0 else (min * $f | floor) end' \
  "$WORK/ingest.json" 2>/dev/null || echo 0)
if ((NEAR_SAT_RATE > 0)); then
  phase nearsat --rate "$NEAR_SAT_RATE" --batch-size "$BENCH_BATCH" \
    --concurrency "$BENCH_OPEN_CONCURRENCY" --duration "$BENCH_PHASE_SECONDS" --landing \
    --drain-timeout "$BENCH_DRAIN_TIMEOUT" --seed 3
else
  warn "phase nearsat skipped: phase ingest measured no rate"
  jq -n '{failed: "skipped: the ingest phase measured no rate"}' >"$WORK/nearsat.json"
fi
phase api --request-rate "$BENCH_API_RATE" --batch-size "$BENCH_API_BATCH" \
  --concurrency "$BENCH_OPEN_CONCURRENCY" --duration "$BENCH_PHASE_SECONDS" --landing \
  --derived off --drain-timeout "$BENCH_DRAIN_TIMEOUT" --seed 4
phase read --read --request-rate "$BENCH_READ_RATE" --concurrency "$BENCH_OPEN_CONCURRENCY" \
  --duration "$BENCH_PHASE_SECONDS" --seed 5

# ------------------------------------------------------------ clustering
info "phase cluster: $BENCH_LOGHUB_EVAL --cmd '$LOAD_BIN cluster'"
if [[ -f $BENCH_LOGHUB_EVAL ]] &&
  timeout 600 python3 "$BENCH_LOGHUB_EVAL" --cmd "$LOAD_BIN cluster" >"$WORK/cluster.txt" 2>&1; then
  tail -n 1 "$WORK/cluster.txt" >&2
else
  warn "phase cluster failed: $(tail -n 2 "$WORK/cluster.txt" 2>/dev/null || echo "$BENCH_LOGHUB_EVAL not found")"
  echo "FAILED" >>"$WORK/cluster.txt"
fi

# ------------------------------------------------------------ memory
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""
: >"$WORK/rss.txt"
for pidf in "$STACK_DIR"/*.pid; do
  [[ -e $pidf ]] && is_pid_alive "$pidf" || continue
  name=$(basename "$pidf" .pid)
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$(<"$pidf")/status" 2>/dev/null || echo 0)
  sampled=$(awk -v n="$name" '$1 == n && $2 > m {m = $2} END {print m + 0}' "$WORK/rss-samples.txt")
  before=0
  [[ -n ${RUNNING_BEFORE[$name]:-} ]] && before=1
  printf '%s %s %s %s\n' "$name" "${hwm:-0}" "$sampled" "$before" >>"$WORK/rss.txt"
done

# ------------------------------------------------------------ micro-benchmarks
if [[ $BENCH_MICRO == 1 ]]; then
  info "phase micro: cargo bench -p achilles-core --bench hot_path"
  if cargo bench -p achilles-core --bench hot_path -- --warm-up-time 1 --measurement-time 3 \
    >"$WORK/micro.txt" 2>&1; then
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
  bash "$ROOT/bench/profile.sh" "$LOAD_BIN" || warn "profiling failed (see above)"
fi

# ------------------------------------------------------------ results
mkdir -p "$RESULTS_DIR"
python3 "$ROOT/bench/render.py" \
  --work "$WORK" --results "$RESULTS_DIR" --readme "$ROOT/bench/README.md" \
  --started-at "$STARTED_AT" --load-before "$LOAD_BEFORE" --events-rows-before "$EVENTS_ROWS_BEFORE" \
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
  --brokers "$ACHILLES_KAFKA__BROKERS" --database-url "$DATABASE_URL"
