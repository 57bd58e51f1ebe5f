#!/usr/bin/env bash
# Runs schemagate for real on a fresh machine: starts a throwaway PostgreSQL (the server
# binaries of `pg_config --bindir`), applies ./migrations twice (the second run is the
# no-op every container start pays), shows the history, and removes the server again.
set -euo pipefail
cd "$(dirname "$0")/.."

bindir=$(pg_config --bindir 2>/dev/null || true)
if [ ! -x "$bindir/initdb" ]; then
  echo "demo: PostgreSQL server binaries not found (pg_config --bindir: '${bindir}')." >&2
  echo "demo: install them with: apt-get install postgresql" >&2
  exit 1
fi
as_server=()
if [ "$(id -u)" = 0 ]; then as_server=(runuser -u postgres --); fi   # initdb refuses root

dir=$(mktemp -d /tmp/schemagate-demo.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" = 0 ] && chown postgres "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { "${as_server[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT

"${as_server[@]}" "$bindir/initdb" -A trust -U postgres -N -D "$dir/data" >/dev/null
"${as_server[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null

export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
cargo build --quiet --release
echo "--- schemagate up (fresh database)"
./target/release/schemagate up
echo "--- schemagate up (again: nothing to do)"
./target/release/schemagate up
echo "--- schemagate_history"
"$bindir/psql" -X "$DATABASE_URL" -c "SELECT revision, status, execution_ms FROM schemagate_history ORDER BY revision"
