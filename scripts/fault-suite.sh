#!/usr/bin/env bash
# The fault suite at full count (16 racing runners x 20, SIGKILL x 50, server restart x 10,
# pg_terminate_backend x 10, the lock connection cut mid-statement x 20, read-only database), then its figures as a Markdown table.
# `cargo test` runs the same tests with reduced counts.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
SCHEMAGATE_FAULTS=full cargo test --release --locked --test fault_suite -- --nocapture --test-threads 1 2>&1 | tee "$log" >&2
echo
echo "| fault | trials | failures | invariant checked | seconds |"
echo "| --- | --- | --- | --- | --- |"
# cargo prints "test name ... " and the test's output on the same line: match anywhere.
grep -o 'FAULT|.*' "$log" | sed 's/^FAULT|//' | awk -F'|' '{ printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5 }'
