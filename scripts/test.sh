#!/usr/bin/env bash
# scripts/test.sh: what `make test` (and so CI) runs. Extra arguments go to the
# test runner: scripts/test.sh -E 'test(ingest)'   (nextest filter syntax)
#
# 1. CI=true only: cargo fmt --all -- --check; always: cargo clippy (warnings are errors)
# 2. the deployment checks, all offline:
#      scripts/validate-compose.sh          docker-compose.kafka.yml (Docker Compose's loader)
#      scripts/check-rules.sh               promtool check config/rules + test rules (alert unit tests)
#      scripts/check-dashboards.sh --static Grafana dashboards: lint, generator up to date, queries parse
#      scripts/validate-helm.sh             helm lint/template (Helm 3 and 4), kubernetes-validate,
#                                           CRD schemas, values.schema.json
# 3. Postgres on 127.0.0.1:5432 and a shared Tansu broker on 127.0.0.1:9092
#    (a broker started here is stopped again on exit; one already running stays)
# 4. the workspace tests, with
#      ACHILLES_TANSU_BIN          Tansu binary, for tests that spawn private brokers
#      ACHILLES_TEST_DATABASE_URL  postgres://postgres@127.0.0.1:5432/postgres
#      ACHILLES_TEST_BROKERS       127.0.0.1:9092
#    through `cargo nextest run` (profile `ci` when CI=true) if nextest is
#    installed, else `cargo test`.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

if [[ ${CI:-} == true ]]; then
  info "cargo fmt --all -- --check"
  cargo fmt --all -- --check
fi
info "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

"$ROOT/scripts/validate-compose.sh"
"$ROOT/scripts/check-rules.sh"
"$ROOT/scripts/check-dashboards.sh" --static
"$ROOT/scripts/validate-helm.sh"

"$ROOT/scripts/ensure-postgres.sh"
# Each test creates its own achilles_test_<unix seconds>_<uuid> database; drop
# those older than three hours (and any of the older unnamed-time form) so they
# do not pile up, without touching a run that is going on in another checkout.
psql -h 127.0.0.1 -U postgres -d postgres -qtA \
  -c "select format('drop database if exists %I;', datname) from pg_database
      where datname like 'achilles_test_%'
        and (datname !~ '^achilles_test_[0-9]+_'
             or split_part(datname, '_', 3)::bigint < extract(epoch from now()) - 3 * 3600)" |
  psql -h 127.0.0.1 -U postgres -d postgres -q >/dev/null || warn "could not drop old test databases"
broker_was_up=0
tcp_open 127.0.0.1 "$BROKER_PORT" && broker_was_up=1
"$ROOT/scripts/ensure-tansu.sh"
if ((!broker_was_up)) && is_pid_alive "$(pid_file tansu)"; then
  trap 'stop_pidfile "$(pid_file tansu)"' EXIT
fi

ACHILLES_TANSU_BIN=$("$ROOT/scripts/ensure-tansu.sh" --print-path)
export ACHILLES_TANSU_BIN
export ACHILLES_TEST_DATABASE_URL=${ACHILLES_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export ACHILLES_TEST_BROKERS=${ACHILLES_TEST_BROKERS:-127.0.0.1:$BROKER_PORT}

if cargo nextest --version >/dev/null 2>&1; then
  profile=()
  [[ ${CI:-} == true ]] && profile=(--profile ci)
  info "cargo nextest run --workspace --no-fail-fast ${profile[*]} $*"
  cargo nextest run --workspace --no-fail-fast "${profile[@]}" "$@"
else
  info "cargo-nextest not installed: cargo test --workspace --no-fail-fast $*"
  cargo test --workspace --no-fail-fast "$@"
fi
