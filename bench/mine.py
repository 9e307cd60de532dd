"""Benchmark mining issue-fix tasks from real history: corpus repositories, recent and 3-5 years old.

For each repository (a bundle of ../shared/corpus, cloned into --workdir), `TaskValidator.mine` walks the
first-parent history: the last --recent-commits commits of the default branch, or, for a repository given
as NAME:old, the --old-commits commits ending at the newest commit before --before. Then the oracle grades
every valid task's gold patch in a fresh container (`evaluate_in_image`). Reported per repository and in
total: commits scanned, fix-shaped candidates, validated and reused, valid tasks, tasks per 100 commits,
seconds per valid task, share of images reused, the dependency layers the images used (an image's first
`forager-install` layer: commits whose requirements and cut-off agree share one), disk added (the layers of
the new images that no image had before the repository's run, each counted once: Docker's classic builder
names every layer in an image's history), share of candidates lost to failed builds, and oracle
resolved/valid.

Resumable: run it again with the same --workdir (and --store) and every commit whose verdict is stored is
reused, not validated again. Prints JSON on stdout, progress on stderr. Needs a Docker engine and the base
images (`make bases`); run with
`.venv/bin/python bench/mine.py [--repos itsdangerous,markupsafe,tenacity:old,pluggy:old] [--jobs 2]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from forager.engine.docker_engine import Engine
from forager.images.pipeline import ImageBuilder
from forager.config import Settings
from forager.models import RepoRef
from forager.store import Store
from forager.tasks.evaluate import evaluate_in_image
from forager.tasks.issues import NO_IMAGE, TaskValidator

from corpus import clone_bundle  # bench/corpus.py, beside this script

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus"
DEFAULT_REPOS = "itsdangerous,markupsafe,tenacity:old,pluggy:old"


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def clone(name: str, workdir: Path) -> Path:
    """The bundle's clone under workdir (made once; ../shared is never written)."""
    bundle = CORPUS / f"{name}.bundle"
    if not bundle.is_file():
        raise SystemExit(f"no bundle {bundle}: the corpus is at ../shared/corpus relative to the repository root")
    return clone_bundle(bundle, workdir / "repos" / name)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def layer_sizes(engine: Engine, image_ids: list[str]) -> dict[str, int]:
    """Every layer of these images (history entry id -> bytes), each once."""
    layers: dict[str, int] = {}
    for image_id in image_ids:
        try:
            history = engine.client.api.history(image_id)
        except Exception:  # noqa: BLE001 - an image removed meanwhile (another run's prune) has no layers to count
            continue
        layers.update({entry["Id"]: entry["Size"] for entry in history if entry["Id"] != "<missing>"})
    return layers


def dependency_layer(engine: Engine, image_id: str) -> str | None:
    """The id of the image's dependency layer (the RUN marked `forager-install`), shared by equal requirements."""
    for entry in reversed(engine.client.api.history(image_id)):  # oldest first: the project's install is later
        if "forager-install" in (entry.get("CreatedBy") or ""):
            return entry["Id"]
    return None


def mine_one(settings: Settings, engine: Engine, spec: str, args: argparse.Namespace) -> dict:
    name, _, era = spec.partition(":")
    repo = clone(name, args.workdir)
    old = era == "old"
    ref = git(repo, "rev-list", "-1", f"--before={args.before}", "HEAD") if old else git(repo, "rev-parse", "HEAD")
    commits = args.old_commits if old else args.recent_commits
    store = Store(settings.db)
    builder = ImageBuilder(settings, store, engine)
    images_before = {image.id for image, _repo in store.images()}
    layers_before = layer_sizes(engine, [row["Id"] for row in engine.client.api.images()])
    started = time.monotonic()
    last = [""]

    def on_stage(text: str) -> None:
        if text != last[0]:
            last[0] = text
            log(f"{name}: {text}")

    report = TaskValidator(settings, store, engine, builder).mine(
        RepoRef(url=str(repo), ref=ref), max_commits=commits, jobs=args.jobs, on_stage=on_stage,
    )
    mine_seconds = time.monotonic() - started
    images_after = {image.id: image for image, _repo in store.images()}
    new_images = [images_after[i] for i in images_after if i not in images_before]
    used = [v.image_id for v in report.tasks if v.image_id is not None]
    new_layers = layer_sizes(engine, [image.image_id for image in new_images if image.image_id])
    dependency_layers = {dependency_layer(engine, images_after[i].image_id) for i in set(used)
                         if images_after.get(i) is not None and images_after[i].image_id}
    tried = len(report.tasks)

    log(f"{name}: oracle on {report.valid} valid task(s)")
    resolved, unresolved = 0, []
    for verdict in report.tasks:
        if not verdict.valid:
            continue
        task = store.task(verdict.instance_id)
        image = store.image(task.image_id)
        grade = evaluate_in_image(engine, settings, image, task, task.gold_patch)
        resolved += grade.resolved
        if not grade.resolved:
            unresolved.append({"instance_id": task.instance_id, "error": grade.error, "statuses": {
                t: s for t, s in grade.statuses.items() if s != "passed"}})
    reasons: dict[str, int] = {}
    for verdict in report.tasks:
        if not verdict.valid:
            key = (verdict.reason or "?").split(":")[0][:60]
            reasons[key] = reasons.get(key, 0) + 1
    first = git(repo, "show", "-s", "--format=%cs", ref)
    return {
        "repo": name,
        "era": "old" if old else "recent",
        "ref": ref[:12],
        "ref_date": first,
        "commits_scanned": report.commits_scanned,
        "candidates": report.fix_candidates,
        "validated": report.validated,
        "reused": report.reused,
        "valid": report.valid,
        "tasks_per_100_commits": round(100 * report.valid / max(report.commits_scanned, 1), 1),
        "mine_seconds": round(mine_seconds, 1),
        "seconds_per_valid_task": round(mine_seconds / report.valid, 1) if report.valid else None,
        "images_used": len(used),
        "images_reused": sum(i in images_before for i in used),
        "images_reused_share": round(sum(i in images_before for i in used) / len(used), 3) if used else None,
        "dependency_layers": len(dependency_layers - {None}),
        "disk_added_bytes": sum(size for layer, size in new_layers.items() if layer not in layers_before),
        "image_sizes_bytes": sum(image.size_bytes or 0 for image in new_images),
        "lost_to_builds": report.lost_to_builds,
        "lost_to_builds_share": round(report.lost_to_builds / tried, 3) if tried else None,
        "invalid_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "oracle_resolved": resolved,
        "oracle_unresolved": unresolved,
        "build_failures": sorted({v.reason[:160] for v in report.tasks if (v.reason or "").startswith(NO_IMAGE)}),
    }


def totals(rows: list[dict]) -> dict:
    keys = ("commits_scanned", "candidates", "validated", "reused", "valid", "images_used", "images_reused",
            "dependency_layers", "disk_added_bytes", "image_sizes_bytes", "lost_to_builds", "oracle_resolved")
    total = {key: sum(row[key] for row in rows) for key in keys}
    seconds = sum(row["mine_seconds"] for row in rows)
    tried = total["validated"] + total["reused"]
    total.update(
        mine_seconds=round(seconds, 1),
        tasks_per_100_commits=round(100 * total["valid"] / max(total["commits_scanned"], 1), 1),
        seconds_per_valid_task=round(seconds / total["valid"], 1) if total["valid"] else None,
        images_reused_share=round(total["images_reused"] / total["images_used"], 3) if total["images_used"] else None,
        lost_to_builds_share=round(total["lost_to_builds"] / tried, 3) if tried else None,
        oracle=f"{total['oracle_resolved']}/{total['valid']}",
    )
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repos", default=DEFAULT_REPOS,
                        help="comma-separated corpus bundle names; NAME:old mines the era before --before")
    parser.add_argument("--recent-commits", type=int, default=200, help="first-parent commits of a recent repository")
    parser.add_argument("--old-commits", type=int, default=60, help="first-parent commits of an old one")
    parser.add_argument("--before", default="2022-06-01", help="an old repository's history ends before this day")
    parser.add_argument("--jobs", type=int, default=2, help="commits validated at once")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/forager-bench-mine"),
                        help="clones, cache and (by default) the store; reuse it to resume")
    parser.add_argument("--store", default=None, help="store URL (default: sqlite in --workdir); reuse it to resume")
    parser.add_argument("--python-versions", default="3.9,3.11,3.13", help="Python versions with a base image here")
    args = parser.parse_args()
    date.fromisoformat(args.before)
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        db=args.store or f"sqlite:///{args.workdir / 'store.db'}", cache_dir=args.workdir / "cache",
        base_image=os.environ.get("FORAGER_BASE_IMAGE", "forager/bootstrap-python:{python}"),
        python_versions=[v.strip() for v in args.python_versions.split(",") if v.strip()],
        image_prefix=os.environ.get("FORAGER_IMAGE_PREFIX", "forager-bench-mine"), jobs=args.jobs,
    )
    engine = Engine(timeout=settings.docker_timeout)
    started = time.monotonic()
    rows = []
    for spec in [part.strip() for part in args.repos.split(",") if part.strip()]:
        log(f"{spec}: mining")
        rows.append(mine_one(settings, engine, spec, args))
        log(f"{spec}: {json.dumps({k: rows[-1][k] for k in ('candidates', 'valid', 'reused', 'oracle_resolved')})}")
    print(json.dumps({
        "date": date.today().isoformat(),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
        "settings": {"recent_commits": args.recent_commits, "old_commits": args.old_commits, "before": args.before,
                     "jobs": args.jobs, "python_versions": settings.python_versions, "as_of": settings.as_of},
        "repos": rows,
        "total": totals(rows),
        "wall_seconds": round(time.monotonic() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
