"""Building old commits: release tags of the corpus built as of their date and with today's releases.

For every repository of the corpus (git bundles with full history and release tags), the newest release
tag and the release tags about 1, 2, 3 and 5 years old (by the tag commit's committer date; versions that
`packaging` parses, pre-releases skipped; as many as exist) are each built twice in one run: with
`as_of="commit"` (dependencies uploaded before the commit's cut-off, the Python current at its date) and
with `as_of="latest"` (today's releases), each mode in a store of its own (two SQLite files) but sharing
Docker's layer cache and the mirror clones. Prints JSON: one row per tag with both builds (status, failure
category and cause, Python, the spec's as_of, test counts, seconds), then per age bucket and mode the ready
share and the failing baseline tests (failed + error, of ready images), the ratio of ready shares
commit/latest per bucket, the failures with their causes, and the issue's goals as reached or not.

    .venv/bin/python bench/history.py [--repos itsdangerous,pluggy] [--buckets 1,3,6] [--ages 1,2,3,5]
        [--jobs 2] [--limit N] [--workdir DIR]          # builds, then prints JSON
    .venv/bin/python bench/history.py --from-log FILE   # the summary of the progress lines of a run (partial too)

Progress goes to stderr, one JSON line per build (the same rows --from-log reads). Clones go into --workdir
(default: a temporary folder), never into the corpus; with --workdir the two stores stay there
(commit.db, latest.db) for `forager status --json` (FORAGER_DB=sqlite:///DIR/commit.db). Needs a Docker
engine and the base images (`make bases`: Python 3.9, 3.11 and 3.13); images are tagged
`forager-bench-history/NAME:HASH` and left in Docker.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from packaging.version import InvalidVersion, Version

from forager.engine.docker_engine import Engine
from forager.images.pipeline import ImageBuilder
from forager.config import Settings
from forager.envspec import as_of
from forager.models import RepoRef
from forager.store import Store

from corpus import DEFAULT_CORPUS, clone_bundle, inside, one_line  # bench/corpus.py, beside this script

IMAGE_PREFIX = "forager-bench-history"
MODES = (as_of.COMMIT, as_of.LATEST)
YEAR = 365.25


@dataclass(frozen=True)
class Tag:
    repo: str
    name: str
    commit: str
    committed_at: datetime
    age_years: float


def release_version(tag: str) -> Version | None:
    """The tag's version when it names a final (or post) release: `1.2.3`, `v10.1.0`; None for `2.1.x`,
    `8.0.0rc1`, `1.0.0.dev0` and names that are no version."""
    try:
        version = Version(tag.removeprefix("v").removeprefix("V"))
    except InvalidVersion:
        return None
    return None if version.is_prerelease or version.is_devrelease else version


def release_tags(repo: str, clone: Path, today: date) -> list[Tag]:
    """Every release tag with its commit's committer date, newest first; one tag per commit."""
    out = subprocess.run(
        ["git", "-C", str(clone), "for-each-ref", "refs/tags",
         "--format=%(refname:short)%09%(objectname)%09%(*objectname)%09%(committerdate:iso-strict)%09"
         "%(*committerdate:iso-strict)"],
        capture_output=True, text=True, check=True,
    ).stdout
    tags: dict[str, Tag] = {}
    for line in out.splitlines():
        name, obj, peeled, date_direct, date_peeled = (line.split("\t") + [""] * 5)[:5]
        version = release_version(name)
        stamp = date_peeled or date_direct
        if version is None or not stamp:
            continue
        commit = peeled or obj
        committed_at = datetime.fromisoformat(stamp)
        age = (today - committed_at.date()).days / YEAR
        tag = Tag(repo, name, commit, committed_at, round(age, 2))
        # two tags on one commit (1.1 and 1.1.0): the higher version names it
        if commit not in tags or version > release_version(tags[commit].name):
            tags[commit] = tag
    return sorted(tags.values(), key=lambda t: t.committed_at, reverse=True)


def pick_tags(releases: list[Tag], ages: list[float], spacing: float = 0.25) -> list[Tag]:
    """The newest release, then for each target age the release closest to it (within half a year, or a fifth
    of the age when that is more) and at least `spacing` years from every tag already picked. Newest first."""
    if not releases:
        return []
    picked = [releases[0]]
    for target in ages:
        tolerance = max(0.5, 0.2 * target)
        candidates = [t for t in releases if abs(t.age_years - target) <= tolerance
                      and all(abs(t.age_years - p.age_years) >= spacing for p in picked)]
        if candidates:
            picked.append(min(candidates, key=lambda t: (abs(t.age_years - target), -t.committed_at.timestamp())))
    return sorted(picked, key=lambda t: t.committed_at, reverse=True)


def bucket_of(age: float, edges: list[float]) -> str:
    """`0-1y`, `1-3y`, ... `6y+` for edges 1,3,6 (an age on an edge belongs to the younger bucket)."""
    low = 0.0
    for edge in edges:
        if age <= edge:
            return f"{_fmt(low)}-{_fmt(edge)}y"
        low = edge
    return f"{_fmt(low)}y+"


def bucket_names(edges: list[float]) -> list[str]:
    lows = [0.0, *edges]
    return [f"{_fmt(a)}-{_fmt(b)}y" for a, b in zip(lows, edges, strict=False)] + [f"{_fmt(edges[-1])}y+"]


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _log_tail(text: str, lines: int = 4) -> list[str]:
    kept = [line.strip()[:240] for line in (text or "").splitlines() if line.strip()]
    return kept[-lines:]


def build_one(builder: ImageBuilder, store: Store, clone: Path, tag: Tag, mode: str) -> dict:
    """One build of one tag in one mode: the fields the report keeps."""
    result = builder.build(RepoRef(url=str(clone), ref=tag.name))
    image = store.image(result.image_id) if result.image_id is not None else None
    spec = (image.spec if image is not None else None) or {}
    cut, _ = as_of.cutoff(as_of.COMMIT, tag.committed_at, date.today())
    row = {
        "status": result.status,
        "category": result.category,
        "cause": one_line(result.message.replace(str(clone), tag.repo)) if result.status != "ready" else "",
        "python": result.python,
        "spec_as_of": spec.get("as_of"),
        "resolver": spec.get("resolver"),
        "passed": result.passed,
        "failed": result.failed,
        "errors": result.errors,
        "skipped": result.skipped,
        "flaky": result.flaky,
        "seconds": result.seconds,
        "cached": result.cached,
    }
    notes = spec.get("notes") or []
    row["notes"] = [n for n in notes if n.startswith(("python ", "dependencies", "pytest")) or "pytest<" in n
                    or "as of" in n]
    if mode == as_of.COMMIT:
        # the commit's cut-off, and whether the build fell back to today's releases
        row["cutoff"] = cut.isoformat() if cut else None
        row["fell_back_to_latest"] = bool(cut and spec and spec.get("as_of") is None)
    if result.status != "ready":
        row["log_tail"] = _log_tail((image.log_tail if image is not None else "") or "")
    return row


def summarise(tags: list[dict], edges: list[float], wall: float | None = None, jobs: int | None = None,
              partial: bool = False) -> dict:
    """The report from per-tag rows (each with `age_years`, `bucket` and a `builds` dict per mode)."""
    buckets = {}
    for name in bucket_names(edges):
        in_bucket = [t for t in tags if t["bucket"] == name]
        if not in_bucket:
            continue
        entry = {"tags": len(in_bucket)}
        for mode in MODES:
            built = [t["builds"][mode] for t in in_bucket if mode in t["builds"]]
            ready = [b for b in built if b["status"] == "ready"]
            failing = [b["failed"] + b["errors"] for b in ready]
            entry[mode] = {
                "built": len(built),
                "ready": len(ready),
                "ready_share": round(len(ready) / len(built), 3) if built else None,
                "failing_tests_sum": sum(failing),
                "failing_tests_median": statistics.median(failing) if failing else None,
                "passed_tests_sum": sum(b["passed"] for b in ready),
                # builds that ended on the other resolution: as of the commit, today's releases after a failed
                # install; latest, the commit's releases after a suite that could not import a removed name
                "other_resolution": sum(bool(b.get("fell_back_to_latest")) if mode == as_of.COMMIT
                                        else b.get("spec_as_of") is not None for b in built),
            }
        shares = (entry[as_of.COMMIT]["ready_share"], entry[as_of.LATEST]["ready_share"])
        entry["ready_ratio_commit_over_latest"] = (
            round(shares[0] / shares[1], 3) if None not in shares and shares[1] else None)
        # tags ready in both modes: the fair comparison of failing baseline tests
        both = [t for t in in_bucket if all(t["builds"].get(m, {}).get("status") == "ready" for m in MODES)]
        entry["ready_in_both"] = {
            "tags": len(both),
            **{f"failing_{m}": sum(t["builds"][m]["failed"] + t["builds"][m]["errors"] for t in both) for m in MODES},
        }
        buckets[name] = entry

    failures = []
    for t in tags:
        for mode in MODES:
            b = t["builds"].get(mode)
            if b and b["status"] != "ready":
                failures.append({"repo": t["repo"], "tag": t["tag"], "age_years": t["age_years"], "mode": mode,
                                 "category": b["category"], "cause": b["cause"],
                                 "log_tail": b.get("log_tail", [])})
    by_category = {m: dict(Counter(f["category"] for f in failures if f["mode"] == m)) for m in MODES}

    def share(selected: list[dict], mode: str) -> float | None:
        built = [t["builds"][mode] for t in selected if mode in t["builds"]]
        return round(sum(b["status"] == "ready" for b in built) / len(built), 3) if built else None

    young = [t for t in tags if t["age_years"] <= 3]
    middle = [t for t in tags if 3 < t["age_years"] <= 6]
    both = [t for t in tags if all(t["builds"].get(m, {}).get("status") == "ready" for m in MODES)]
    failing = {m: sum(t["builds"][m]["failed"] + t["builds"][m]["errors"] for t in both) for m in MODES}
    goals = {
        "ready_share_up_to_3y": {m: share(young, m) for m in MODES},
        "ready_share_3_to_6y": {m: share(middle, m) for m in MODES},
        "failing_tests_of_tags_ready_in_both": failing,
        "reached": {
            ">=90% ready up to 3 years (commit)": (share(young, as_of.COMMIT) or 0) >= 0.9 if young else None,
            ">=75% ready 3 to 6 years (commit)": (share(middle, as_of.COMMIT) or 0) >= 0.75 if middle else None,
            "fewer failing baseline tests than latest": failing[as_of.COMMIT] < failing[as_of.LATEST] if both else None,
        },
    }
    return {
        "benchmark": "history",
        "today": date.today().isoformat(),
        "partial": partial,
        "tags": len(tags),
        "builds": sum(len(t["builds"]) for t in tags),
        "buckets": buckets,
        "goals": goals,
        "failure_categories": by_category,
        "failures": failures,
        "wall_seconds": round(wall, 1) if wall is not None else None,
        "jobs": jobs,
        "rows": tags,
    }


def from_log(path: Path, edges: list[float]) -> dict:
    """The summary of the progress lines of a run (one JSON object per build), finished or not."""
    tags: dict[tuple[str, str], dict] = {}
    planned = None
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "planned" in row:
            planned = row["planned"]
            continue
        if "mode" not in row:
            continue
        key = (row["repo"], row["tag"])
        entry = tags.setdefault(key, {k: row[k] for k in ("repo", "tag", "commit", "committed_at", "age_years")}
                                | {"bucket": bucket_of(row["age_years"], edges), "builds": {}})
        entry["builds"][row["mode"]] = row["build"]
    rows = list(tags.values())
    done = sum(len(t["builds"]) for t in rows)
    return summarise(rows, edges, partial=planned is None or done < planned) | {"planned_builds": planned}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of *.bundle files")
    parser.add_argument("--repos", default=None, help="comma-separated bundle names (default: all)")
    parser.add_argument("--buckets", default="1,3,6", help="age bucket edges in years (default 1,3,6)")
    parser.add_argument("--ages", default="1,2,3,5", help="target tag ages in years besides the newest (1,2,3,5)")
    parser.add_argument("--jobs", type=int, default=2, help="builds at once (default 2)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N tags (newest first per repo)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="clones, build cache and the two stores (default: a temporary folder)")
    parser.add_argument("--from-log", type=Path, default=None,
                        help="build nothing: summarise the progress lines (stderr) of a run, finished or not")
    args = parser.parse_args()
    edges = sorted(float(x) for x in args.buckets.split(",") if x.strip())
    ages = [float(x) for x in args.ages.split(",") if x.strip()]
    if not edges:
        parser.error("--buckets needs at least one edge, e.g. 1,3,6")

    if args.from_log is not None:
        print(json.dumps(from_log(args.from_log, edges), indent=2))
        return

    bundles = sorted(args.corpus.glob("*.bundle"))
    if args.repos:
        wanted = [name.strip() for name in args.repos.split(",") if name.strip()]
        missing = sorted(set(wanted) - {b.stem for b in bundles})
        if missing:
            parser.error(f"no bundle for {', '.join(missing)} in {args.corpus}")
        bundles = [b for b in bundles if b.stem in wanted]
    if not bundles:
        parser.error(f"no *.bundle files in {args.corpus}")
    if args.workdir is not None and inside(args.workdir, args.corpus.parent):
        parser.error(f"--workdir {args.workdir} is inside {args.corpus.parent}; clones go elsewhere, never into the corpus")

    with tempfile.TemporaryDirectory(prefix="forager-history-") as tmp:
        work = args.workdir.resolve() if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        today = date.today()
        clones: dict[str, Path] = {}
        picked: list[Tag] = []
        for bundle in bundles:
            clones[bundle.stem] = clone_bundle(bundle, work / "clones" / bundle.stem)
            picked += pick_tags(release_tags(bundle.stem, clones[bundle.stem], today), ages)
        if args.limit is not None:
            picked = picked[:args.limit]

        engine = Engine()
        builders: dict[str, tuple[ImageBuilder, Store]] = {}
        for mode in MODES:
            db = work / f"{mode}.db"
            if args.workdir is not None and db.exists():
                db.unlink()  # why: every run starts from fresh stores (the layer cache still makes repeats quick)
            settings = Settings(
                db=f"sqlite:///{db}", cache_dir=work / "cache", overrides_dir=work / "no-overrides",
                base_image=os.environ.get("FORAGER_BASE_IMAGE", "forager/bootstrap-python:{python}"),
                image_prefix=IMAGE_PREFIX, test_timeout=600, as_of=mode,
            )
            store = Store(settings.db)
            builders[mode] = (ImageBuilder(settings, store, engine), store)

        # why: the two builds of one tag share a lock (same commit); interleaved, two workers rarely wait on it
        jobs: list[tuple[Tag, str]] = []
        for index, tag in enumerate(picked):
            jobs.append((tag, as_of.COMMIT))
            if index:
                jobs.append((picked[index - 1], as_of.LATEST))
        if picked:
            jobs.append((picked[-1], as_of.LATEST))
        print(json.dumps({"planned": len(jobs), "tags": [f"{t.repo}@{t.name}" for t in picked]}),
              file=sys.stderr, flush=True)

        rows: dict[tuple[str, str], dict] = {
            (t.repo, t.name): {"repo": t.repo, "tag": t.name, "commit": t.commit[:12],
                               "committed_at": t.committed_at.date().isoformat(), "age_years": t.age_years,
                               "bucket": bucket_of(t.age_years, edges), "builds": {}}
            for t in picked
        }
        lock = threading.Lock()

        def one(job: tuple[Tag, str]) -> None:
            tag, mode = job
            builder, store = builders[mode]
            try:
                build = build_one(builder, store, clones[tag.repo], tag, mode)
            except Exception as exc:  # noqa: BLE001 - a bench bug in one build must not lose the others
                build = {"status": "failed", "category": "bench", "cause": f"{type(exc).__name__}: {exc}"[:300],
                         "python": None, "spec_as_of": None, "passed": 0, "failed": 0, "errors": 0, "seconds": 0}
            with lock:
                entry = rows[(tag.repo, tag.name)]
                entry["builds"][mode] = build
                line = {k: entry[k] for k in ("repo", "tag", "commit", "committed_at", "age_years")}
                print(json.dumps(line | {"mode": mode, "build": build}), file=sys.stderr, flush=True)

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(one, jobs))
        wall = time.monotonic() - started

    print(json.dumps(summarise(list(rows.values()), edges, wall, args.jobs), indent=2))


if __name__ == "__main__":
    main()
