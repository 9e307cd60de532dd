"""Task integrity on real repositories: grading determinism (`tasks verify`, K runs per patch) and the leak audit
(`forager audit`) of the same images, in one run.

For the example repository and corpus repositories (default itsdangerous and markupsafe at their newest commit;
../shared/corpus), the image is built (or reused) and `--tasks` mutate-fix tasks are made (seed 0); each task's
gold and empty patches are graded K times (`--runs`, default 5; every second run shuffled), and the image and
each task start state go through every audit probe. Prints JSON: per repository, tasks verified, tests dropped
as non-deterministic, order-dependent tests, seconds per task, and the audit's verdict per probe (clean,
reported, failed) for the image and each task.

    .venv/bin/python bench/integrity.py [--repos example,itsdangerous,markupsafe] [--tasks 3] [--runs 5]
        [--workdir DIR] [--audit-only]

`--audit-only` audits again what an earlier run left in the same --workdir (its store and images). Needs a Docker engine and the base image (`make base-image`); images are tagged `forager-bench-integrity/NAME:HASH`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from forager.config import Settings
from forager.engine.docker_engine import Engine
from forager.example_repo import materialise
from forager.images.pipeline import ImageBuilder
from forager.integrity.verify import Verifier
from forager.models import RepoRef
from forager.store import Store
from forager.tasks.synthesize import MutateFixSynthesizer

from corpus import DEFAULT_CORPUS, clone_bundle  # bench/corpus.py, beside this script

IMAGE_PREFIX = "forager-bench-integrity"


def log(message: str) -> None:
    print(f"[integrity bench] {message}", file=sys.stderr, flush=True)


def measure(name: str, settings: Settings, store: Store, engine: Engine, tasks: int, runs: int, workdir: Path,
            corpus: Path, audit_only: bool = False) -> dict:
    source = materialise(workdir / "example") if name == "example" else clone_bundle(
        corpus / f"{name}.bundle", workdir / "clones" / name)
    ref = RepoRef(url=str(source))
    builder = ImageBuilder(settings, store, engine)
    if audit_only:  # the images and tasks of an earlier run in the same --workdir
        image = store.image(builder.build(ref).image_id)
        started = time.monotonic()
        audit = audit_rows(settings, store, engine, image)
        return {"repo": name, "commit": image.commit, "python": image.python_version, "audit": audit,
                "audit_seconds": round(time.monotonic() - started, 1)}
    log(f"{name}: image and {tasks} tasks")
    report = MutateFixSynthesizer(settings, store, engine, builder).synthesize(ref, count=tasks, seed=0)
    image = store.image(report.image_id)
    rows = [t for t, _r in store.tasks(valid=True) if t.image_id == image.id][:tasks]
    verifier = Verifier(settings, store, engine)
    verified = []
    for task in rows:
        log(f"{name}: verify {task.instance_id}")
        record = verifier.verify(task, runs=runs, seed=0, jobs=settings.jobs)
        verified.append({"instance_id": task.instance_id, "verified": record.verified,
                         "gold_resolved": record.gold_resolved, "bug_failed": record.bug_failed,
                         "nondeterministic": record.nondeterministic, "order_dependent": record.order_dependent,
                         "seconds": record.seconds})
    log(f"{name}: audit")
    started = time.monotonic()
    audit = audit_rows(settings, store, engine, image)
    return {
        "repo": name, "commit": image.commit, "python": image.python_version, "tasks": len(rows),
        "verified": sum(v["verified"] for v in verified),
        "tests_dropped": sum(len(v["nondeterministic"]) for v in verified),
        "order_dependent": sum(len(v["order_dependent"]) for v in verified),
        "seconds_per_task": round(sum(v["seconds"] for v in verified) / max(len(verified), 1), 1),
        "verify": verified, "audit": audit, "audit_seconds": round(time.monotonic() - started, 1),
    }


def audit_rows(settings: Settings, store: Store, engine: Engine, image) -> list[dict]:
    from forager.integrity.audit import audit_image

    tasks = [t for t, _r in store.tasks() if t.image_id == image.id]
    report = audit_image(engine, settings, store, image, tasks)
    return json.loads(report.model_dump_json())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", default="example,itsdangerous,markupsafe")
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--audit-only", action="store_true", help="audit the images and tasks --workdir holds")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="forager-bench-integrity-"))
    settings = Settings(db=f"sqlite:///{workdir / 'integrity.db'}", cache_dir=workdir / "cache",
                        image_prefix=IMAGE_PREFIX)
    store, engine = Store(settings.db), Engine(timeout=settings.docker_timeout)
    rows = [measure(name.strip(), settings, store, engine, args.tasks, args.runs, workdir, args.corpus,
                    args.audit_only)
            for name in args.repos.split(",") if name.strip()]
    print(json.dumps({"runs": args.runs, "repos": rows}, indent=2))


if __name__ == "__main__":
    main()
