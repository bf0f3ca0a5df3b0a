#!/usr/bin/env bash
# scripts/check-dashboards.sh: prove that every Grafana panel shows data, with a
# real Prometheus scraping the real services under a demo workload
# (`make check-dashboards`).
#
#   scripts/check-dashboards.sh [OPTIONS] [DASHBOARD...]    default: every dashboard
#   scripts/check-dashboards.sh --static                    offline checks only (make test)
#
# DASHBOARD is a file name in deploy/grafana/dashboards/ without .json: overview,
# api, raw-sink, processor, agent, domain. What the live check does:
#  1. scripts/stack.sh up unless the API already answers /readyz (a running stack is
#     reused, never restarted; STACK_NO_BUILD=1 and CARGO_TARGET_DIR work as there);
#  2. starts Prometheus (Debian's package, scripts/ensure-prometheus.sh) on a free
#     loopback port with its own config (scrape_interval 1s, the four services at
#     the addresses the env vars give, the rules of deploy/prometheus/rules) and its
#     storage in a temporary directory;
#  3. drives a workload: scripts/demo.sh (one realistic session through the CLI),
#     then scripts/workload.py (errors, duplicates, reads, and records written
#     straight to the intake topic, some of them to be dead-lettered);
#  4. waits a few scrapes, then evaluates every panel query of the chosen dashboards
#     through /api/v1/query ($__rate_interval -> 1m, $__range -> 1h, $instance -> .*)
#     and fails listing the panels that return no data (or only NaN). Queries with a
#     `or on() vector(0)` fallback that return only the fallback are reported as
#     "ok(0)". A dashboard whose service (e.g. processor) is not up fails too,
#     unless --allow-down;
#  5. checks that every recording and alerting rule evaluated without error, and
#     lists the alerts that are pending or firing;
#  6. stops Prometheus, and whatever part of the stack it started itself.
#
# Options: --static, --keep-stack (leave a stack it started running),
# --no-workload, --allow-down, -v (print the queries of "ok(0)" panels).
# Env: CHECK_PROMETHEUS_PORT (default: a free port), CHECK_RATE_INTERVAL (1m),
# CHECK_SETTLE_SECONDS (8), CHECK_NO_INTAKE=1 (skip the direct-to-Kafka records).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

KAFKA_PY_PACKAGE=confluent-kafka==2.16.1
KAFKA_PY_DIR="$STACK_DIR/pykafka"
RATE_INTERVAL=${CHECK_RATE_INTERVAL:-1m}
SETTLE=${CHECK_SETTLE_SECONDS:-8}

static=0 keep_stack=0 workload=1 check_args=()
names=()
while (($#)); do
  case $1 in
    --static) static=1 ;;
    --keep-stack) keep_stack=1 ;;
    --no-workload) workload=0 ;;
    --allow-down) check_args+=(--allow-down) ;;
    -v | --verbose) check_args+=(-v) ;;
    -h | --help)
      sed -n '2,34s/^# \{0,1\}//p' "$0"
      exit 0
      ;;
    -*) die "unknown option $1 (try --help)" ;;
    *) names+=("$1") ;;
  esac
  shift
done

# ------------------------------------------------------------------ static
static_checks() {
  local tmp
  info "dashboards: lint (JSON, generator up to date, datasource variable, metric and label names)"
  python3 "$ROOT/scripts/dashboards.py" lint
  "$ROOT/scripts/ensure-prometheus.sh" >/dev/null
  tmp=$(mktemp --suffix=.yml)
  python3 "$ROOT/scripts/dashboards.py" rules-file >"$tmp"
  info "dashboards: every panel query parses (promtool check rules)"
  if ! promtool check rules "$tmp" >/dev/null; then
    promtool check rules "$tmp" || true
    rm -f "$tmp"
    die "a panel query does not parse (above)"
  fi
  rm -f "$tmp"
  if [[ -d $ROOT/helm/achilles/dashboards ]]; then
    diff -r "$ROOT/deploy/grafana/dashboards" "$ROOT/helm/achilles/dashboards" >/dev/null ||
      die "helm/achilles/dashboards/ differs from deploy/grafana/dashboards/: run scripts/sync-helm-dashboards.sh"
    info "dashboards: the Helm chart's copies are identical"
  fi
}

if ((static)); then
  ((${#names[@]} == 0)) || die "--static checks every dashboard; no names"
  static_checks
  exit 0
fi

# ------------------------------------------------------------------ live
for n in "${names[@]}"; do
  [[ -f $ROOT/deploy/grafana/dashboards/$n.json ]] ||
    die "no dashboard $n (deploy/grafana/dashboards/$n.json); known: $(find deploy/grafana/dashboards -name '*.json' -printf '%f ' | sed 's/\.json//g')"
done
static_checks
"$ROOT/scripts/ensure-prometheus.sh"
export_service_env

# host:port of a listen address, 0.0.0.0 -> 127.0.0.1
target() {
  local url
  url=$(api_url_from_listen "$1")
  printf '%s' "${url#http://}"
}
API_TARGET=$(target "$ACHILLES_API__LISTEN")
SINK_TARGET=$(target "${ACHILLES_SINK__METRICS_LISTEN:-127.0.0.1:9101}")
PROCESSOR_TARGET=$(target "${ACHILLES_PROCESSOR__METRICS_LISTEN:-127.0.0.1:9102}")
AGENT_TARGET=$(target "${ACHILLES_AGENT__METRICS_LISTEN:-127.0.0.1:9103}")

# What runs before we start anything: only what appears later is ours to stop.
declare -A alive_before=()
for pidf in "$STACK_DIR"/*.pid; do
  [[ -e $pidf ]] && is_pid_alive "$pidf" && alive_before[$pidf]=1
done
pg_started_before=0
[[ -f $PG_STARTED_FILE ]] && pg_started_before=1

TMP=$(mktemp -d -t achilles-check-dashboards.XXXXXX)
prom_pid=""
# shellcheck disable=SC2317 # called through the EXIT trap
cleanup() {
  local rc=$? pidf version cluster
  if [[ -n $prom_pid ]] && kill -0 "$prom_pid" 2>/dev/null; then
    kill -TERM "$prom_pid" 2>/dev/null || true
    wait "$prom_pid" 2>/dev/null || true
  fi
  if ((!keep_stack)); then
    # Services first, the broker after them, Postgres last (as stack.sh down).
    for pidf in "$STACK_DIR"/*.pid; do
      [[ -e $pidf && $(basename "$pidf") != tansu.pid && -z ${alive_before[$pidf]:-} ]] || continue
      stop_pidfile "$pidf"
    done
    pidf=$(pid_file tansu)
    [[ -e $pidf && -z ${alive_before[$pidf]:-} ]] && stop_pidfile "$pidf"
    if ((!pg_started_before)) && [[ -f $PG_STARTED_FILE ]]; then
      read -r version cluster <"$PG_STARTED_FILE"
      info "stopping PostgreSQL $version/$cluster (started by this check)"
      as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" stop || true
      rm -f "$PG_STARTED_FILE"
    fi
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $(http_status "$ACHILLES_API_URL/readyz") == 200 ]]; then
  info "the stack is already up ($ACHILLES_API_URL/readyz answers 200): reusing it"
else
  "$ROOT/scripts/stack.sh" up
fi

# ---------------------------------------------------------------- Prometheus
port=${CHECK_PROMETHEUS_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
PROM_URL="http://127.0.0.1:$port"
cat >"$TMP/prometheus.yml" <<EOF
# written by scripts/check-dashboards.sh
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/deploy/prometheus/rules/*.yml
scrape_configs:
  - job_name: achilles-api
    static_configs: [{targets: ["$API_TARGET"], labels: {service: api}}]
  - job_name: achilles-raw-sink
    static_configs: [{targets: ["$SINK_TARGET"], labels: {service: raw-sink}}]
  - job_name: achilles-processor
    static_configs: [{targets: ["$PROCESSOR_TARGET"], labels: {service: processor}}]
  - job_name: achilles-agent
    static_configs: [{targets: ["$AGENT_TARGET"], labels: {service: agent}}]
EOF
promtool check config "$TMP/prometheus.yml" >/dev/null
info "starting Prometheus on $PROM_URL (scraping api $API_TARGET, raw-sink $SINK_TARGET, processor $PROCESSOR_TARGET, agent $AGENT_TARGET)"
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/data" \
  --web.listen-address="127.0.0.1:$port" --log.level=warn >"$TMP/prometheus.log" 2>&1 &
prom_pid=$!
if ! wait_for_http "$PROM_URL/-/ready" 30; then
  tail -n 30 "$TMP/prometheus.log" >&2
  die "Prometheus did not become ready on $PROM_URL"
fi

# up{service=NAME} as 1/0/"" (no target), from Prometheus.
service_up() {
  curl -fsS --max-time 5 "$PROM_URL/api/v1/query" --data-urlencode "query=max(up{service=\"$1\"})" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
deadline=$((SECONDS + 30))
until [[ $(service_up api) == 1 && $(service_up raw-sink) == 1 ]]; do
  ((SECONDS < deadline)) || die "Prometheus could not scrape the API ($API_TARGET) and the raw sink ($SINK_TARGET) within 30 s"
  sleep 1
done
for s in api raw-sink processor agent; do
  info "  scrape target $s: $([[ $(service_up "$s") == 1 ]] && echo up || echo DOWN)"
done

# ---------------------------------------------------------------- workload
if ((workload)); then
  info "workload 1/2: scripts/demo.sh (one session through the CLI; log: $TMP/demo.log)"
  if ! STACK_NO_BUILD=1 "$ROOT/scripts/demo.sh" >"$TMP/demo.log" 2>&1; then
    tail -n 40 "$TMP/demo.log" >&2
    die "scripts/demo.sh failed (log above)"
  fi
  intake_py=""
  if [[ ${CHECK_NO_INTAKE:-0} != 1 ]]; then
    if [[ ! -d $KAFKA_PY_DIR/confluent_kafka ]]; then
      exec 9>"$STACK_DIR/pykafka-install.lock"
      flock 9
      if [[ ! -d $KAFKA_PY_DIR/confluent_kafka ]]; then
        info "installing $KAFKA_PY_PACKAGE into ${KAFKA_PY_DIR#"$ROOT"/} (the workload's Kafka producer)"
        PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
          --target "$KAFKA_PY_DIR" "$KAFKA_PY_PACKAGE" >&2 ||
          warn "could not install $KAFKA_PY_PACKAGE: the workload skips the intake topic"
      fi
      exec 9>&-
    fi
    intake_py=$KAFKA_PY_DIR
  fi
  workload_args=(--rounds 3)
  [[ -n $intake_py ]] || workload_args+=(--no-intake)
  info "workload 2/2: scripts/workload.py (HTTP errors, duplicates, reads; intake records)"
  PYTHONPATH="$intake_py" python3 "$ROOT/scripts/workload.py" "${workload_args[@]}"
fi
info "waiting ${SETTLE}s for the last records to land and a few scrapes (consumer lag statistics come every 5 s)"
sleep "$SETTLE"

# ---------------------------------------------------------------- panels
info "evaluating every panel query through $PROM_URL/api/v1/query (\$__rate_interval=$RATE_INTERVAL)"
rc=0
python3 "$ROOT/scripts/dashboards.py" check --prometheus "$PROM_URL" --rate-interval "$RATE_INTERVAL" \
  "${check_args[@]}" "${names[@]}" || rc=$?

# ---------------------------------------------------------------- rules
info "rule evaluation against the live data"
RULES_JSON=$(curl -fsS --max-time 10 "$PROM_URL/api/v1/rules") python3 - <<'PY' || rc=1
import json, os, sys
groups = json.loads(os.environ["RULES_JSON"])["data"]["groups"]
bad, active, n = [], [], 0
for g in groups:
    for r in g["rules"]:
        n += 1
        if r.get("health") != "ok":
            bad.append(r["name"] + ": " + str(r.get("lastError") or r.get("health")))
        for a in r.get("alerts", []):
            labels = ", ".join(k + "=" + v for k, v in sorted(a["labels"].items())
                               if k not in ("alertname", "severity"))
            active.append(a["state"].ljust(8) + " " + r["name"] + " (" + labels + ")")
print(f"  {n} rules evaluated, {n - len(bad)} healthy")
for a in active:
    print("  alert " + a)
if bad:
    print("\n".join("  RULE ERROR " + b for b in bad), file=sys.stderr)
    sys.exit(1)
PY

info "observed freshness (ingest -> row committed) over the last 5 minutes"
for q in 0.5 0.95 0.99; do
  curl -fsS --max-time 10 "$PROM_URL/api/v1/query" \
    --data-urlencode "query=histogram_quantile($q, sum by (stage, le) (rate(achilles_freshness_seconds_bucket[5m])))" |
    python3 -c '
import json, sys
q = sys.argv[1]
for s in json.load(sys.stdin)["data"]["result"]:
    stage = s["metric"].get("stage", "?")
    ms = float(s["value"][1]) * 1000
    print("  p%d %-8s %.0f ms" % (round(float(q) * 100), stage, ms))
' "$q" || true
done

if ((rc == 0)); then
  info "every panel of ${names[*]:-every dashboard} returned data"
else
  warn "some panels returned no data (listed above)"
fi
exit "$rc"
