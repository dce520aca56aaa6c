#!/usr/bin/env bash
# Bring up a local PostgreSQL for the store contract tests (tests/server/).
#
# Installs the Debian package if it is missing, starts the newest installed cluster if it is not
# running, creates the role `teeflow` (password `teeflow`, allowed to create databases: the tests
# make one database per test module) and the database `teeflow_test`, then prints the URL the tests
# read. Idempotent: safe to run again. Needs root (or sudo) on Debian/Ubuntu.
#
#   eval "$(.ci/postgres.sh | grep ^TEEFLOW_TEST_POSTGRES_URL=)" && export TEEFLOW_TEST_POSTGRES_URL
set -euo pipefail

PG_USER=teeflow
PG_PASSWORD=teeflow
PG_DB=teeflow_test
PG_PORT="${PG_PORT:-5432}"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
    echo "postgres.sh: installing postgresql" >&2
    as_root apt-get update >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
fi

# The newest installed major version, e.g. 15 on Debian 12.
version="$(ls /usr/lib/postgresql | sort -n | tail -n 1)"
if [ -z "$version" ]; then
    echo "postgres.sh: no PostgreSQL version under /usr/lib/postgresql" >&2
    exit 1
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {found=1} END {exit !found}'; then
    as_root pg_createcluster "$version" main >&2
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online" {up=1} END {exit !up}'; then
    as_root pg_ctlcluster "$version" main start >&2
fi

psql_admin() {
    as_root su postgres -c "psql -v ON_ERROR_STOP=1 -p $PG_PORT -tAc \"$1\""
}

for _ in $(seq 1 30); do
    if psql_admin "SELECT 1" >/dev/null 2>&1; then break; fi
    sleep 1
done

if [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" != "1" ]; then
    psql_admin "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD' CREATEDB" >&2
else
    psql_admin "ALTER ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD' CREATEDB" >&2
fi
if [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != "1" ]; then
    psql_admin "CREATE DATABASE $PG_DB OWNER $PG_USER" >&2
fi

echo "TEEFLOW_TEST_POSTGRES_URL=postgresql+psycopg://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
