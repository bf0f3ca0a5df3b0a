#!/usr/bin/env bash
# scripts/ensure-prometheus.sh: make sure Debian's `prometheus` package (the
# server and promtool) is installed. Idempotent; starts nothing.
#
#   scripts/ensure-prometheus.sh                install if `prometheus` or `promtool` is missing
#   scripts/ensure-prometheus.sh --print-path   same, then print the directory holding both
#
# Installs with --no-install-recommends (no node exporter). The package's
# maintainer script would start a system-wide Prometheus on :9090; while
# installing, a temporary /usr/sbin/policy-rc.d (only if none exists) tells it
# not to, so nothing keeps running behind the project's back. The scripts that
# need a server (check-dashboards.sh) start their own on a private port.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

POLICY_RC=/usr/sbin/policy-rc.d

installed() { have prometheus && have promtool; }

install_prometheus() {
  local made_policy=0
  info "installing Debian's prometheus package (prometheus + promtool)"
  if [[ ! -e $POLICY_RC ]]; then
    printf '#!/bin/sh\n# temporary, from achilles scripts/ensure-prometheus.sh\nexit 101\n' |
      as_root tee "$POLICY_RC" >/dev/null
    as_root chmod 755 "$POLICY_RC"
    made_policy=1
    # shellcheck disable=SC2064 # expand now: the path is fixed
    trap "as_root rm -f '$POLICY_RC'" EXIT
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
  if ((made_policy)); then
    as_root rm -f "$POLICY_RC"
    trap - EXIT
  fi
  installed || die "apt-get installed prometheus but prometheus/promtool are not on PATH"
}

case ${1:-} in
  "" | --print-path) ;;
  -h | --help)
    sed -n '2,12s/^# \{0,1\}//p' "$0"
    exit 0
    ;;
  *) die "unknown argument: $1 (try --help)" ;;
esac

installed || install_prometheus
if [[ ${1:-} == --print-path ]]; then
  dirname "$(command -v promtool)"
else
  info "$(promtool --version 2>&1 | head -n 1)"
fi
