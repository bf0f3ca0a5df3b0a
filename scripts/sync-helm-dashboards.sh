#!/usr/bin/env bash
# scripts/sync-helm-dashboards.sh: copy the Grafana dashboards and the Prometheus
# rules into the Helm chart, which can only read files inside its own directory:
#
#   deploy/grafana/dashboards/*.json  ->  helm/achilles/dashboards/
#   deploy/prometheus/rules/*.yml     ->  helm/achilles/rules/
#
# deploy/ is the source of truth; run this after changing it. `--check` changes
# nothing and fails if a copy differs (scripts/validate-helm.sh and
# scripts/check-rules.sh run that check in make test).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHART="$ROOT/helm/achilles"
PAIRS=(
  "deploy/grafana/dashboards:dashboards:json"
  "deploy/prometheus/rules:rules:yml"
)

check=0
case ${1:-} in
  --check) check=1 ;;
  "") ;;
  -h | --help)
    sed -n '2,10s/^# \{0,1\}//p' "$0"
    exit 0
    ;;
  *) die "unknown argument: $1 (try --help)" ;;
esac

stale=0
for pair in "${PAIRS[@]}"; do
  IFS=: read -r src dst ext <<<"$pair"
  src="$ROOT/$src"
  dst="$CHART/$dst"
  if ((check)); then
    if ! diff -r "$src" "$dst" >/dev/null 2>&1; then
      warn "${dst#"$ROOT"/} differs from ${src#"$ROOT"/}"
      diff -r "$src" "$dst" 2>&1 | head -n 20 >&2 || true
      stale=1
    fi
  else
    mkdir -p "$dst"
    find "$dst" -maxdepth 1 -type f -name "*.$ext" -delete
    cp "$src"/*."$ext" "$dst"/
    info "copied ${src#"$ROOT"/}/*.$ext to ${dst#"$ROOT"/}/"
  fi
done
((stale == 0)) || die "the chart's copies are stale: run scripts/sync-helm-dashboards.sh"
((check == 0)) || info "the chart's dashboards and rules are identical to deploy/"
