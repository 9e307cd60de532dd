"""Start state of episodes: how many images' installs change tracked files (`images.changed_tracked`).

Before forager recorded the install's changes, an episode on such an image started with a dirty
`git status`, and every diff an agent submitted carried the install's change. This builds repositories
and counts, over every image of the store, the ready images whose install changed tracked files (their
start state was not clean before the fix) and those whose baseline test run changed tracked files.

    .venv/bin/python bench/start_state.py [--corpus ../shared/corpus] [--sdists bench/success-repos.txt]
        [--limit N] [--jobs 2] [--store URL] [--python 3.11]          # builds, then prints JSON
    .venv/bin/python bench/start_state.py --count-only --store URL    # counts an existing store's images

Repositories: every `*.bundle` of --corpus (cloned into a temporary folder, or --workdir, never into
the corpus; built at the bundle's default branch head) and/or one PyPI sdist per `NAME==VERSION` line
of --sdists (made into a git repository, as bench/success_rate.py does). With neither, the corpus at
../shared/corpus. Progress goes to stderr, one line per repository. Needs a Docker engine and the base
image (`make base-image`); built images are tagged `forager-bench/NAME:HASH` and left in Docker.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy.engine import make_url

from forager.engine.docker_engine import Engine
from forager.images.pipeline import ImageBuilder
from forager.config import Settings
from forager.models import RepoRef
from forager.repos import normalise_url
from forager.sdist_repos import SdistError, repo_from_sdist
from forager.store import Store

from corpus import DEFAULT_CORPUS, clone_bundle, inside, one_line  # bench/corpus.py, beside this script

SDIST_CACHE = Path.home() / ".cache" / "forager-tests" / "sdists"
IMAGE_PREFIX = "forager-bench"


def count(store: Store, labels: dict[str, str] | None = None) -> dict:
    """Counts over every image of the store (pure reading). `labels` names repositories by URL."""
    labels = labels or {}
    rows = store.images()

    def name(repo) -> str:
        return labels.get(repo.url, repo.name)

    ready = [(image, repo) for image, repo in rows if image.status == "ready"]
    measured = [(image, repo) for image, repo in ready if "install" in (image.changed_tracked or {})]
    unmeasured = [(image, repo) for image, repo in ready if "install" not in (image.changed_tracked or {})]
    by_install = [(image, repo) for image, repo in measured if image.changed_tracked["install"]]
    by_tests = [(image, repo) for image, repo in ready if (image.changed_tracked or {}).get("tests")]
    # a failed attempt whose fallback (an older pytest) made the same commit ready is not a failure
    ready_commits = {(image.repo_id, image.commit) for image, _ in ready}
    failed = [(image, repo) for image, repo in rows
              if image.status != "ready" and (image.repo_id, image.commit) not in ready_commits]
    return {
        "images": len(rows),
        "ready": len(ready),
        "ready_measured": len(measured),
        "install_changed_tracked": {
            "count": len(by_install),
            "images": [{"repo": name(repo), "commit": (image.commit or "")[:12],
                        "files": image.changed_tracked["install"]} for image, repo in by_install],
        },
        "tests_changed_tracked": {
            "count": len(by_tests),
            "images": [{"repo": name(repo), "commit": (image.commit or "")[:12],
                        "files": image.changed_tracked["tests"]} for image, repo in by_tests],
        },
        "not_measured": {
            "count": len(unmeasured),
            "note": "ready images built by a forager that did not record the install's changes (no 'install' "
                    "key in changed_tracked): their start state was not checked; rebuilding them with this "
                    "forager (a cache hit) checks it" if unmeasured else "",
            "images": [{"repo": name(repo), "commit": (image.commit or "")[:12],
                        "forager_version": image.forager_version} for image, repo in unmeasured],
        },
        "failures": {
            "count": len(failed),
            "by_category": dict(Counter(image.failure_category or image.status for image, _ in failed)),
            "images": [{"repo": name(repo), "category": image.failure_category or image.status,
                        "message": one_line(image.failure_message or "")} for image, repo in failed],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=None,
                        help=f"folder of *.bundle files (default {DEFAULT_CORPUS} unless --sdists is given)")
    parser.add_argument("--sdists", type=Path, default=None, help="file of NAME==VERSION lines (PyPI sdists)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N repositories (corpus first)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--store", default=None, help="store URL (default: a SQLite file in a temporary folder)")
    parser.add_argument("--count-only", action="store_true", help="build nothing: count the images of --store")
    parser.add_argument("--python", action="append", default=None, help="Python version(s) to build with (3.11)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep clones and the build cache here (default: a temporary folder)")
    args = parser.parse_args()

    if args.count_only:
        if not args.store:
            parser.error("--count-only counts an existing store: give its URL with --store")
        url = make_url(args.store)
        if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).is_file()):
            parser.error(f"--store {args.store}: no such SQLite file (--count-only reads an existing store)")
        print(json.dumps({"benchmark": "start_state", "store": args.store, **count(Store(args.store))}, indent=2))
        return

    corpus = args.corpus if args.corpus is not None else (None if args.sdists else DEFAULT_CORPUS)
    sources: list[tuple[str, str, Path]] = []  # (kind, label, bundle path or "") in build order
    if corpus is not None:
        bundles = sorted(corpus.glob("*.bundle"))
        if not bundles:
            parser.error(f"no *.bundle files in {corpus}")
        sources += [("bundle", bundle.stem, bundle) for bundle in bundles]
    if args.sdists is not None:
        sources += [("sdist", line.strip(), Path()) for line in args.sdists.read_text().splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
    if args.limit is not None:
        sources = sources[:args.limit]
    if args.workdir is not None and corpus is not None and inside(args.workdir, corpus.parent):
        parser.error(f"--workdir {args.workdir} is inside {corpus.parent}; clones go elsewhere, never into the corpus")
    pythons = args.python or ["3.11"]

    with tempfile.TemporaryDirectory(prefix="forager-start-state-") as tmp:
        work = args.workdir.resolve() if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        settings = Settings(
            db=args.store or f"sqlite:///{Path(tmp) / 'start_state.db'}", cache_dir=work / "cache",
            overrides_dir=work / "no-overrides",
            base_image=os.environ.get("FORAGER_BASE_IMAGE", "forager/bootstrap-python:{python}"),
            python_versions=pythons, image_prefix=IMAGE_PREFIX, test_timeout=600,
        )
        store = Store(settings.db)
        builder = ImageBuilder(settings, store, Engine())
        labels: dict[str, str] = {}
        outside_store: list[dict] = []  # repositories that failed before the builder could record them

        def one(source: tuple[str, str, Path]) -> dict:
            kind, label, bundle = source
            try:
                if kind == "bundle":
                    repo = clone_bundle(bundle, work / "corpus" / label)
                else:
                    repo = repo_from_sdist(label, work / "sdists" / label.split("==")[0], SDIST_CACHE)
            except (RuntimeError, SdistError) as exc:
                row = {"repo": label, "status": "failed", "category": "clone", "message": one_line(str(exc))}
                outside_store.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
                return row
            labels[normalise_url(str(repo))] = label
            result = builder.build(RepoRef(url=str(repo)))
            row = {"repo": label, **result.model_dump(include={"status", "category", "commit", "passed", "seconds"})}
            row["commit"] = (row["commit"] or "")[:12]
            if result.status != "ready":
                row["message"] = one_line(result.message.replace(str(repo), label))
            elif result.image_id is not None and (image := store.image(result.image_id)) is not None:
                row["install_changed"] = (image.changed_tracked or {}).get("install")
                row["tests_changed"] = (image.changed_tracked or {}).get("tests")
            print(json.dumps(row), file=sys.stderr, flush=True)
            return row

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            rows = list(pool.map(one, sources))
        wall = time.monotonic() - started
        counted = count(store, labels)

    failures = counted["failures"]
    failures["count"] += len(outside_store)
    failures["by_category"] = dict(Counter(failures["by_category"]) + Counter(r["category"] for r in outside_store))
    failures["images"] += [{k: r[k] for k in ("repo", "category", "message")} for r in outside_store]
    summary = {
        "benchmark": "start_state",
        "python": pythons,
        "corpus": str(corpus) if corpus is not None else None,
        "sdists": str(args.sdists) if args.sdists is not None else None,
        "repos": len(sources),
        **counted,
        "wall_seconds": round(wall, 1),
        "jobs": args.jobs,
        "rows": rows,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
