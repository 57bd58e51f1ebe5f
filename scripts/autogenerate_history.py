#!/usr/bin/env python3
"""Autogenerate checked against a real migration history, step by step, beside migra.

Why: schemagate's own tests check the diff engine on schemas written for it; a long
history written by other people for years (harbor's 39 golang-migrate files, mattermost's
hundreds) holds the shapes nobody thought of. For every consecutive pair of states
S_i -> S_i+1 (S_0 empty, S_i = migrations 1..i applied with psql) each tool writes the SQL
from S_i to S_i+1; it is applied to a copy of S_i and the copy's `pg_dump --schema-only`
is compared with S_i+1's. The share of exact steps is the figure; migra runs on the same
steps in the same run, so the two shares are comparable.

Usage:

    scripts/autogenerate_history.py --repo /work/.mirror/goharbor+harbor/repo \\
        --path make/migrations/postgresql --schemagate target/release/schemagate \\
        [--rev HEAD] [--limit N] [--tools schemagate,migra] [--sides url|migrations] \\
        [--pg-bin DIR] [--json FILE]

`--repo` is a git directory (bare or not); the files are read with `git show REV:PATH`
into a temporary folder, never into this repository. Files are the `.up.sql` of a
golang-migrate folder, or the `.sql`/`.up.sql` of an sqlx folder, in name order.

The script starts its own throwaway cluster (initdb as the `postgres` user through
runuser when run as root, a temporary directory, TCP on 127.0.0.1 at a free port, trust
authentication) and removes it on every exit path.

Each step, for each tool, is one of:
  exact          the copy's schema dump equals S_i+1's
  differs        it does not (the unified diff's first lines are kept)
  tool failed    the tool exited non-zero or timed out (its stderr is kept)
  apply failed   psql refused the tool's output (its error is kept)
Nothing is skipped: a state whose real migration fails to apply stops the run there, with
that error, because every later state would be wrong.

schemagate is run as
    schemagate diff --from URL_S_i --to URL_S_i+1 --dev-url URL_postgres
(two databases are read as they are; --dev-url, the same cluster, only matters for the
migrations sides)
(`--sides migrations` uses `--from migrations@REV_i --to migrations@REV_i+1 --migrations DIR`
instead; REV is the file's version prefix, and step 0 starts from S_0's URL. schemagate then
applies the files on its own scratch databases, which lack golang-migrate's own table: harbor's
0030 alters it and fails there, so URL sides are the fair comparison with migra).
migra is run as
    migra --unsafe URL_S_i URL_S_i+1
(exit 2 means "there are differences" for migra, and is success here).
Both outputs are applied with `psql -X -v ON_ERROR_STOP=1 -f FILE` in autocommit mode, as
the output may contain CREATE INDEX CONCURRENTLY.

The dumps are compared after dropping `\\restrict`/`\\unrestrict` lines (random per run),
SET lines, `SELECT pg_catalog.set_config` lines, `--` comment lines and blank lines.

Installing migra (the recipe that works on Python 3.11 here), in a venv of its own so it
pins nothing for anyone else:

    python3 -m venv /work/venv-migra
    /work/venv-migra/bin/pip install migra psycopg2-binary 'sqlalchemy<2' setuptools
    scripts/autogenerate_history.py ... --migra /work/venv-migra/bin/migra

That gives migra 3.0.1663481299, schemainspect 3.1.1663587362, sqlbag 0.1.1617247075,
SQLAlchemy 1.4.54, psycopg2-binary 2.9.13. With SQLAlchemy 2.x, migra fails on every
step (`ModuleNotFoundError: No module named 'psycopg'`: 2.x maps postgresql:// to psycopg 3);
SQLAlchemy 1.4 in turn refuses the `postgres://` spelling, so migra gets `postgresql://`.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, asdict
from pathlib import Path

TOOL_TIMEOUT_S = 300
APPLY_TIMEOUT_S = 300
DIFF_LINES_KEPT = 40
STDERR_CHARS_KEPT = 2000

# Durability off: nothing here must survive a crash; the run is the only user.
SERVER_SETTINGS = [
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "shared_buffers=64MB",
    "max_connections=100",
    "listen_addresses=127.0.0.1",
]


class Fatal(Exception):
    """A failure of the run itself (not of one tool on one step): printed, exit 2."""


# ---------------------------------------------------------------------------- files


def extract_migrations(gitdir: str, rev: str, path: str, into: Path) -> list[Path]:
    """Copies the history's up files at `rev` into `into`, in name order."""
    listing = run_checked(
        ["git", "--git-dir", gitdir, "ls-tree", "--name-only", f"{rev}:{path}"],
        what=f"list {path} at {rev} in {gitdir}",
    )
    names = sorted(
        n for n in listing.splitlines() if n.endswith(".sql") and not n.endswith(".down.sql")
    )
    if not names:
        raise Fatal(f"no .sql/.up.sql files in {path} at {rev} of {gitdir}: check --path and --rev")
    files = []
    for name in names:
        blob = subprocess.run(
            ["git", "--git-dir", gitdir, "show", f"{rev}:{path}/{name}"],
            capture_output=True,
        )
        if blob.returncode != 0:
            raise Fatal(f"git show {rev}:{path}/{name} failed: {blob.stderr.decode(errors='replace')}")
        target = into / name
        target.write_bytes(blob.stdout)
        files.append(target)
    return files


def base_table(choice: str, files: list[Path]) -> str | None:
    """The SQL of the runner's own table that the history expects in S_0, if any.

    golang-migrate creates `schema_migrations (version bigint, dirty boolean)` before the
    first file, and harbor's 0030 alters it: without it the real history does not apply.
    """
    if choice == "auto":
        choice = "golang-migrate" if any(f.name.endswith(".up.sql") for f in files) else "none"
    if choice == "golang-migrate":
        return "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)"
    return None


def version_of(name: str) -> str:
    """The version prefix of a golang-migrate or sqlx file name: `0015_1.10.0_schema.up.sql` -> `0015`."""
    match = re.match(r"^(\d+)", name)
    return match.group(1) if match else name


# ---------------------------------------------------------------------------- processes


def run_checked(cmd: list[str], what: str, **kw) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        raise Fatal(f"{what}: `{' '.join(cmd)}` exited {out.returncode}: {out.stderr.strip()}")
    return out.stdout


def clip(text: str, limit: int = STDERR_CHARS_KEPT) -> str:
    """The start of `text`, for SQL read from the top."""
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)"


def clip_tail(text: str, limit: int = STDERR_CHARS_KEPT) -> str:
    """The end of `text`, for errors: a traceback's cause is at its end."""
    text = text.strip()
    return text if len(text) <= limit else f"({len(text) - limit} characters before) ...\n" + text[-limit:]


def load_average() -> str:
    """The 1, 5 and 15 minute load: on a shared machine the times mean little without it."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError as err:
        return f"unknown ({err})"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_pg_bin(explicit: str | None, name: str) -> str:
    """`name` from --pg-bin, else the server binaries' folder (pg_config --bindir), else PATH."""
    candidates = []
    if explicit:
        candidates.append(Path(explicit) / name)
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip()
        if bindir:
            candidates.append(Path(bindir) / name)
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise Fatal(f"{name} not found (looked in --pg-bin, pg_config --bindir, PATH): install postgresql or pass --pg-bin")


class Cluster:
    """A throwaway PostgreSQL cluster in a temporary directory; `close` removes it."""

    def __init__(self, pg_bin: str | None):
        self.initdb = find_pg_bin(pg_bin, "initdb")
        self.pg_ctl = find_pg_bin(pg_bin, "pg_ctl")
        self.psql_bin = find_pg_bin(pg_bin, "psql")
        self.pg_dump_bin = find_pg_bin(pg_bin, "pg_dump")
        self.root = Path(tempfile.mkdtemp(prefix="schemagate-history-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.port = free_port()
        self.started = False
        # initdb and postgres refuse root: run them as `postgres` and give it the directory.
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise Fatal("running as root and there is no `postgres` user for initdb: create one (useradd postgres) or run as another user")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.socket_dir.mkdir()
        if self.as_user:
            entry = pwd.getpwnam("postgres")
            os.chown(self.socket_dir, entry.pw_uid, entry.pw_gid)

    def start(self) -> None:
        run_checked(
            self.as_user + [self.initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"],
            what="initdb",
        )
        options = " ".join(f"-c {s}" for s in SERVER_SETTINGS)
        options += f" -c port={self.port} -c unix_socket_directories={self.socket_dir}"
        run_checked(
            self.as_user + [self.pg_ctl, "-D", str(self.data), "-w", "-t", "30", "-l", str(self.root / "server.log"), "-o", options, "start"],
            what="start the cluster (see its server.log)",
        )
        self.started = True

    def close(self) -> None:
        if self.started:
            subprocess.run(
                self.as_user + [self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
            )
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, db: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def migra_url(self, db: str) -> str:
        """SQLAlchemy 1.x, under migra, knows only this spelling of the scheme."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def psql(self, db: str, sql: str) -> str:
        return run_checked(
            [self.psql_bin, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", self.url(db), "-c", sql],
            what=f"psql on {db}",
        )

    def apply_file(self, db: str, path: Path) -> str | None:
        """Runs the file in autocommit mode; the error text if psql stopped on one."""
        try:
            out = subprocess.run(
                [self.psql_bin, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.url(db), "-f", str(path)],
                capture_output=True,
                text=True,
                timeout=APPLY_TIMEOUT_S,
                # NOTICEs (IF EXISTS skips) would bury the one error that matters.
                env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"},
            )
        except subprocess.TimeoutExpired:
            return f"psql timed out after {APPLY_TIMEOUT_S} s"
        if out.returncode != 0:
            return clip_tail(out.stderr)
        return None

    def copy(self, template: str, name: str) -> None:
        self.psql("postgres", f'DROP DATABASE IF EXISTS "{name}"')
        self.psql("postgres", f'CREATE DATABASE "{name}" TEMPLATE "{template}"')

    def drop(self, name: str) -> None:
        self.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def schema_dump(self, db: str) -> str:
        dump = run_checked(
            [self.pg_dump_bin, "--schema-only", "--no-owner", "--no-privileges", "-d", self.url(db)],
            what=f"pg_dump {db}",
        )
        return normalise(dump)


def normalise(dump: str) -> str:
    """What of a schema dump is the schema: no random restrict keys, settings, comments."""
    kept = []
    for line in dump.splitlines():
        if line.startswith(("\\restrict", "\\unrestrict", "SET ", "--")):
            continue
        if line.startswith("SELECT pg_catalog.set_config("):
            continue
        if not line.strip():
            continue
        kept.append(line.rstrip())
    return "\n".join(kept) + "\n"


# ---------------------------------------------------------------------------- tools


@dataclass
class Outcome:
    result: str  # exact | differs | tool failed | apply failed
    seconds: float
    detail: str = ""
    statements: int = 0


@dataclass
class Step:
    index: int
    rev_from: str
    rev_to: str
    file: str
    changes_schema: bool
    outcomes: dict[str, Outcome] = field(default_factory=dict)


RESULTS = ["exact", "differs", "tool failed", "apply failed"]


def run_tool(cmd: list[str], ok_codes: tuple[int, ...]) -> tuple[str | None, str, float]:
    """(stdout or None on failure, stderr or reason, seconds)."""
    started = time.monotonic()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {TOOL_TIMEOUT_S} s", time.monotonic() - started
    except OSError as err:
        return None, f"could not start {cmd[0]}: {err}", time.monotonic() - started
    seconds = time.monotonic() - started
    if out.returncode not in ok_codes:
        return None, f"exit {out.returncode}: {clip_tail(out.stderr)}", seconds
    return out.stdout, out.stderr, seconds


def count_statements(sql: str) -> int:
    return sum(1 for line in sql.splitlines() if line.rstrip().endswith(";") and not line.lstrip().startswith("--"))


def check_step(cluster: Cluster, tool: str, cmd: list[str], ok_codes: tuple[int, ...],
               from_db: str, want: str, work: Path, index: int) -> Outcome:
    sql, err, seconds = run_tool(cmd, ok_codes)
    if sql is None:
        return Outcome("tool failed", seconds, err)
    script = work / f"{tool}-{index:04d}.sql"
    script.write_text(sql)
    copy = f"apply_{tool}"
    cluster.copy(from_db, copy)
    try:
        failed = cluster.apply_file(copy, script)
        if failed is not None:
            return Outcome("apply failed", seconds, failed + "\n--- the SQL's first lines:\n" + clip(sql, 1500), count_statements(sql))
        got = cluster.schema_dump(copy)
    finally:
        cluster.drop(copy)
    if got == want:
        return Outcome("exact", seconds, "", count_statements(sql))
    diff = list(difflib.unified_diff(want.splitlines(), got.splitlines(), "real migration", f"{tool}'s output applied", lineterm="", n=1))
    shown = "\n".join(diff[:DIFF_LINES_KEPT])
    if len(diff) > DIFF_LINES_KEPT:
        shown += f"\n... ({len(diff) - DIFF_LINES_KEPT} more diff lines)"
    return Outcome("differs", seconds, shown + "\n--- the SQL's first lines:\n" + clip(sql, 1500), count_statements(sql))


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, help="git directory holding the history")
    parser.add_argument("--path", required=True, help="the migrations folder inside it")
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--limit", type=int, help="only the first N steps")
    parser.add_argument("--schemagate", default="schemagate", help="the schemagate binary")
    parser.add_argument("--migra", default="migra", help="the migra command")
    parser.add_argument("--tools", default="schemagate,migra", help="comma-separated: schemagate, migra")
    parser.add_argument("--sides", choices=["url", "migrations"], default="url",
                        help="schemagate's sides: database URLs (as migra) or migrations@REV")
    parser.add_argument("--layout", help="passed to schemagate with --sides migrations")
    parser.add_argument("--base-table", choices=["auto", "golang-migrate", "none"], default="auto",
                        help="the runner's table in S_0: golang-migrate's schema_migrations (auto: for .up.sql files)")
    parser.add_argument("--pg-bin", help="folder of initdb, pg_ctl, psql, pg_dump")
    parser.add_argument("--json", help="write every step's outcome here")
    args = parser.parse_args()

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for tool in tools:
        if tool not in ("schemagate", "migra"):
            print(f"unknown tool {tool!r} in --tools: use schemagate and/or migra", file=sys.stderr)
            return 2
    binaries = {"schemagate": args.schemagate, "migra": args.migra}
    for tool in tools:
        if shutil.which(binaries[tool]) is None:
            hint = "build it (cargo build --release) and pass --schemagate PATH" if tool == "schemagate" else \
                "install it: pip install migra psycopg2-binary 'sqlalchemy<2' setuptools (see this script's docstring)"
            print(f"{tool} not found as {binaries[tool]!r}: {hint}, or leave it out of --tools", file=sys.stderr)
            return 2
        binaries[tool] = shutil.which(binaries[tool])

    work = Path(tempfile.mkdtemp(prefix="schemagate-history-files-"))
    cluster = Cluster(args.pg_bin)
    try:
        return run(args, tools, binaries, cluster, work)
    except Fatal as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)


def run(args, tools: list[str], binaries: dict[str, str], cluster: Cluster, work: Path) -> int:
    run_started = time.monotonic()
    folder = work / "migrations"
    folder.mkdir()
    files = extract_migrations(args.repo, args.rev, args.path, folder)
    steps_total = len(files) if args.limit is None else min(args.limit, len(files))
    print(f"{len(files)} migration files in {args.path} at {args.rev}; checking {steps_total} steps with {', '.join(tools)}", file=sys.stderr)
    cluster.start()

    # S_0 is empty but for the runner's own table when the history uses it; S_i+1 is a
    # copy of S_i with file i applied (each file once, in order).
    cluster.psql("postgres", 'CREATE DATABASE "s_0000"')
    base = base_table(args.base_table, files)
    if base:
        cluster.psql("s_0000", base)
    dumps = {0: cluster.schema_dump("s_0000")}
    steps: list[Step] = []
    tool_seconds = {tool: 0.0 for tool in tools}
    stopped = None
    for i in range(steps_total):
        source, target = f"s_{i:04d}", f"s_{i + 1:04d}"
        cluster.copy(source, target)
        failed = cluster.apply_file(target, files[i])
        if failed is not None:
            stopped = f"the real migration {files[i].name} failed to apply with psql, so no later state can be built:\n{failed}"
            break
        dumps[i + 1] = cluster.schema_dump(target)
        step = Step(i, "base" if i == 0 else version_of(files[i - 1].name), version_of(files[i].name),
                    files[i].name, dumps[i] != dumps[i + 1])
        for tool in tools:
            if tool == "migra":
                cmd = [binaries["migra"], "--unsafe", cluster.migra_url(source), cluster.migra_url(target)]
                ok = (0, 2)
            elif args.sides == "url":
                cmd = [binaries["schemagate"], "diff", "--from", cluster.url(source), "--to", cluster.url(target),
                       "--dev-url", cluster.url("postgres")]
                ok = (0,)
            else:
                # `migrations@base` is no side: the empty state is S_0's URL.
                side_from = cluster.url(source) if i == 0 else f"migrations@{step.rev_from}"
                cmd = [binaries["schemagate"], "diff", "--migrations", str(folder),
                       "--from", side_from, "--to", f"migrations@{step.rev_to}",
                       "--dev-url", cluster.url("postgres")]
                if args.layout:
                    cmd += ["--layout", args.layout]
                ok = (0,)
            outcome = check_step(cluster, tool, cmd, ok, source, dumps[i + 1], work, i)
            tool_seconds[tool] += outcome.seconds
            step.outcomes[tool] = outcome
        steps.append(step)
        print(format_row(step, tools), flush=True)
        # S_i is needed only as the source of step i.
        cluster.drop(source)

    elapsed = time.monotonic() - run_started
    summary = summarise(steps, tools, tool_seconds)
    print()
    print_details(steps, tools)
    print()
    for line in summary["lines"]:
        print(line)
    print(f"run time: {elapsed:.1f} s; load average at the end: {load_average()}")
    if stopped:
        print(f"\nSTOPPED EARLY after {len(steps)} of {steps_total} steps: {stopped}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "repo": args.repo, "path": args.path, "rev": args.rev,
            "rev_commit": run_checked(["git", "--git-dir", args.repo, "rev-parse", args.rev], what="rev-parse").strip(),
            "tools": tools, "sides": args.sides, "steps_planned": steps_total,
            "stopped_early": stopped, "run_seconds": elapsed,
            "tool_seconds": tool_seconds,
            "counts": summary["counts"],
            "steps": [asdict(s) for s in steps],
        }, indent=2))
    return 1 if stopped else 0


def format_row(step: Step, tools: list[str]) -> str:
    cells = [f"{step.index:3d}", f"{step.rev_from}->{step.rev_to}", step.file, "schema" if step.changes_schema else "data only"]
    for tool in tools:
        outcome = step.outcomes[tool]
        cells.append(f"{tool}: {outcome.result} ({outcome.seconds:.2f} s)")
    return "| " + " | ".join(cells) + " |"


def print_details(steps: list[Step], tools: list[str]) -> None:
    for step in steps:
        for tool in tools:
            outcome = step.outcomes[tool]
            if outcome.result != "exact":
                print(f"=== step {step.index} ({step.file}), {tool}: {outcome.result}")
                print(outcome.detail)


def summarise(steps: list[Step], tools: list[str], tool_seconds: dict[str, float]) -> dict:
    n = len(steps)
    counts = {tool: {r: sum(1 for s in steps if s.outcomes[tool].result == r) for r in RESULTS} for tool in tools}
    schema_steps = [s for s in steps if s.changes_schema]
    lines = []
    shares = []
    for tool in tools:
        exact = counts[tool]["exact"]
        share = 100.0 * exact / n if n else 0.0
        shares.append(f"{tool}: {exact}/{n} exact ({share:.1f}%)")
    lines.append(", ".join(shares))
    for tool in tools:
        exact_schema = sum(1 for s in schema_steps if s.outcomes[tool].result == "exact")
        per_class = ", ".join(f"{r} {counts[tool][r]}" for r in RESULTS)
        lines.append(f"  {tool}: {per_class}; exact on the {len(schema_steps)} schema-changing steps: "
                     f"{exact_schema}/{len(schema_steps)}; time in the tool: {tool_seconds[tool]:.1f} s")
    return {"lines": lines, "counts": counts}


if __name__ == "__main__":
    sys.exit(main())
