#!/usr/bin/env bash
# End-to-end test of what ships for containers: builds the image from ./Dockerfile and
# runs ./docker-compose.yml, both unmodified, on this machine's Docker engine.
#   1. up: migrate exits 0, the backend starts only after it, each migration applied once
#   2. a broken migration mounted in (broken.yml): migrate exits 7, the backend never starts
#   3. --scale migrate=3: all three exit 0, each migration applied and logged exactly once
#   4. the image: non-root user, under 10 MB, and an app's `FROM` it + `COPY migrations/` works
# Without a registry, standins.sh first makes the base images the two files name.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
  echo "e2e: FAIL: no Docker engine answers ('docker info' failed): install Docker and start the daemon" >&2
  exit 1
fi
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  echo "e2e: FAIL: neither 'docker compose' nor 'docker-compose' is installed" >&2
  exit 1
fi
echo "e2e: using $("${compose[@]}" version | head -n 1)"

image=schemagate   # what docker-compose.yml tags the migrate service's build with
max_bytes=10000000 # the target: under 10 MB
run=sg-e2e-$$
projects=()
passed=0
log=$(mktemp /tmp/schemagate-e2e.XXXXXX)

cleanup() {
  for p in "${projects[@]}"; do "${compose[@]}" -p "$p" down -v --remove-orphans >/dev/null 2>&1 || true; done
  docker rmi "$run-app" >/dev/null 2>&1 || true
  rm -f "$log"
}
trap cleanup EXIT

# The compose project of the current scenario; `down -v` on exit, whatever happens.
project=
scenario() {
  project=$run-$1
  projects+=("$project")
  echo "e2e: --- $2"
}
dc() { "${compose[@]}" -p "$project" "$@"; }

fail() {
  echo "e2e: FAIL: $*" >&2
  echo "e2e: output of the last docker command:" >&2
  cat "$log" >&2
  if [ -n "$project" ]; then
    echo "e2e: container logs of $project:" >&2
    dc logs --no-color >&2 || true
  fi
  exit 1
}
ok() {
  echo "e2e: ok: $*"
  passed=$((passed + 1))
}

# Container ids of a service of the current project, by the labels both Compose versions set.
containers() {
  docker ps -aq --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=$1"
}
state() { docker inspect -f "{{.State.$2}}" "$1"; }
nanos() { date -d "$1" +%s%N; }
sql() { docker exec "$(containers postgres)" psql -X -At -U app -d app -c "$1"; }

# Every migration of the folder applied exactly once, with exactly one 'ok' event each.
assert_applied_once() {
  local folder=$1 expected rows events
  expected=$(cd "$folder" && ls -- *.sql | cut -d_ -f1 | sort | sed 's/$/|1/')
  rows=$(sql "SELECT revision, count(*) FROM schemagate_history WHERE status = 'applied' GROUP BY revision ORDER BY revision")
  [ "$rows" = "$expected" ] || fail "schemagate_history should hold each of $folder once; it holds (revision|rows):"$'\n'"$rows"
  events=$(sql "SELECT revision, count(*) FROM schemagate_events WHERE action = 'up' AND outcome = 'ok' GROUP BY revision ORDER BY revision")
  [ "$events" = "$expected" ] || fail "schemagate_events should hold one 'ok' per migration; it holds (revision|events):"$'\n'"$events"
  ok "each of the $(wc -l <<<"$expected") migrations of $folder applied once, one 'ok' event each"
}

# Waits for the backend to say it serves (it reads the migrated tables first).
assert_backend_serves() {
  local backend
  backend=$(containers backend)
  [ -n "$backend" ] || fail "no backend container was created"
  for _ in $(seq 60); do
    if docker logs "$backend" 2>&1 | grep -q "serving"; then
      ok "the backend read the migrated tables and is serving"
      return
    fi
    [ "$(state "$backend" Running)" = true ] || fail "the backend stopped without serving"
    sleep 1
  done
  fail "the backend did not report 'serving' within 60 s"
}

# The backend started after every migrate container had finished successfully.
assert_backend_after_migrate() {
  local backend started last=0 c finished
  backend=$(containers backend)
  started=$(nanos "$(state "$backend" StartedAt)")
  for c in $(containers migrate); do
    finished=$(nanos "$(state "$c" FinishedAt)")
    if [ "$finished" -gt "$last" ]; then last=$finished; fi
  done
  [ "$started" -gt "$last" ] || fail "the backend started before migrate finished"
  ok "the backend started $(((started - last) / 1000000)) ms after migrate finished"
}

assert_migrate_exits() {
  local want_count=$1 want_code=$2 ids code
  ids=$(containers migrate)
  [ "$(wc -w <<<"$ids")" = "$want_count" ] || fail "expected $want_count migrate container(s), found: $ids"
  for c in $ids; do
    [ "$(state "$c" Status)" = exited ] || fail "migrate container $c is $(state "$c" Status), not exited"
    code=$(state "$c" ExitCode)
    [ "$code" = "$want_code" ] || fail "migrate container $c exited $code, expected $want_code"
  done
  ok "$want_count migrate container(s) exited $want_code"
}

bash tests/docker/standins.sh

scenario ok "docker-compose.yml as shipped"
echo "e2e: building the image from ./Dockerfile (a few minutes the first time)"
start=$SECONDS
dc build >"$log" 2>&1 || fail "building the image from ./Dockerfile failed"
echo "e2e: image built in $((SECONDS - start)) s"
dc up -d >"$log" 2>&1 || fail "'up -d' failed"
assert_migrate_exits 1 0
assert_backend_serves
assert_backend_after_migrate
assert_applied_once migrations

echo "e2e: --- the schema tools (the compose file's schema service, on the compose postgres)"
dc run --rm schema >"$log" 2>&1 || fail "'run --rm schema' (check --against-schema) failed: ./schema.sql should equal the migrations' head"
ok "check --against-schema: ./schema.sql equals the migrations' head"
dc run --rm schema check --drift >"$log" 2>&1 || fail "'run --rm schema check --drift' failed on the freshly migrated database"
ok "check --drift: the database is what its migrations make"
sql "ALTER TABLE users ADD COLUMN nickname text" >/dev/null
code=0
dc run --rm schema check --drift >"$log" 2>&1 || code=$?
[ "$code" = 10 ] || fail "check --drift after a hand edit should exit 10, it exited $code"
grep -q "ADD COLUMN nickname text" "$log" || fail "check --drift should print the hand edit"
ok "check --drift after a hand edit: exit 10, naming it"
leftover=$(sql "SELECT count(*) FROM pg_database WHERE datname LIKE 'schemagate_scratch%'")
[ "$leftover" = 0 ] || fail "$leftover scratch databases were left on the compose postgres"
ok "no scratch database left behind"

scenario broken "a broken migration mounted in at /migrations (tests/docker/broken.yml)"
if dc -f docker-compose.yml -f tests/docker/broken.yml up -d >"$log" 2>&1; then
  fail "'up' succeeded although a migration fails"
fi
assert_migrate_exits 1 7
backend=$(containers backend)
if [ -n "$backend" ] && [ "$(state "$backend" StartedAt)" != "0001-01-01T00:00:00Z" ]; then
  fail "the backend started although migrate failed"
fi
ok "the backend never started"
errors=$(docker logs "$(containers migrate)" 2>&1)
grep -q "002_add_invoices.sql" <<<"$errors" && grep -q "SQLSTATE 23503" <<<"$errors" ||
  fail "migrate's log should name 002_add_invoices.sql and SQLSTATE 23503"
ok "migrate's log names the file and the SQLSTATE: $(grep -m1 -o 'failed and was rolled back.*' <<<"$errors")"
[ "$(sql "SELECT string_agg(revision, ',') FROM schemagate_history")" = 001 ] ||
  fail "only 001 should be in schemagate_history: the failed 002 must have been rolled back"
ok "the migration before the broken one stays applied, the broken one was rolled back"

scenario scale "three migrate containers at once (--scale migrate=3)"
dc up -d --scale migrate=3 >"$log" 2>&1 || fail "'up -d --scale migrate=3' failed"
assert_migrate_exits 3 0
assert_backend_serves
assert_backend_after_migrate
assert_applied_once migrations

project=
: >"$log"
echo "e2e: --- the image"
user=$(docker image inspect -f '{{.Config.User}}' "$image")
case ${user%%:*} in
  "" | 0 | root) fail "the image runs as root (Config.User is '$user')" ;;
esac
ok "the image runs as user $user"
bytes=$(docker image inspect -f '{{.Size}}' "$image")
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1000000 }')
[ "$bytes" -lt "$max_bytes" ] || fail "the image is $bytes bytes ($mb MB), over the $max_bytes target"
ok "the image is $bytes bytes ($mb MB), under 10 MB"
# What the README tells an app to do: FROM the image, COPY its migrations in.
printf 'FROM %s\nCOPY migrations/ /migrations/\n' "$image" | docker build -q -t "$run-app" -f - . >"$log" 2>&1 ||
  fail "building FROM $image with COPY migrations/ /migrations/ failed"
want="ok: $(find migrations -name '*.sql' | wc -l) migrations"
got=$(docker run --rm "$run-app" validate 2>&1) || fail "validate in the app's image failed: $got"
[[ $got == "$want"* ]] || fail "the app's image should see its migrations ('$want'), it says: $got"
ok "FROM $image + COPY migrations/ /migrations/: $got"

echo "e2e: $passed passed, 0 failed"
