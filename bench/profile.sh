#!/usr/bin/env bash
# bench/profile.sh LOAD_BIN PIDS_FILE: CPU profiles of the Achilles services
# (api, raw-sink, processor: the "NAME PID" lines of PIDS_FILE) under
# closed-loop ingest load, run by scripts/bench.sh with BENCH_PROFILE=1
# against a running stack. Writes to bench/profiles/:
#   NAME.txt     perf report --stdio, self and inclusive top entries
#   NAME.svg     flamegraph (and NAME.folded), when inferno is installed
#                (`cargo install inferno`)
#   system.txt   a system-wide profile by process and by DSO: where the
#                machine's cores went (Postgres and the broker included)
#
# Uses the software cpu-clock event (hardware counters are often missing in
# VMs) and DWARF unwinding (release builds have no frame pointers, but keep
# line tables: Cargo.toml sets debug = "line-tables-only").
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

LOAD_BIN=$1
PIDS_FILE=$2
SECONDS_PROFILED=${BENCH_PROFILE_SECONDS:-15}
OUT="$ROOT/bench/profiles"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/achilles-profile.XXXXXX")
PERF_PIDS=()
LOAD_PID=""

cleanup() {
  local pid
  for pid in "${PERF_PIDS[@]}" $LOAD_PID; do
    kill -INT "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

# report LINES PERF-REPORT-ARGS...: the first LINES non-empty lines of a perf
# report, trailing padding removed (perf pads symbol columns very wide).
report() {
  local lines=$1
  shift
  perf report "$@" --stdio 2>/dev/null >"$TMP/report.txt" || true
  grep -v '^$' "$TMP/report.txt" | sed -E 's/ +- +- *$//; s/ +$//' | head -n "$lines" || true
}

have perf || die "perf is not installed (apt-get install linux-perf)"
perf record -e cpu-clock -o "$TMP/probe.data" -- true >/dev/null 2>&1 ||
  die "perf cannot sample here (perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid))"
mkdir -p "$OUT"
export_service_env

info "profile: closed-loop ingest for $((SECONDS_PROFILED + 10)) s, perf for ${SECONDS_PROFILED} s"
"$LOAD_BIN" load --json --duration $((SECONDS_PROFILED + 10)) --seed 9 >"$TMP/load.json" 2>/dev/null &
LOAD_PID=$!
sleep 3 # let the load reach a steady state
PROFILED=()
while read -r name pid; do
  [[ $name == api || $name == raw-sink || $name == processor ]] || continue
  PROFILED+=("$name")
  perf record -e cpu-clock -F 99 --call-graph dwarf,16384 -p "$pid" \
    -o "$TMP/$name.data" -- sleep "$SECONDS_PROFILED" >"$TMP/$name.perf.log" 2>&1 &
  PERF_PIDS+=($!)
done <"$PIDS_FILE"
perf record -a -e cpu-clock -F 99 -o "$TMP/system.data" -- sleep "$SECONDS_PROFILED" \
  >"$TMP/system.perf.log" 2>&1 &
PERF_PIDS+=($!)
for pid in "${PERF_PIDS[@]}"; do wait "$pid" || true; done
PERF_PIDS=()
wait "$LOAD_PID" || true
LOAD_PID=""
jq -c '{profiled_load_events_per_s: .events_per_s}' "$TMP/load.json" 2>/dev/null >&2 || true

{
  echo "# perf report: system-wide CPU samples by process, then by process and DSO"
  report 30 -i "$TMP/system.data" --sort comm --percent-limit 0.5
  echo
  report 50 -i "$TMP/system.data" --sort comm,dso --percent-limit 0.7
} >"$OUT/system.txt"
for name in "${PROFILED[@]}"; do
  [[ -s $TMP/$name.data ]] || continue
  info "profile: perf report for $name"
  {
    echo "# perf report --no-children (self time), achilles-$name under closed-loop ingest load"
    report 60 -i "$TMP/$name.data" --no-children --sort symbol --percent-limit 0.7 -g none
    echo
    echo "# perf report --children (inclusive time), top entries"
    report 60 -i "$TMP/$name.data" --children --sort symbol --percent-limit 3 -g none
  } >"$OUT/$name.txt"
  if have inferno-collapse-perf && have inferno-flamegraph; then
    perf script -i "$TMP/$name.data" 2>/dev/null >"$TMP/$name.script" || true
    inferno-collapse-perf <"$TMP/$name.script" >"$OUT/$name.folded"
    inferno-flamegraph --minwidth 0.2 --title "achilles-$name under ingest load" <"$OUT/$name.folded" >"$OUT/$name.svg" ||
      warn "no flamegraph for $name"
  else
    warn "inferno not installed (cargo install inferno): no flamegraph for $name"
  fi
done
info "profiles in $OUT"
