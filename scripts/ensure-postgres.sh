#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on loopback with a `forager` role and a `forager_test` database
# (the store's PostgreSQL tests). Installs and starts Debian's server when none runs (root only).
set -euo pipefail
PORT=${FORAGER_PG_PORT:-5432}

pg_ok() { PGPASSWORD=forager psql -h 127.0.0.1 -p "$PORT" -U forager -d forager_test -Atc 'select 1' >/dev/null 2>&1; }
if pg_ok; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-postgres: no PostgreSQL with role forager on 127.0.0.1:$PORT; start one or run as root" >&2
  exit 1
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "ensure-postgres: installing Debian's postgresql"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')
if [ -z "$cluster" ]; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  pg_createcluster "$version" main >/dev/null
  cluster="$version main"
fi
pg_ctlcluster $cluster start 2>/dev/null || true
for _ in $(seq 30); do
  su postgres -c "psql -Atc 'select 1'" >/dev/null 2>&1 && break
  sleep 1
done
su postgres -c "psql -v ON_ERROR_STOP=1 -q" <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'forager') THEN
    CREATE ROLE forager LOGIN PASSWORD 'forager' CREATEDB;
  END IF;
END $$;
SQL
# why: with backend_flush_after at its default (0), the rows a backend writes out sit in the kernel's page cache
# until its 30 s writeback sends hundreds of MB at once, and a commit's WAL fdatasync waits behind that burst:
# the server's own commit p99 30-309 ms against 12-41 ms with 256kB, in an A/B on the development machine
# (docs/benchmarks.md)
su postgres -c "psql -Atqc \"ALTER SYSTEM SET backend_flush_after = '256kB'\"" >/dev/null
su postgres -c "psql -Atqc 'SELECT pg_reload_conf()'" >/dev/null
su postgres -c "psql -Atc \"select 1 from pg_database where datname='forager_test'\"" | grep -q 1 \
  || su postgres -c "createdb -O forager forager_test"
pg_ok || { echo "ensure-postgres: server started but login as forager failed" >&2; exit 1; }
