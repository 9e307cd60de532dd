"""Benchmark build-images: cold build vs cache-hit rebuild, and bytes a second commit of the same repo adds.

Prints JSON. Needs a Docker engine and the base image (`make base-image`); run with
`.venv/bin/python bench/build.py [--repo NAME==VERSION ...]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from forager.engine.docker_engine import Engine
from forager.images.pipeline import ImageBuilder
from forager.config import Settings
from forager.example_repo import materialise
from forager.models import RepoRef
from forager.sdist_repos import git_commit_all, repo_from_sdist
from forager.store import Store

SDIST_CACHE = Path.home() / ".cache" / "forager-tests" / "sdists"


def measure(builder: ImageBuilder, engine: Engine, repo: Path, label: str) -> dict:
    cold_started = time.perf_counter()
    cold = builder.build(RepoRef(url=str(repo)))
    cold_seconds = time.perf_counter() - cold_started
    hits = []
    for _ in range(3):
        started = time.perf_counter()
        hit = builder.build(RepoRef(url=str(repo)))
        hits.append(time.perf_counter() - started)
        assert hit.cached, f"{label}: rebuild was not a cache hit"
    # a second commit touching one source file
    target = next(p for p in sorted(repo.rglob("*.py")) if ".git" not in p.parts and "test" not in p.name)
    target.write_text(target.read_text() + "\n# a second commit\n")
    git_commit_all(repo, "bench: second commit")
    started = time.perf_counter()
    second = builder.build(RepoRef(url=str(repo)))
    second_seconds = time.perf_counter() - started
    if cold.status != "ready" or second.status != "ready":
        return {"repo": label, "error": f"{cold.category or second.category}: {cold.message or second.message}"}
    added = engine.added_bytes(second.tag, cold.tag)
    return {
        "repo": label,
        "tests_passed": cold.passed,
        "cold_build_seconds": round(cold_seconds, 2),
        "cache_hit_seconds": round(statistics.median(hits), 3),
        "cold_over_cache_hit": round(cold_seconds / statistics.median(hits), 1),
        "second_commit_build_seconds": round(second_seconds, 2),
        "image_bytes": cold.size_bytes,
        "second_commit_added_bytes": added,
        "second_commit_added_share": round(added / cold.size_bytes, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", action="append", default=None, help="PyPI sdist NAME==VERSION (repeatable)")
    args = parser.parse_args()
    requirements = args.repo or ["six==1.17.0", "cachetools==8.0.2"]
    with tempfile.TemporaryDirectory(prefix="forager-bench-") as tmp:
        tmp = Path(tmp)
        overrides = tmp / "overrides"
        overrides.mkdir()
        nonce = uuid.uuid4().hex[:12]
        settings = Settings(
            db=f"sqlite:///{tmp / 'bench.db'}", cache_dir=tmp / "cache", overrides_dir=overrides,
            base_image=os.environ.get("FORAGER_BASE_IMAGE", "forager/bootstrap-python:{python}"),
            python_versions=["3.11"],
        )
        engine = Engine()
        builder = ImageBuilder(settings, Store(settings.db), engine)
        repos = [("example-repo (bundled)", materialise(tmp / "example-repo"))]
        repos += [(req, repo_from_sdist(req, tmp / req.split("==")[0], SDIST_CACHE)) for req in requirements]
        results = []
        for label, repo in repos:
            # why: a fresh env var makes Docker's layer cache miss, so "cold" really installs everything
            (overrides / f"{RepoRef(url=str(repo)).name}.toml").write_text(f'env = {{ FORAGER_BENCH = "{nonce}" }}\n')
            results.append(measure(builder, engine, repo, label))
            print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({"benchmark": "build", "results": results}, indent=2))


if __name__ == "__main__":
    main()
