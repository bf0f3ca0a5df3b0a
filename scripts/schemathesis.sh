#!/usr/bin/env bash
# scripts/schemathesis.sh: property-based API testing of the served OpenAPI
# document with schemathesis (PyPI), against an API of its own.
#
#   scripts/schemathesis.sh [extra schemathesis args]
#
# Starts Postgres and the broker if needed (like `make test`), builds the API
# and the CLI, creates a database of its own (achilles_schemathesis_<pid>) and a
# unique topic prefix, starts achilles-api on a free port with a key of its own,
# then runs `schemathesis run` on /openapi.json with the checks that matter here:
# no 5xx except documented 503s, every status code, content type, header and
# body as the document says. Everything it started is stopped and the database
# dropped on exit. Schemathesis is pip-installed into .stack/schemathesis (a
# venv), never globally. Results: docs/testing.md.
#
# SCHEMATHESIS_MAX_EXAMPLES (default 100) sets examples per operation.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

ST_PACKAGE=schemathesis==4.32.5
ST_VENV="$STACK_DIR/schemathesis"
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-100}
KEY="schemathesis-key-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
DB="achilles_schemathesis_$$"
PREFIX="st$$."

install_schemathesis() {
  [[ -x $ST_VENV/bin/schemathesis ]] && return 0
  info "installing $ST_PACKAGE into $ST_VENV"
  rm -rf "$ST_VENV"
  python3 -m venv "$ST_VENV"
  PIP_ROOT_USER_ACTION=ignore "$ST_VENV/bin/pip" install --quiet --disable-pip-version-check \
    "$ST_PACKAGE" >&2
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

API_PID=
cleanup() {
  if [[ -n $API_PID ]] && pid_running "$API_PID"; then
    kill -TERM "$API_PID" 2>/dev/null || true
    wait "$API_PID" 2>/dev/null || true
  fi
  psql -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres \
    -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
}
trap cleanup EXIT

bash scripts/ensure-postgres.sh
bash scripts/ensure-tansu.sh
install_schemathesis
info "building achilles-api and achilles (debug)"
cargo build --quiet -p achilles-api -p achilles-cli --bins

port=$(free_port)
export DATABASE_URL="postgres://postgres@$PG_HOST:$PG_PORT/$DB"
"$(target_dir)/debug/achilles" migrate
log="$LOG_DIR/schemathesis-api.log"
info "starting achilles-api on 127.0.0.1:$port (database $DB, topic prefix $PREFIX, log $log)"
ACHILLES_API__LISTEN="127.0.0.1:$port" \
  ACHILLES_KAFKA__BROKERS="127.0.0.1:$BROKER_PORT" \
  ACHILLES_KAFKA__TOPIC_PREFIX="$PREFIX" \
  ACHILLES_AUTH__KEYS="schemathesis=$KEY" \
  ACHILLES_QUOTAS__REQUESTS_PER_SEC=0 \
  ACHILLES_QUOTAS__EVENTS_PER_SEC=0 \
  ACHILLES_LOG_FORMAT=pretty RUST_LOG=warn \
  "$(target_dir)/debug/achilles-api" >"$log" 2>&1 &
API_PID=$!
wait_for_http "http://127.0.0.1:$port/readyz" 60 ||
  die "achilles-api did not become ready (see $log)"

info "schemathesis: $MAX_EXAMPLES examples per operation"
"$ST_VENV/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --header "Authorization: Bearer $KEY" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "$MAX_EXAMPLES" \
  --seed 1 \
  --no-color \
  "$@"
