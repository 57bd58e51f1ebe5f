"""Checks the examples under deploy/ that no test runs: every file parses as YAML, every
Kubernetes object names its apiVersion, kind and name, every container of a Deployment or
Job runs non-root on a read-only root filesystem with resources set, an Indexed Job is a
fleet whose shard count matches its completions, and the CI workflow has steps. Run by
.ci/run."""

import pathlib
import sys

import yaml

root = pathlib.Path(__file__).resolve().parents[2]
failed = False


def check(where, problems):
    global failed
    for problem in problems:
        print(f"examples: FAIL: {where}: {problem}", file=sys.stderr)
    failed = failed or bool(problems)
    if not problems:
        print(f"examples: ok: {where}")


def kubernetes_problems(obj):
    if not (obj.get("apiVersion") and obj.get("kind") and obj.get("metadata", {}).get("name")):
        return ["needs apiVersion, kind and metadata.name"]
    if obj["kind"] not in ("Deployment", "Job"):
        return []
    pod = obj["spec"]["template"]["spec"]
    problems = [] if pod.get("securityContext", {}).get("runAsNonRoot") else ["pod without runAsNonRoot"]
    for c in pod.get("initContainers", []) + pod["containers"]:
        if not c.get("securityContext", {}).get("readOnlyRootFilesystem"):
            problems.append(f"container {c['name']} without readOnlyRootFilesystem")
        if "resources" not in c:
            problems.append(f"container {c['name']} without resources")
    if obj["kind"] == "Job" and obj["spec"].get("completionMode") == "Indexed":
        problems += indexed_job_problems(obj["spec"], pod)
    return problems


# The fleet options that give schemagate its targets, and their environment variables.
FLEET_FLAGS = {
    "--targets": "SCHEMAGATE_TARGETS",
    "--targets-query": "SCHEMAGATE_TARGETS_QUERY",
    "--tenant-schemas-query": "SCHEMAGATE_TENANT_SCHEMAS_QUERY",
}


def indexed_job_problems(spec, pod):
    """An Indexed Job runs one fleet shard per index: schemagate must be told the shard
    count (the index comes from JOB_COMPLETION_INDEX) and be given targets, else every pod
    migrates the same single database."""
    completions = spec.get("completions")
    if not isinstance(completions, int):
        return ["Indexed Job without completions"]
    problems = []
    if not isinstance(spec.get("parallelism"), int) or spec["parallelism"] > completions:
        problems.append(f"Indexed Job needs parallelism set to at most completions ({completions})")
    fleet = []
    for c in pod.get("initContainers", []) + pod["containers"]:
        words = [str(w) for w in c.get("command", []) + c.get("args", [])]
        env = {e["name"]: e for e in c.get("env", [])}
        if any(w == f or w.startswith(f + "=") for w in words for f in FLEET_FLAGS) or any(
            v in env for v in FLEET_FLAGS.values()
        ):
            fleet.append((c["name"], env))
    if not fleet:
        problems.append("Indexed Job whose containers use none of " + ", ".join(FLEET_FLAGS))
    for name, env in fleet:
        # Env values must be strings (an unquoted 4 is refused by the API server).
        value = env.get("SCHEMAGATE_SHARD_COUNT", {}).get("value")
        if value != str(completions):
            problems.append(
                f"container {name}: SCHEMAGATE_SHARD_COUNT is {value!r}, not completions {str(completions)!r}"
            )
    return problems


for path in sorted((root / "deploy" / "kubernetes").glob("*.yaml")):
    for obj in yaml.safe_load_all(path.read_text()):
        where = f"{path.relative_to(root)}: {obj.get('kind')} {obj.get('metadata', {}).get('name')}"
        check(where, kubernetes_problems(obj))

for path in sorted((root / "deploy" / "ci").glob("*.yml")):
    jobs = yaml.safe_load(path.read_text())["jobs"]
    check(path.relative_to(root), [f"job {name} has no steps" for name, job in jobs.items() if not job.get("steps")])

sys.exit(1 if failed else 0)
