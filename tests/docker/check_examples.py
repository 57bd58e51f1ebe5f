"""Checks the examples under deploy/ that no test runs: every file parses as YAML, every
Kubernetes object names its apiVersion, kind and name, every container of a Deployment or
Job runs non-root on a read-only root filesystem with resources set, and the CI workflow
has steps. Run by .ci/run."""

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
    return problems


for path in sorted((root / "deploy" / "kubernetes").glob("*.yaml")):
    for obj in yaml.safe_load_all(path.read_text()):
        where = f"{path.relative_to(root)}: {obj.get('kind')} {obj.get('metadata', {}).get('name')}"
        check(where, kubernetes_problems(obj))

for path in sorted((root / "deploy" / "ci").glob("*.yml")):
    jobs = yaml.safe_load(path.read_text())["jobs"]
    check(path.relative_to(root), [f"job {name} has no steps" for name, job in jobs.items() if not job.get("steps")])

sys.exit(1 if failed else 0)
