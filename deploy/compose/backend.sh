#!/bin/sh
# The backend of docker-compose.yml, standing for your app: it reads the tables the
# migrations made (so it fails at once if they are missing), then stays up as a server
# would until it is stopped.
set -eu

psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" \
  -c "SELECT max(revision) AS schema_revision FROM schemagate_history" \
  -c "SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM orders) AS orders"
echo "backend: schema is migrated, serving"

trap 'echo "backend: stopping"; exit 0' TERM INT
while :; do
  sleep 3600 &
  wait $!
done
