#!/usr/bin/env python3
"""schemagate lint and squawk (PyPI `squawk-cli`) over the same migrations, statement by
statement, with the lock schemagate observed on the scratch server as the judge.

    pip install squawk-cli
    scripts/lint_vs_squawk.py --git /work/.mirror/goharbor+harbor/repo \
        --path make/migrations/postgresql --layout golang-migrate \
        --prelude 'CREATE TABLE IF NOT EXISTS schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);'

Files are copied into a temp dir (from `git show` with --git), so nothing is written where
they came from. --prelude becomes a first migration (harbor's files update golang-migrate's
own table, which the tool, not a migration, creates).

For each statement either tool flagged: what each said, the locks schemagate saw it hold on
objects that existed before the migration, and a verdict. Squawk's rules are mapped onto
schemagate's hazard kinds; its style rules (prefer-*, statement timeouts, robust
statements) judge no lock and are only counted. lock-timeout is compared per migration:
schemagate reports it once, at the first blocking lock.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict

# squawk rule -> the schemagate rule that judges the same hazard.
HAZARD = {
    "require-concurrent-index-creation": "index-not-concurrent",
    # DROP INDEX without CONCURRENTLY: schemagate's `drop` names the same statement.
    "require-concurrent-index-deletion": "drop",
    "disallowed-unique-constraint": "index-not-concurrent",
    "adding-serial-primary-key-field": "index-not-concurrent",
    "adding-foreign-key-constraint": "validating-scan",
    "constraint-missing-not-valid": "validating-scan",
    "adding-not-nullable-field": "validating-scan",
    "adding-required-field": "validating-scan",
    "changing-column-type": "rewrite",
    "adding-field-with-default": "rewrite",
    "renaming-column": "rename",
    "renaming-table": "rename",
    "ban-drop-column": "drop",
    "ban-drop-table": "drop",
    "ban-drop-database": "drop",
    "ban-truncate-cascade": "rewrite",
    "require-lock-timeout": "lock-timeout",
}
WHY_SCHEMAGATE = {
    "rewrite": "no relfilenode changed: no rewrite on this server version (a constant DEFAULT, a binary-compatible type change) or the table is new in this migration",
    "validating-scan": "no scan of an existing table while writes waited: the table is new in this migration, or the constraint was NOT VALID",
    "index-not-concurrent": "no index built on a table that existed before the migration",
    "rename": "nothing that existed before the migration got another name",
    "drop": "nothing that existed before the migration went away",
}


def sh(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def copy_files(args, into):
    if args.git:
        names = sh(["git", "-C", args.git, "ls-tree", "--name-only", "HEAD", args.path + "/"]).stdout.split()
        for name in names:
            if not name.endswith(".sql") or name.endswith(".down.sql"):
                continue
            text = sh(["git", "-C", args.git, "show", "HEAD:" + name]).stdout
            with open(os.path.join(into, os.path.basename(name)), "w") as f:
                f.write(text)
    else:
        for name in sorted(os.listdir(args.path)):
            if name.endswith(".sql"):
                with open(os.path.join(args.path, name)) as src, open(os.path.join(into, name), "w") as dst:
                    dst.write(src.read())
    if args.prelude:
        name = "0000_prelude.up.sql" if args.layout == "golang-migrate" else "00000000000000_prelude.sql"
        body = args.prelude if args.layout == "golang-migrate" else "-- migrate:up\n" + args.prelude + "\n-- migrate:down\n"
        with open(os.path.join(into, name), "w") as f:
            f.write(body + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--git", help="a git repository to read the folder from (HEAD)")
    p.add_argument("--path", required=True, help="the migrations folder (inside --git, or on disk)")
    p.add_argument("--layout", default="schemagate")
    p.add_argument("--prelude", help="SQL run as a first migration")
    p.add_argument("--schemagate", default="schemagate")
    p.add_argument("--squawk", default="squawk")
    p.add_argument("--pg-version", help="passed to squawk as --pg-version")
    p.add_argument("--quiet", action="store_true", help="the summary only")
    args = p.parse_args()

    work = tempfile.mkdtemp(prefix="lint-vs-squawk-")
    folder = os.path.join(work, "migrations")
    os.mkdir(folder)
    copy_files(args, folder)

    sg = sh([args.schemagate, "lint", "--all", "--format", "json", "--layout", args.layout, "--migrations", folder])
    if sg.returncode not in (0, 11):
        sys.exit(f"schemagate lint failed (exit {sg.returncode}):\n{sg.stderr}")
    report = json.loads(sg.stdout)

    files = sorted(f for f in os.listdir(folder) if f.endswith(".sql"))
    squawk_args = [args.squawk, "--reporter", "json"]
    if args.pg_version:
        squawk_args.append("--pg-version=" + args.pg_version)
    sq = sh(squawk_args + files, cwd=folder)
    try:
        squawk = json.loads(sq.stdout or "[]")
    except json.JSONDecodeError:
        sys.exit(f"squawk gave no JSON (exit {sq.returncode}):\n{sq.stdout}\n{sq.stderr}")

    # Statements by file: their first lines, to place squawk's (0-based) lines.
    starts = {}
    locks = {}
    for m in report["linted"]:
        name = os.path.basename(m["file"])
        starts[name] = sorted(s["line"] for s in m["statements"])
        for s in m["statements"]:
            locks[(name, s["line"])] = s["locks"]

    def statement_of(name, line):
        best = None
        for start in starts.get(name, []):
            if start <= line:
                best = start
        return best

    sg_by = defaultdict(set)
    sg_timeout = set()
    for f in report["findings"]:
        name = os.path.basename(f["file"])
        if f["rule"] == "lock-timeout":
            sg_timeout.add(name)
        else:
            sg_by[(name, f["line"])].add(f["rule"])
    sq_by = defaultdict(set)
    sq_timeout = set()
    style = Counter()
    for w in squawk:
        name = os.path.basename(w["file"])
        rule = w["rule_name"]
        if rule not in HAZARD:
            style[rule] += 1
            continue
        if HAZARD[rule] == "lock-timeout":
            sq_timeout.add(name)
            continue
        at = statement_of(name, w["line"] + 1)
        sq_by[(name, at)].add(rule)

    summary = Counter()
    rows = []
    for key in sorted(set(sg_by) | set(sq_by), key=lambda k: (k[0], k[1] or 0)):
        ours = sg_by.get(key, set())
        theirs = sq_by.get(key, set())
        mapped = {HAZARD[r] for r in theirs if HAZARD[r]}
        held = [f"{l['mode']} on {l['object']}" for l in locks.get(key, []) if l["blocks"] != "neither reads nor writes"]
        verdicts = []
        for kind in sorted(ours | mapped):
            if kind in ours and kind in mapped:
                verdicts.append(f"agree: {kind}")
                summary["agree"] += 1
            elif kind in ours:
                verdicts.append(f"schemagate right: {kind} observed, squawk silent")
                summary["schemagate only (observed)"] += 1
            else:
                verdicts.append(f"schemagate right: {kind} not observed ({WHY_SCHEMAGATE.get(kind, 'not seen')})")
                summary["squawk only (not observed)"] += 1
                summary["squawk only: " + ",".join(sorted(r for r in theirs if HAZARD[r] == kind))] += 1
        unmapped = {r for r in theirs if HAZARD[r] is None}
        for r in sorted(unmapped):
            verdicts.append(f"squawk {r}: judged as `drop` by schemagate" + (" (agree)" if "drop" in ours else ""))
        rows.append((key, ours, theirs, held, verdicts))

    if not args.quiet:
        print("| statement | schemagate | squawk | locks held (blocking) | verdict |")
        print("|---|---|---|---|---|")
        for (name, line), ours, theirs, held, verdicts in rows:
            print(f"| {name}:{line} | {', '.join(sorted(ours)) or '-'} | {', '.join(sorted(theirs)) or '-'} | {'; '.join(held) or '-'} | {'; '.join(verdicts)} |")
        print()
    migrations = report["migrations"]
    elapsed = [m["elapsed_ms"] for m in report["linted"]]
    print(f"migrations: {migrations}, statements: {report['statements']}, statements either flagged: {len(rows)}")
    for k, v in sorted(summary.items()):
        print(f"  {k}: {v}")
    both = len(sg_timeout & sq_timeout)
    print(f"  lock-timeout per migration: both {both}, schemagate only {len(sg_timeout - sq_timeout)}, squawk only {len(sq_timeout - sg_timeout)}")
    print(f"  squawk style rules (no lock to judge): {sum(style.values())} ({', '.join(f'{r} {n}' for r, n in style.most_common())})")
    if elapsed:
        print(f"  lint time per migration: mean {sum(elapsed) / len(elapsed):.1f} ms, max {max(elapsed):.1f} ms (observation only; scratch server start excluded)")


if __name__ == "__main__":
    main()
