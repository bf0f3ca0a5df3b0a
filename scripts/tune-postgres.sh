#!/usr/bin/env bash
# scripts/tune-postgres.sh: `make tune-postgres`. Applies the write-heavy
# settings Achilles is benchmarked with to the local PostgreSQL server
# (127.0.0.1:5432) with ALTER SYSTEM, and restarts it (shared_buffers needs
# a restart). `--reset` puts the server's own defaults back. Opt-in: it
# changes a server that other programs on the machine may share.
#
# Why (measured with `make bench`, docs/operations.md "Postgres settings"):
# with Debian's defaults (shared_buffers 128 MB, max_wal_size 1 GB) the
# events indexes outgrow the buffer cache within minutes, and the WAL
# volume of ingest triggers a checkpoint every ~30 s; after each checkpoint
# the first change to every index page writes a full 8 KB page image, so an
# event cost 2.7 KB of WAL. These settings halved Postgres' CPU per event
# in the landing path and doubled the landed rate on a 2-core machine.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SETTINGS=(
  "shared_buffers=1GB"       # the hot part of events' indexes stays cached
  "max_wal_size=8GB"         # checkpoints by time, not by WAL volume
  "checkpoint_timeout=15min" # fewer checkpoints, fewer full-page images
)

psql_admin() { psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -qAt "$@"; }

postgres_ready || die "PostgreSQL does not answer on $PG_HOST:$PG_PORT (make up starts it)"
if [[ ${1:-} == --reset ]]; then
  for s in "${SETTINGS[@]}"; do psql_admin -c "ALTER SYSTEM RESET ${s%%=*}"; done
else
  for s in "${SETTINGS[@]}"; do psql_admin -c "ALTER SYSTEM SET ${s%%=*} = '${s#*=}'"; done
fi

data_dir=$(psql_admin -c "SHOW data_directory")
version=$(psql_admin -c "SHOW server_version_num")
version=$((version / 10000))
info "restarting PostgreSQL ($data_dir) to apply shared_buffers"
if have pg_ctlcluster && [[ -d /etc/postgresql/$version/main ]]; then
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main restart
else
  as_root su postgres -c "pg_ctl -D '$data_dir' -w restart"
fi
for _ in $(seq 60); do postgres_ready && break; sleep 1; done
postgres_ready || die "PostgreSQL did not come back after the restart"
for s in "${SETTINGS[@]}"; do
  info "${s%%=*} = $(psql_admin -c "SHOW ${s%%=*}")"
done
