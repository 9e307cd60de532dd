"""Success rate of build-images over real Python repositories (PyPI source distributions made into git repos).

Prints JSON: ready count and share, failure categories, median build time, one row per repo.
`.venv/bin/python bench/success_rate.py [--repos-file bench/success-repos.txt] [--jobs 2]`
Needs a Docker engine and the base image (`make base-image`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from forager.engine.docker_engine import Engine
from forager.images.pipeline import BuildResult, ImageBuilder
from forager.config import Settings
from forager.models import RepoRef
from forager.sdist_repos import SdistError, repo_from_sdist
from forager.store import Store

SDIST_CACHE = Path.home() / ".cache" / "forager-tests" / "sdists"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repos-file", type=Path, default=Path(__file__).with_name("success-repos.txt"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--db", default=None, help="keep the store here (default: a temporary SQLite file)")
    args = parser.parse_args()
    requirements = [line.strip() for line in args.repos_file.read_text().splitlines() if line.strip()]

    with tempfile.TemporaryDirectory(prefix="forager-success-") as tmp:
        tmp = Path(tmp)
        settings = Settings(
            db=args.db or f"sqlite:///{tmp / 'success.db'}", cache_dir=tmp / "cache", overrides_dir=tmp / "none",
            base_image=os.environ.get("FORAGER_BASE_IMAGE", "forager/bootstrap-python:{python}"),
            python_versions=["3.11"], test_timeout=600,
        )
        builder = ImageBuilder(settings, Store(settings.db), Engine())

        def one(requirement: str) -> dict:
            try:
                repo = repo_from_sdist(requirement, tmp / "repos" / requirement.split("==")[0], SDIST_CACHE)
            except SdistError as exc:
                return {"repo": requirement, "status": "failed", "category": "clone", "message": str(exc)}
            result: BuildResult = builder.build(RepoRef(url=str(repo)))
            row = {"repo": requirement, **result.model_dump(include={
                "status", "category", "passed", "failed", "errors", "skipped", "flaky", "seconds"})}
            if result.status != "ready":
                row["message"] = result.message.replace(str(repo), requirement)
            print(json.dumps(row), file=sys.stderr, flush=True)
            return row

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            rows = list(pool.map(one, requirements))

    ready = [r for r in rows if r["status"] == "ready"]
    summary = {
        "benchmark": "success_rate",
        "python": "3.11",
        "repos": len(rows),
        "ready": len(ready),
        "ready_share": round(len(ready) / len(rows), 3),
        "failure_categories": dict(Counter(r["category"] for r in rows if r["status"] != "ready")),
        "median_build_seconds": round(statistics.median(r["seconds"] for r in ready), 1) if ready else None,
        "tests_passed_total": sum(r.get("passed", 0) for r in ready),
        "flaky_tests_total": sum(r.get("flaky", 0) for r in ready),
        "rows": rows,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
