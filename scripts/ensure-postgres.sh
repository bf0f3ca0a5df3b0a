#!/usr/bin/env bash
# scripts/ensure-postgres.sh: make sure PostgreSQL accepts connections on
# 127.0.0.1:5432 (user postgres, no password). Idempotent.
#
# - Something already answers there: do nothing (and never stop it later).
# - Otherwise: apt-get install postgresql if no cluster exists, start the newest
#   cluster "main" with pg_ctlcluster, and record "VERSION main" in
#   .stack/postgres.started so `scripts/stack.sh down` stops it again (and only then).
# - Right after installing it, prepend "trust" rules for user postgres over loopback
#   TCP to pg_hba.conf (Debian's default asks for a password there).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

READY_TIMEOUT=60
HBA_MARKER="# achilles local stack: trust user postgres over loopback TCP"

latest_version() {
  [[ -d /etc/postgresql ]] || return 0
  find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V | tail -n 1
}

pg_ctl() { as_root pg_ctlcluster --skip-systemctl-redirect "$@"; }

install_postgres() {
  info "PostgreSQL is not installed: apt-get install postgresql"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
}

trust_loopback() {
  local hba=$1 tmp
  grep -qF "$HBA_MARKER" "$hba" && return 0
  info "allowing user postgres over 127.0.0.1/::1 without a password ($hba)"
  tmp=$(mktemp)
  {
    printf '%s\n' "$HBA_MARKER"
    printf 'host all postgres 127.0.0.1/32 trust\n'
    printf 'host all postgres ::1/128 trust\n\n'
    cat "$hba"
  } >"$tmp"
  as_root install -m 640 -o postgres -g postgres "$tmp" "$hba"
  rm -f "$tmp"
}

if postgres_ready; then
  info "PostgreSQL already accepts connections on $PG_HOST:$PG_PORT"
  exit 0
fi

installed=0
if ! have pg_ctlcluster || [[ -z $(latest_version) ]]; then
  install_postgres
  installed=1
fi
version=$(latest_version)
[[ -n $version ]] || die "no PostgreSQL cluster under /etc/postgresql after installing"
conf_dir="/etc/postgresql/$version/main"
if [[ ! -d $conf_dir ]]; then
  info "creating cluster $version/main"
  as_root pg_createcluster "$version" main
fi

port=$(sed -nE 's/^[[:space:]]*port[[:space:]]*=[[:space:]]*([0-9]+).*/\1/p' "$conf_dir/postgresql.conf" | tail -n 1)
if [[ -n $port && $port != "$PG_PORT" ]]; then
  die "cluster $version/main is configured for port $port, not $PG_PORT ($conf_dir/postgresql.conf)"
fi

((installed)) && trust_loopback "$conf_dir/pg_hba.conf"

if pg_ctl "$version" main status >/dev/null 2>&1; then
  # Running already: apt-get's postinst starts a freshly installed cluster.
  ((installed)) && pg_ctl "$version" main reload
else
  info "starting PostgreSQL cluster $version/main"
  pg_ctl "$version" main start
fi
# Ours to stop in `stack.sh down`: it did not answer before this script ran.
printf '%s main\n' "$version" >"$PG_STARTED_FILE"

info "waiting for PostgreSQL on $PG_HOST:$PG_PORT"
deadline=$((SECONDS + READY_TIMEOUT))
until postgres_ready; do
  if ((SECONDS >= deadline)); then
    log=/var/log/postgresql/postgresql-$version-main.log
    [[ -r $log ]] && tail -n 40 "$log" >&2
    die "PostgreSQL $version/main did not accept connections on $PG_HOST:$PG_PORT within ${READY_TIMEOUT}s"
  fi
  sleep 0.5
done
info "PostgreSQL $version/main is up on $PG_HOST:$PG_PORT (started by this stack)"
if have psql && ! psql -X -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  warn "user postgres cannot log in over TCP without a password: add to the top of $conf_dir/pg_hba.conf"
  warn "  host all postgres 127.0.0.1/32 trust    (then: pg_ctlcluster $version main reload)"
fi
