#!/usr/bin/env bash
# Start (idempotently) a throwaway PostgreSQL on 127.0.0.1 for the test suite and print its URL.
# Installs Debian's postgresql package first when no server binaries are on the machine.
#   scripts/postgres.sh start   -> prints postgresql+asyncpg://... on stdout
#   scripts/postgres.sh stop
set -euo pipefail

PORT="${CONDUIT_PG_PORT:-55432}"
DIR="${CONDUIT_PG_DIR:-/tmp/conduit-pg-$PORT}"
DB="${CONDUIT_PG_DB:-conduit_test}"
URL="postgresql+asyncpg://conduit@127.0.0.1:$PORT/$DB"

find_bindir() {
  local candidate
  if command -v pg_ctl >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v pg_ctl)")"; return 0; fi
  for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$candidate/pg_ctl" ] && { echo "$candidate"; return 0; }
  done
  return 1
}

install_postgres() {
  echo "installing PostgreSQL (Debian package)..." >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
}

as_owner() {
  # PostgreSQL refuses to run as root: run it as the 'postgres' system user then.
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  local bindir
  bindir="$(find_bindir)" || { install_postgres; bindir="$(find_bindir)"; }
  mkdir -p "$DIR"
  [ "$(id -u)" -eq 0 ] && { id postgres >/dev/null 2>&1 || useradd --system postgres; chown -R postgres "$DIR"; }
  if [ ! -f "$DIR/data/PG_VERSION" ]; then
    as_owner "$bindir/initdb" -D "$DIR/data" -U conduit --auth=trust -E UTF8 --no-locale >/dev/null
  fi
  if ! as_owner "$bindir/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
    as_owner "$bindir/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start \
      -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >/dev/null
  fi
  if ! as_owner "$bindir/psql" -h 127.0.0.1 -p "$PORT" -U conduit -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1; then
    as_owner "$bindir/psql" -h 127.0.0.1 -p "$PORT" -U conduit -d postgres -qc "CREATE DATABASE $DB" >/dev/null
  fi
  echo "$URL"
}

stop() {
  local bindir
  bindir="$(find_bindir)" || exit 0
  [ -f "$DIR/data/PG_VERSION" ] && as_owner "$bindir/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null 2>&1 || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
