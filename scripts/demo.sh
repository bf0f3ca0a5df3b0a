#!/usr/bin/env bash
# scripts/demo.sh: what `make demo` runs. Brings the local stack up
# (scripts/stack.sh up), then drives the pipeline once with the CLI:
# start a session, send examples/demo-session.jsonl into it, end it, wait (up to
# 30 s) until the events have landed in Postgres, show the session and its first
# events, wait (up to 90 s) for the monitoring agent's verdict, and end with
# what Achilles is for: the session's report (verdict, induced errors with their
# causes and fixes, break/fix cycles), its error clusters, the insights it
# raised, and the errors recurring across sessions; then commands to try next.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

EVENTS_FILE="$ROOT/examples/demo-session.jsonl"
LAND_TIMEOUT=30
REPORT_TIMEOUT=${DEMO_REPORT_TIMEOUT:-90}

[[ -f $EVENTS_FILE ]] || die "$EVENTS_FILE is missing"
expected=$(grep -c '[^[:space:]]' "$EVENTS_FILE" || true)
((expected > 0)) || die "$EVENTS_FILE has no events"
# The kind of the first event: something `achilles events` output should show.
first_kind=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    if line.strip():
        print(json.loads(line).get("kind", ""))
        break
' "$EVENTS_FILE" 2>/dev/null || true)

"$ROOT/scripts/stack.sh" up
export_service_env
CLI=$(release_bin achilles)

if [[ -t 1 && -z ${NO_COLOR:-} ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
section() { printf '\n%s### %s%s\n' "$bold" "$*" "$plain"; }

section "achilles session start --agent demo-agent --model demo-model --source cli"
sid=$("$CLI" session start --agent demo-agent --model demo-model --source cli)
sid=${sid//[[:space:]]/}
[[ $sid =~ ^[A-Za-z0-9_-]+$ ]] ||
  die "'achilles session start' should print only the new session id, got: $sid"
echo "$sid"

section "achilles send ${EVENTS_FILE#"$ROOT"/} --session $sid --retime   ($expected events)"
"$CLI" send "$EVENTS_FILE" --session "$sid" --retime

section "achilles session end $sid --status completed"
"$CLI" session end "$sid" --status completed

# Landed = Postgres holds them all (if psql and the events table are there to ask),
# else `achilles events` lists them.
landed_count() {
  psql -X -w -qAt "$DATABASE_URL" \
    -c "select count(*) from events where session_id::text = '$sid'" 2>/dev/null
}
events_landed() {
  local n out
  if have psql && n=$(landed_count) && [[ $n =~ ^[0-9]+$ ]]; then
    ((n >= expected))
    return
  fi
  out=$("$CLI" events "$sid" --limit 20 2>/dev/null) || return 1
  [[ -n ${out//[[:space:]]/} && (-z $first_kind || $out == *"$first_kind"*) ]]
}

section "waiting up to ${LAND_TIMEOUT}s for the events to land in Postgres"
deadline=$((SECONDS + LAND_TIMEOUT))
until events_landed; do
  if ((SECONDS >= deadline)); then
    show_log_tail raw-sink 40
    show_log_tail api 20
    die "the events of session $sid did not land within ${LAND_TIMEOUT}s (logs above)"
  fi
  sleep 1
done
echo "landed"

section "achilles session show $sid"
"$CLI" session show "$sid"

section "achilles events $sid --limit 20"
"$CLI" events "$sid" --limit 20

# The processor correlates and clusters, then announces the session's end;
# the agent judges it. The report exists once that happened.
judged() {
  "$CLI" session report "$sid" --json 2>/dev/null |
    python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("report") else 1)' 2>/dev/null
}
section "waiting up to ${REPORT_TIMEOUT}s for the monitoring agent's verdict"
deadline=$((SECONDS + REPORT_TIMEOUT))
until judged; do
  if ((SECONDS >= deadline)); then
    show_log_tail processor 30
    show_log_tail agent 30
    warn "no verdict within ${REPORT_TIMEOUT}s (logs above); showing what is known so far"
    break
  fi
  sleep 1
done

section "achilles session report $sid   (verdict, induced errors and fixes, clusters, insights)"
"$CLI" session report "$sid"

section "achilles insights --session $sid --since 7d   (what the agent warned about while it ran)"
"$CLI" insights --session "$sid" --since 7d

section "achilles clusters --since 1d   (errors recurring across sessions)"
"$CLI" clusters --since 1d

section "achilles leaderboard --since 1d"
"$CLI" leaderboard --since 1d

cat <<EOF

Next steps (copy-paste; the stack keeps running until 'make down'):
  $CLI session report $sid
  $CLI insights --follow                 # live insights (Ctrl-C to stop)
  $CLI sessions --since 1d
  $CLI session show $sid
  $CLI events $sid --limit 20
  $CLI session start --agent my-agent --model my-model --source cli
  $CLI send $EVENTS_FILE --session <SESSION_ID> --retime
  psql $DATABASE_URL -c 'select kind, count(*) from events group by 1'
  psql $DATABASE_URL -c "select template, occurrence_count, session_count from error_clusters order by occurrence_count desc"
  psql $DATABASE_URL -c "select file_path, match_kind, gap_ms, confidence, fixed_at is not null as fixed from event_correlations where session_id = '$sid'"
  psql $DATABASE_URL -c '\\dt'
  curl -s $ACHILLES_API_URL/readyz
  Point Claude Code at this API: README, "Point your coding agent at Achilles"
  (OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=$ACHILLES_API_URL/v1/logs)
  make status    make logs    make down
EOF
