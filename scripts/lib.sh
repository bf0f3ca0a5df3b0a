# shellcheck shell=bash
# scripts/lib.sh: helpers shared by the local-stack scripts. Source it, don't run it:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# State lives in $ROOT/.stack/ (git-ignored):
#   .stack/NAME.pid          pid of a process these scripts started (api, raw-sink, tansu)
#   .stack/logs/NAME.log     its stdout+stderr
#   .stack/postgres.started  "VERSION CLUSTER" of a Postgres cluster these scripts started
#   .stack/py/               the Tansu broker, pip-installed here (never globally)
# Every process started with start_bg carries ACHILLES_STACK_SERVICE=NAME in its
# environment, so a pid file left over from before a reboot never makes us signal an
# unrelated process that happens to have the same pid.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR="$ROOT/.stack"
LOG_DIR="$STACK_DIR/logs"
mkdir -p "$LOG_DIR"

BROKER_PORT=${ACHILLES_BROKER_PORT:-9092}

# ---------------------------------------------------------------- logging
if [[ -t 2 && -z ${NO_COLOR:-} ]]; then
  _c_info=$'\033[1;34m' _c_warn=$'\033[1;33m' _c_err=$'\033[1;31m' _c_off=$'\033[0m'
else
  _c_info='' _c_warn='' _c_err='' _c_off=''
fi
info() { printf '%s==>%s %s\n' "$_c_info" "$_c_off" "$*" >&2; }
warn() { printf '%swarning:%s %s\n' "$_c_warn" "$_c_off" "$*" >&2; }
die() {
  printf '%serror:%s %s\n' "$_c_err" "$_c_off" "$*" >&2
  exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

# Run a command as root (directly, or through sudo when not root).
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif have sudo; then
    sudo "$@"
  else
    die "need root for: $* (and sudo is not installed)"
  fi
}

# ---------------------------------------------------------------- paths
pid_file() { printf '%s/%s.pid' "$STACK_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$LOG_DIR" "$1"; }

# Cargo's target directory: CARGO_TARGET_DIR if set (relative = relative to $ROOT,
# since every cargo call here runs from $ROOT), else $ROOT/target.
target_dir() {
  local dir=${CARGO_TARGET_DIR:-target}
  [[ $dir == /* ]] || dir="$ROOT/$dir"
  printf '%s' "$dir"
}
release_bin() { printf '%s/release/%s' "$(target_dir)" "$1"; }

# "host:port" -> URL a local client can use (0.0.0.0 / [::] -> 127.0.0.1).
api_url_from_listen() {
  local listen=$1 host port
  port=${listen##*:}
  host=${listen%:*}
  case $host in "" | 0.0.0.0 | "[::]" | "::") host=127.0.0.1 ;; esac
  printf 'http://%s:%s' "$host" "$port"
}

# export_service_env: the configuration the Rust binaries read (the defaults of
# the contract with the Rust side; anything already set in the environment wins).
# Deliberately not exported before `cargo build`: with DATABASE_URL set, sqlx's
# query! macros would try to reach that database at compile time.
export_service_env() {
  export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/achilles}
  export ACHILLES_KAFKA__BROKERS=${ACHILLES_KAFKA__BROKERS:-127.0.0.1:$BROKER_PORT}
  export ACHILLES_API__LISTEN=${ACHILLES_API__LISTEN:-127.0.0.1:8080}
  export ACHILLES_DEV_API_KEY=${ACHILLES_DEV_API_KEY:-achilles-dev-key}
  export ACHILLES_LOG_FORMAT=${ACHILLES_LOG_FORMAT:-pretty}
  # The local broker (Tansu) spends CPU per partition and request rather than
  # per byte: 8 partitions cost it ~4x the CPU of 2 at the same event rate
  # (bench/README.md). One instance of each consumer needs no more than 2.
  export ACHILLES_KAFKA__PARTITIONS=${ACHILLES_KAFKA__PARTITIONS:-2}
  # No per-tenant quotas on the local stack: `make bench` drives it far past
  # the production defaults with the one dev tenant. Set them to try quotas.
  export ACHILLES_QUOTAS__EVENTS_PER_SEC=${ACHILLES_QUOTAS__EVENTS_PER_SEC:-0}
  export ACHILLES_QUOTAS__REQUESTS_PER_SEC=${ACHILLES_QUOTAS__REQUESTS_PER_SEC:-0}
  # The CLI's side of the same contract.
  export ACHILLES_API_URL=${ACHILLES_API_URL:-$(api_url_from_listen "$ACHILLES_API__LISTEN")}
  export ACHILLES_API_KEY=${ACHILLES_API_KEY:-$ACHILLES_DEV_API_KEY}
}

# ---------------------------------------------------------------- processes
# pid_running PID: true if PID exists and is not a zombie.
pid_running() {
  local pid=$1 stat
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r /proc/$pid/stat ]]; then
    stat=$(<"/proc/$pid/stat") || return 1
    stat=${stat##*) } # drop "pid (comm) "; the state letter comes first
    [[ ${stat%% *} != Z ]] || return 1
  fi
}

# is_pid_alive PIDFILE: true if the pid file names a live process that these
# scripts started under that name (see ACHILLES_STACK_SERVICE above).
is_pid_alive() {
  local pidf=$1 name pid envs
  [[ -r $pidf ]] || return 1
  pid=$(<"$pidf")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  pid_running "$pid" || return 1
  name=$(basename "$pidf" .pid)
  if [[ -r /proc/$pid/environ ]]; then
    envs=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null) || return 1
    [[ $'\n'$envs$'\n' == *$'\n'"ACHILLES_STACK_SERVICE=$name"$'\n'* ]] || return 1
  fi
}

# start_bg NAME CMD [ARGS...]: start CMD detached (own session, immune to the
# terminal's Ctrl-C and hang-up), stdout+stderr appended to .stack/logs/NAME.log,
# pid written to .stack/NAME.pid.
start_bg() {
  local name=$1
  shift
  local log pidf pid
  log=$(log_file "$name")
  pidf=$(pid_file "$name")
  printf '\n===== %s: starting %s: %s\n' "$(date '+%F %T')" "$name" "$*" >>"$log"
  # Without job control the background job is not a process-group leader, so
  # setsid calls setsid(2) and execs in place: $! is the service's own pid.
  # NO_COLOR: the output goes to a file, keep ANSI escapes out of it.
  ACHILLES_STACK_SERVICE="$name" NO_COLOR=1 nohup setsid "$@" >>"$log" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$pidf"
  info "started $name (pid $pid, log $log)"
}

# stop_pidfile PIDFILE [TIMEOUT_S]: SIGTERM, wait up to TIMEOUT_S (15), then SIGKILL.
# Only acts on processes is_pid_alive accepts; always removes the pid file.
stop_pidfile() {
  local pidf=$1 timeout=${2:-15} name pid deadline
  name=$(basename "$pidf" .pid)
  if ! is_pid_alive "$pidf"; then
    if [[ -e $pidf ]]; then
      info "$name: not running (removing stale pid file)"
      rm -f "$pidf"
    fi
    return 0
  fi
  pid=$(<"$pidf")
  info "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + timeout))
  while pid_running "$pid" && ((SECONDS < deadline)); do
    sleep 0.2
  done
  if pid_running "$pid"; then
    warn "$name (pid $pid) still running after ${timeout}s: sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$pidf"
}

# ---------------------------------------------------------------- postgres
PG_HOST=127.0.0.1
PG_PORT=5432
# shellcheck disable=SC2034 # used by ensure-postgres.sh and stack.sh
PG_STARTED_FILE="$STACK_DIR/postgres.started"

# postgres_ready: true if PostgreSQL accepts connections on 127.0.0.1:5432.
postgres_ready() {
  if have pg_isready; then
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
  else
    tcp_open "$PG_HOST" "$PG_PORT"
  fi
}

# ---------------------------------------------------------------- waiting
# tcp_open HOST PORT: one connection attempt (2 s max).
tcp_open() {
  # shellcheck disable=SC2016 # $1 and $2 expand in the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# http_status URL: prints the HTTP status code, or 000 if there was no answer.
http_status() {
  local url=$1
  if have curl; then
    curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$url" 2>/dev/null || true
  else
    python3 - "$url" <<'PY' 2>/dev/null || printf '000'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
        print(r.status, end="")
except urllib.error.HTTPError as e:
    print(e.code, end="")
except Exception:
    print("000", end="")
PY
  fi
}

# Shared by wait_for_tcp/wait_for_http: every PIDFILE given must still be alive.
_pids_alive() {
  local pidf
  for pidf in "$@"; do
    is_pid_alive "$pidf" || return 1
  done
}

# wait_for_tcp HOST PORT TIMEOUT_S [PIDFILE...]
# 0 = port accepts connections, 1 = timed out, 2 = a watched process died first.
wait_for_tcp() {
  local host=$1 port=$2 timeout=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  until tcp_open "$host" "$port"; do
    _pids_alive "$@" || return 2
    ((SECONDS < deadline)) || return 1
    sleep 0.3
  done
}

# wait_for_http URL TIMEOUT_S [PIDFILE...]: waits for a 200 answer.
# 0 = got 200, 1 = timed out, 2 = a watched process died first.
wait_for_http() {
  local url=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until [[ $(http_status "$url") == 200 ]]; do
    _pids_alive "$@" || return 2
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# show_log_tail NAME [LINES]: print the end of .stack/logs/NAME.log to stderr.
show_log_tail() {
  local name=$1 lines=${2:-40} log
  log=$(log_file "$name")
  if [[ -s $log ]]; then
    printf '\n----- last %s lines of %s -----\n' "$lines" "$log" >&2
    tail -n "$lines" "$log" >&2
    printf -- '----- end of %s -----\n' "$log" >&2
  else
    printf '\n(%s is empty or missing)\n' "$log" >&2
  fi
}
