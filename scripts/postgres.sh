#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the tests or the benchmarks, and print
# its URL. Installs Debian's postgresql package when no server is installed.
#
#   scripts/postgres.sh [DIR] [PORT] [FSYNC]   (defaults: /tmp/batchyard-pg 54329 off)
#
# Reuses a cluster that is already running in DIR. fsync=off only for the tests'
# cluster: tests never survive a power cut anyway. Benchmarks pass FSYNC=on.
set -euo pipefail
DIR=${1:-/tmp/batchyard-pg}
PORT=${2:-54329}
FSYNC=${3:-off}

bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
}

if ! BIN=$(bindir); then
  echo "installing postgresql (Debian package)..." >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
  BIN=$(bindir)
fi

# PostgreSQL refuses to run as root: run it as the package's `postgres` user.
if [ "$(id -u)" = 0 ]; then
  AS="runuser -u postgres --"
  OWNER=postgres
else
  AS=""
  OWNER=$(id -un)
fi
URL="postgresql://${OWNER}@127.0.0.1:${PORT}/postgres"

if [ -f "$DIR/data/postmaster.pid" ] && $AS "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
  echo "$URL"
  exit 0
fi
rm -rf "$DIR"
mkdir -p "$DIR"
[ "$(id -u)" = 0 ] && chown postgres "$DIR"
$AS "$BIN/initdb" -D "$DIR/data" -A trust -U "$OWNER" -E UTF8 >"$DIR/initdb.log" 2>&1
$AS "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start -o \
  "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=$FSYNC \
   -c shared_buffers=256MB" >"$DIR/start.log" 2>&1 || { cat "$DIR/start.log" "$DIR/server.log" >&2; exit 1; }
echo "$URL"
