"""Benchmark contamination (`forager tasks contamination`): how forager's tasks overlap a benchmark's instances.

Three checks per task, against a benchmark file (SWE-bench-format instances) or, without one, the reference
list of the SWE-bench family's repositories (`benchmarks.py`):

- **repository**: the task's repository is one of the benchmark's ("owner/name", compared without case,
  scheme, host or ``.git``; a repository known only by its name, such as a local clone, matches by name);
- **time**: for such a task, whether its date is on or after the benchmark's first instance of that
  repository (its code may then hold the benchmark's fixes). The task's date is its instance's
  ``created_at`` (mined and imported tasks), else its base commit's committer date (mutate-fix tasks; read
  from the repository's mirror at the edge); neither known: ``unknown``;
- **text**: MinHash (datasketch, word 3-gram shingles as in `forager.export.dedup`) of the gold patch's
  changed lines against each instance's patch, and of the problem statement against each instance's; an
  estimated Jaccard similarity at or above the threshold is a match.

The rule (`CONTAMINATED_RULE`): a task is contaminated when its patch or statement matches an instance, or its
repository is a benchmark repository and the task is not known to predate the benchmark's first instance of it
(time relation ``on_or_after`` or ``unknown``; with the reference list, which has no dates, every task of a
listed repository). The record is `task.integrity["contamination"]`; `is_contaminated` reads it.

Everything here is pure but `read_benchmark` (a file) and `check_store` (the store and the repositories'
mirrors), which sit at the edge.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from datasketch import MinHash, MinHashLSH
from pydantic import BaseModel, Field

from forager import __version__
from forager.export.dedup import word_shingles
from forager.integrity.benchmarks import reference_repos

if TYPE_CHECKING:
    from forager.store import Repo, Store, Task

KEY = "contamination"
REFERENCE_LIST = "reference list"
DEFAULT_THRESHOLD = 0.5
NUM_PERM = 128
MAX_MATCHES = 20  # matches kept per task and kind, the most similar first (the count keeps the whole number)
CONTAMINATED_RULE = (
    "a patch or statement match at or above the threshold, or a benchmark repository with the task's date on or "
    "after the benchmark's first instance of it, or unknown"
)
Relation = Literal["on_or_after", "before", "unknown"]

_TOKEN = re.compile(r"\w+|[^\w\s]+")
_SCP_URL = re.compile(r"^[\w.-]+@[\w.-]+:(?P<path>.+)$")  # git@github.com:owner/name.git
_PATH_PREFIXES = ("/", "./", "../", "~")


# -- models ---------------------------------------------------------------------------------------------------
class BenchmarkInstance(BaseModel):
    """What the checks need of one benchmark instance."""

    instance_id: str
    repo: str  # normalised: lower-case "owner/name" (or a bare name)
    created_at: datetime | None = None
    patch: str = ""
    problem_statement: str = ""


class Benchmark(BaseModel):
    """The instances checked against (a file), or the reference list's repositories (no instances, no dates)."""

    against: str  # the file's name, or "reference list"
    sha256: str | None = None  # of the file's bytes
    instances: list[BenchmarkInstance] = Field(default_factory=list)
    # normalised repository -> the benchmarks that hold it (the reference list; a file names itself)
    repos: dict[str, list[str]] = Field(default_factory=dict)


class TaskSample(BaseModel):
    """What the checks need of one task (`task_sample` makes one from a store row)."""

    instance_id: str
    repo: str  # normalised, as `task_repo` gives it
    date: datetime | None = None
    date_source: str | None = None  # "instance created_at" | "base commit date"
    patch: str = ""  # the gold patch
    problem_statement: str = ""


class Match(BaseModel):
    instance_id: str
    similarity: float  # estimated Jaccard similarity of the shingles (MinHash)


class TimeRelation(BaseModel):
    """The task's date against the benchmark's first instance of its repository."""

    relation: Relation = Field(description="on_or_after: the task's date is on or after the first instance's "
                                           "created_at; before: earlier; unknown: either date is missing")
    task_date: str | None = None
    task_date_source: str | None = None
    first_instance_date: str | None = None
    first_instance_id: str | None = None


class Contamination(BaseModel):
    """What `tasks contamination` found of one task (task.integrity["contamination"])."""

    against: str = Field(description="the benchmark file's name, or 'reference list'")
    against_sha256: str | None = Field(default=None, description="sha256 of the benchmark file")
    benchmark_instances: int = Field(default=0, description="instances read from the file (0: the reference list)")
    repo: str = Field(description="the task's repository, normalised")
    benchmark_repo: str | None = Field(default=None, description="the benchmark repository it is (None: none)")
    repo_match: Literal["owner/name", "name"] | None = Field(
        default=None, description="how the repositories matched: in full, or by name where one side has no owner")
    benchmarks: list[str] = Field(default_factory=list, description="the benchmarks that hold the repository")
    time: TimeRelation | None = Field(default=None, description="only for a task of a benchmark repository")
    patch_threshold: float
    statement_threshold: float
    patch_matches: list[Match] = Field(default_factory=list, description=f"at most {MAX_MATCHES}, most similar first")
    patch_match_count: int = 0
    statement_matches: list[Match] = Field(default_factory=list)
    statement_match_count: int = 0
    contaminated: bool
    reasons: list[str] = Field(default_factory=list, description="repository, patch, statement: what made it so")
    rule: str = CONTAMINATED_RULE
    checked_at: str = ""
    forager_version: str = __version__


class RepoSummary(BaseModel):
    """One row of the report: a repository's tasks and what the checks found."""

    repo: str
    tasks: int
    benchmark_repo: str | None = None
    benchmarks: list[str] = Field(default_factory=list)
    on_or_after: int = 0  # tasks dated on or after the benchmark's first instance of the repository
    before: int = 0
    unknown_date: int = 0
    patch_matches: int = 0  # tasks with at least one patch match
    statement_matches: int = 0
    contaminated: int = 0


def is_contaminated(integrity: dict | None) -> bool:
    """Whether a task's integrity record marks it contaminated (pure; False for a task never checked)."""
    record = (integrity or {}).get(KEY)
    return isinstance(record, dict) and record.get("contaminated") is True


# -- repositories and dates -----------------------------------------------------------------------------------
def normalise_repo(text: str) -> str:
    """A repository as a lower-case "owner/name": from "owner/name", a URL (its last two path parts, any host) or
    git@host:owner/name; ".git" and trailing slashes dropped. A local path or a bare name gives the bare name
    (a path's parent folder is no owner)."""
    text = text.strip().rstrip("/")
    if scp := _SCP_URL.match(text):
        path = scp.group("path")
    elif "://" in text and not text.lower().startswith("file://"):
        path = text.split("://", 1)[1].partition("/")[2]  # drop the scheme and the host
    elif text.lower().startswith("file://") or text.startswith(_PATH_PREFIXES) or text in (".", ".."):
        path = text.rsplit("/", 1)[-1]
    else:
        path = text
    parts = [part for part in path.split("/") if part]
    if parts and parts[-1].lower().endswith(".git"):
        parts[-1] = parts[-1][:-4]
    return "/".join(parts[-2:]).lower()


def task_repo(repo_name: str, url: str) -> str:
    """A task's repository: its repo_name when that is "owner/name" (imports), else the repository URL's
    "owner/name" when it is a remote URL, else the bare name (a local repository, named as forager names it)."""
    if "/" in repo_name.strip().strip("/"):
        return normalise_repo(repo_name)
    from_url = normalise_repo(url) if url else ""
    if "/" in from_url:
        return from_url
    return normalise_repo(repo_name) if repo_name.strip() else from_url


def match_repo(repo: str, benchmark_repos: Iterable[str]) -> tuple[str | None, Literal["owner/name", "name"] | None]:
    """The benchmark repository `repo` is, and how: in full, else by name where either side has no owner."""
    repos = set(benchmark_repos)
    if repo in repos:
        return repo, "owner/name"
    name = repo.rsplit("/", 1)[-1]
    for candidate in sorted(repos):
        if ("/" not in repo or "/" not in candidate) and candidate.rsplit("/", 1)[-1] == name:
            return candidate, "name"
    return None, None


def parse_date(value: Any) -> datetime | None:
    """An ISO date or time (``Z`` allowed; without a zone: UTC), or a number of seconds or milliseconds since
    1970 (pandas exports); None when there is none or it cannot be read."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def time_relation(task_date: datetime | None, date_source: str | None,
                  first: BenchmarkInstance | None) -> TimeRelation:
    """The task's date against the first instance (the earliest dated) of its repository."""
    first_date = first.created_at if first else None
    if task_date is None or first_date is None:
        relation: Relation = "unknown"
    else:
        relation = "on_or_after" if task_date >= first_date else "before"
    return TimeRelation(
        relation=relation, task_date=task_date.isoformat() if task_date else None,
        task_date_source=date_source if task_date else None,
        first_instance_date=first_date.isoformat() if first_date else None,
        first_instance_id=first.instance_id if first_date and first else None,
    )


# -- the benchmark file ---------------------------------------------------------------------------------------
def read_benchmark(path: Path) -> Benchmark:
    """A benchmark's instances from a JSON list (or one object) or JSONL of SWE-bench-format instances.

    An instance needs `instance_id` and `repo`; `created_at`, `patch` and `problem_statement` are read when
    there (missing ones: no date, no text to compare). Raises ValueError with one line naming the file and the
    line (or list item) when the file or an instance cannot be read at all.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(
            f"benchmark file {path} does not exist; give a JSON or JSONL file of SWE-bench instances") from None
    except OSError as exc:
        raise ValueError(f"cannot read benchmark file {path} ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"benchmark file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    instances = [_instance(where, value) for where, value in _items(path, text)]
    if not instances:
        raise ValueError(f"benchmark file {path} holds no instances (expected SWE-bench-format JSON objects)")
    repos = {instance.repo: [path.name] for instance in instances}
    return Benchmark(against=path.name, sha256=hashlib.sha256(data).hexdigest(), instances=instances, repos=repos)


def reference_benchmark() -> Benchmark:
    """The SWE-bench family's repositories (`benchmarks.py`): repository checks only."""
    return Benchmark(against=REFERENCE_LIST, repos=reference_repos())


def _items(path: Path, text: str) -> list[tuple[str, Any]]:
    stripped = text.lstrip()
    if stripped.startswith("[") or stripped.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            if stripped.startswith("["):
                raise ValueError(
                    f"{path.name}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
            value = None  # JSONL whose first line is an object
        if isinstance(value, list):
            return [(f"{path.name}[{index}]", item) for index, item in enumerate(value)]
        if isinstance(value, dict):
            first_line = text[: len(text) - len(stripped)].count("\n") + 1
            return [(f"{path.name}:{first_line}", value)]
    items = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            items.append((f"{path.name}:{number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path.name}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    return items


def _instance(where: str, value: Any) -> BenchmarkInstance:
    if not isinstance(value, dict):
        kind = "null" if value is None else type(value).__name__
        raise ValueError(f"{where}: expected a JSON object (a SWE-bench instance), got {kind}")
    missing = [name for name in ("instance_id", "repo")
               if not (isinstance(value.get(name), str) and value[name].strip())]
    if missing:
        raise ValueError(f"{where}: missing {' and '.join(missing)}; every benchmark instance needs instance_id and "
                         "repo (owner/name)")
    return BenchmarkInstance(
        instance_id=value["instance_id"].strip(), repo=normalise_repo(value["repo"]),
        created_at=parse_date(value.get("created_at")), patch=_text(value.get("patch")),
        problem_statement=_text(value.get("problem_statement")),
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


# -- text similarity ------------------------------------------------------------------------------------------
def changed_lines(patch: str) -> list[str]:
    """The added and removed lines of a unified diff, without their sign (so a reversed patch compares equal)."""
    lines = []
    for line in patch.splitlines():
        if line.startswith(("+++ ", "--- ")) or line in ("+++", "---"):
            continue
        if line.startswith(("+", "-")):
            lines.append(line[1:])
    return lines


def patch_shingles(patch: str) -> set[bytes]:
    return text_shingles("\n".join(changed_lines(patch)))


def text_shingles(text: str) -> set[bytes]:
    """Word 3-grams of the text's tokens (words and runs of punctuation); empty for a text without any."""
    tokens = _TOKEN.findall(text)
    return word_shingles(tokens) if tokens else set()


class SimilarityIndex:
    """Near neighbours by MinHash: `add` the benchmark's texts, then `matches` of a task's, as in
    `forager.export.dedup.NearDuplicates` (an LSH index proposes, the estimate decides)."""

    def __init__(self, threshold: float, num_perm: int = NUM_PERM):
        self.threshold, self.num_perm = threshold, num_perm
        # why the cap: datasketch cannot band for 1.0; a lower index threshold only proposes more candidates
        self.index = MinHashLSH(threshold=min(threshold, 0.9), num_perm=num_perm)
        self.signatures: dict[str, MinHash] = {}

    def signature(self, shingles: set[bytes]) -> MinHash:
        signature = MinHash(num_perm=self.num_perm)
        signature.update_batch(list(shingles))
        return signature

    def add(self, key: str, shingles: set[bytes]) -> None:
        if not shingles or key in self.signatures:  # an empty text matches nothing; a repeated id counts once
            return
        signature = self.signature(shingles)
        self.index.insert(key, signature)
        self.signatures[key] = signature

    def matches(self, shingles: set[bytes]) -> list[Match]:
        if not shingles:
            return []
        signature = self.signature(shingles)
        found = []
        for key in self.index.query(signature):
            similarity = signature.jaccard(self.signatures[key])
            if similarity >= self.threshold:
                found.append(Match(instance_id=key, similarity=round(similarity, 3)))
        return sorted(found, key=lambda m: (-m.similarity, m.instance_id))


# -- the checks -----------------------------------------------------------------------------------------------
def assess(
    tasks: list[TaskSample], benchmark: Benchmark, *, patch_threshold: float = DEFAULT_THRESHOLD,
    statement_threshold: float | None = None, now: datetime | None = None,
) -> dict[str, Contamination]:
    """Each task's contamination record, by instance_id (pure)."""
    statement_threshold = patch_threshold if statement_threshold is None else statement_threshold
    patches, statements = SimilarityIndex(patch_threshold), SimilarityIndex(statement_threshold)
    first: dict[str, BenchmarkInstance] = {}
    for instance in benchmark.instances:
        patches.add(instance.instance_id, patch_shingles(instance.patch))
        statements.add(instance.instance_id, text_shingles(instance.problem_statement))
        earliest = first.get(instance.repo)
        if instance.created_at and (earliest is None or instance.created_at < earliest.created_at):
            first[instance.repo] = instance
    checked_at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    results = {}
    for task in tasks:
        benchmark_repo, how = match_repo(task.repo, benchmark.repos)
        time = time_relation(task.date, task.date_source, first.get(benchmark_repo)) if benchmark_repo else None
        patch_matches = patches.matches(patch_shingles(task.patch))
        statement_matches = statements.matches(text_shingles(task.problem_statement))
        reasons = []
        if time is not None and time.relation != "before":
            reasons.append("repository")
        if patch_matches:
            reasons.append("patch")
        if statement_matches:
            reasons.append("statement")
        results[task.instance_id] = Contamination(
            against=benchmark.against, against_sha256=benchmark.sha256, benchmark_instances=len(benchmark.instances),
            repo=task.repo, benchmark_repo=benchmark_repo, repo_match=how,
            benchmarks=benchmark.repos.get(benchmark_repo, []) if benchmark_repo else [], time=time,
            patch_threshold=patch_threshold, statement_threshold=statement_threshold,
            patch_matches=patch_matches[:MAX_MATCHES], patch_match_count=len(patch_matches),
            statement_matches=statement_matches[:MAX_MATCHES], statement_match_count=len(statement_matches),
            contaminated=bool(reasons), reasons=reasons, checked_at=checked_at,
        )
    return results


def summarise(results: Iterable[Contamination]) -> list[RepoSummary]:
    """The report's rows: per repository of the tasks, how many tasks and what the checks found."""
    rows: dict[str, RepoSummary] = {}
    for r in results:
        row = rows.setdefault(r.repo, RepoSummary(repo=r.repo, tasks=0))
        row.tasks += 1
        if r.benchmark_repo:
            row.benchmark_repo, row.benchmarks = r.benchmark_repo, r.benchmarks
        if r.time is not None:
            relation = r.time.relation
            row.on_or_after += relation == "on_or_after"
            row.before += relation == "before"
            row.unknown_date += relation == "unknown"
        row.patch_matches += bool(r.patch_matches)
        row.statement_matches += bool(r.statement_matches)
        row.contaminated += r.contaminated
    return sorted(rows.values(), key=lambda row: row.repo)


# -- the store's edge -----------------------------------------------------------------------------------------
def task_sample(task: Task, repo: Repo, commit_date: datetime | None = None) -> TaskSample:
    """A stored task as the checks see it: its instance's created_at, else its base commit's date (given)."""
    date, source = parse_date(task.instance_created_at), "instance created_at"
    if date is None and commit_date is not None:
        date, source = commit_date, "base commit date"
    return TaskSample(
        instance_id=task.instance_id, repo=task_repo(task.repo_name or "", repo.url or repo.name),
        date=date, date_source=source if date else None, patch=task.gold_patch or "",
        problem_statement=task.problem_statement or "",
    )


def commit_dates(mirror: str, commits: Iterable[str]) -> dict[str, datetime]:
    """Committer dates of commits in a repository mirror; commits it lacks (or a mirror that is gone) are left out."""
    import git

    dates: dict[str, datetime] = {}
    try:
        repo = git.Repo(mirror)
    except (git.exc.GitError, OSError):
        return dates
    with repo:
        for sha in set(commits):
            try:
                dates[sha] = repo.commit(sha).committed_datetime.astimezone(UTC)
            except (git.exc.GitError, ValueError):
                continue
    return dates


def check_store(
    store: Store, benchmark: Benchmark, *, repo_name: str | None = None, valid: bool | None = True,
    patch_threshold: float = DEFAULT_THRESHOLD, statement_threshold: float | None = None,
    on_task: Callable[[str], None] | None = None,
) -> dict[str, Contamination]:
    """Check the store's tasks (those of `repo_name`; valid ones unless `valid` is None) and mark each:
    `task.integrity["contamination"]`, the task's other integrity records kept. Returns the records by instance_id."""
    rows = store.tasks(repo_name=repo_name, valid=valid)
    undated: dict[str, list[str]] = defaultdict(list)  # mirror -> base commits of tasks with no instance date
    for task, repo in rows:
        if parse_date(task.instance_created_at) is None and task.base_commit and repo.mirror_path:
            undated[repo.mirror_path].append(task.base_commit)
    dates = {mirror: commit_dates(mirror, commits) for mirror, commits in undated.items()}
    samples = [task_sample(task, repo, dates.get(repo.mirror_path, {}).get(task.base_commit or ""))
               for task, repo in rows]
    results = assess(samples, benchmark, patch_threshold=patch_threshold, statement_threshold=statement_threshold)
    for sample in samples:
        # why re-read: another command (tasks verify, audit) may have saved its own record since the rows were read
        fresh = store.task(sample.instance_id)
        if fresh is None:
            continue
        fresh.integrity = {**(fresh.integrity or {}), KEY: results[sample.instance_id].model_dump(mode="json")}
        store.save_task(fresh)
        if on_task:
            on_task(sample.instance_id)
    return results
