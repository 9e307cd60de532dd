"""Benchmark task making: candidates tried, valid tasks, validation seconds and disk bytes per task.

Side by side in one run, on the same repositories and seeds:
- mutate-fix validation with the targeted pre-run (the tests that call the mutated function) and
  without it (whole suite for every candidate);
- the bytes a task adds (its patches and row in the store; Docker gains nothing) against the image it uses.
Also mines issue-fix tasks from cachetools' release history.

Prints JSON. Needs a Docker engine and the base image (`make base-image`); run with
`.venv/bin/python bench/tasks.py [--repo NAME==VERSION ...] [--count N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from forager.engine.docker_engine import Engine
from forager.images.pipeline import ImageBuilder
from forager.config import Settings
from forager.example_repo import materialise
from forager.models import RepoRef
from forager.sdist_repos import repo_from_sdist, repo_from_sdist_history
from forager.store import Store
from forager.tasks.issues import TaskValidator
from forager.tasks.synthesize import MutateFixSynthesizer

SDIST_CACHE = Path.home() / ".cache" / "forager-tests" / "sdists"
DEFAULT_REPOS = ["cachetools==5.5.0", "iniconfig==2.3.1", "six==1.17.0"]
HISTORY = ["cachetools==5.3.3", "cachetools==5.4.0", "cachetools==5.5.0"]


def docker_bytes(engine: Engine) -> int:
    usage = engine.client.df()
    return int(usage.get("LayersSize") or 0) + sum(int(c.get("SizeRw") or 0) for c in usage.get("Containers") or [])


def task_bytes(store: Store, instance_ids: list[str]) -> int:
    """What the store holds for these tasks: patches, statement and test lists (the JSONL line is this size too)."""
    total = 0
    for instance_id in instance_ids:
        task = store.task(instance_id)
        total += len(task.model_dump_json().encode())
    return total


def synthesize(settings: Settings, engine: Engine, repo: Path, count: int, prefilter: bool) -> dict:
    store = Store(settings.db)
    builder = ImageBuilder(settings, store, engine)
    built = builder.build(RepoRef(url=str(repo)))
    if built.status != "ready":
        return {"error": f"{built.category}: {built.message}"}
    before = docker_bytes(engine)
    synthesizer = MutateFixSynthesizer(settings, store, engine, builder, prefilter=prefilter)
    report = synthesizer.synthesize(RepoRef(url=str(repo)), count=count, seed=0)
    added_docker = docker_bytes(engine) - before
    valid = [v.instance_id for v in report.tasks if v.valid]
    per_task = task_bytes(store, valid) / max(len(valid), 1)
    return {
        "candidates": report.candidates,
        "tried": report.tried,
        "valid": report.valid,
        "invalid_reasons": report.invalid_reasons,
        "call_map_seconds": report.call_map_seconds,
        "validate_seconds": report.validate_seconds,
        "validate_seconds_per_valid_task": round(report.validate_seconds / max(report.valid, 1), 2),
        "validate_seconds_per_candidate": round(report.validate_seconds / max(report.tried, 1), 2),
        "store_bytes_per_task": int(per_task),
        "docker_bytes_added": added_docker,
        "image_bytes": built.size_bytes,
        "image_over_task_bytes": round((built.size_bytes or 0) / max(per_task, 1)),
        "tests_passed": built.passed,
    }


def mine(settings: Settings, engine: Engine, work: Path) -> dict:
    repo = repo_from_sdist_history(HISTORY, work / "cachetools-history", SDIST_CACHE)
    store = Store(settings.db)
    builder = ImageBuilder(settings, store, engine)
    started = time.perf_counter()
    report = TaskValidator(settings, store, engine, builder).mine(RepoRef(url=str(repo)), jobs=settings.jobs)
    seconds = time.perf_counter() - started
    valid = [v for v in report.tasks if v.valid]
    return {
        "repo": "cachetools releases " + " -> ".join(r.split("==")[1] for r in HISTORY),
        "commits_scanned": report.commits_scanned,
        "fix_candidates": report.fix_candidates,
        "valid": len(valid),
        "fail_to_pass": [v.fail_to_pass for v in valid],
        "seconds_per_task_including_parent_image_builds": round(seconds / max(report.fix_candidates, 1), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", action="append", help="PyPI sdist NAME==VERSION (default: a small fixed set)")
    parser.add_argument("--count", type=int, default=5, help="valid mutate-fix tasks wanted per repository")
    args = parser.parse_args()
    engine = Engine()
    results = {"count": args.count, "repos": []}
    with tempfile.TemporaryDirectory(prefix="forager-bench-tasks-") as tmp:
        work = Path(tmp)
        base = dict(
            cache_dir=work / "cache", base_image=os.environ.get("FORAGER_BASE_IMAGE", "forager/bootstrap-python:{python}"),
            python_versions=["3.11"], image_prefix="forager-bench-env", jobs=2,
        )
        repos = [("example-repo", materialise(work / "example-repo"))]
        for requirement in args.repo or DEFAULT_REPOS:
            repos.append((requirement, repo_from_sdist(requirement, work / requirement.split("==")[0], SDIST_CACHE)))
        for label, path in repos:
            row = {"repo": label}
            for prefilter in (True, False):
                key = "with_prefilter" if prefilter else "whole_suite_only"
                settings = Settings(db=f"sqlite:///{work / f'{label}-{key}.db'}", **base)
                row[key] = synthesize(settings, engine, path, args.count, prefilter)
                print(f"{label} {key}: {row[key]}", file=sys.stderr)
            a, b = row["with_prefilter"], row["whole_suite_only"]
            if "error" not in a and "error" not in b:
                row["whole_suite_over_prefilter_seconds_per_valid_task"] = round(
                    b["validate_seconds_per_valid_task"] / max(a["validate_seconds_per_valid_task"], 0.01), 2)
            results["repos"].append(row)
        results["mine"] = mine(Settings(db=f"sqlite:///{work / 'mine.db'}", **base), engine, work)
        for image in engine.client.images.list():
            for tag in image.tags:
                if tag.startswith("forager-bench-env/"):
                    engine.remove_image(tag)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
