"""Repositories: a mirror cache reused across builds, commit resolution, and sanitised snapshots (gitpython)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import git
from pydantic import BaseModel

from forager import envspec
from forager.models import FailureCategory, ForagerError, RepoRef, RepoTree

MAX_READ_BYTES = 200_000
GIT_TIMEOUT = 900  # seconds for one clone or fetch
# why: a missing or private repository must fail at once, not wait at a prompt nobody answers
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "/bin/echo",
    "SSH_ASKPASS": "/bin/echo",
    "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ConnectTimeout=30",
}
# A transfer slower than 1 kB/s for a minute is given up (a stalled server, not a big repository).
GIT_CONFIG = ["-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=60"]


class RepoSnapshot(BaseModel):
    """A repository resolved to one commit in the local mirror."""

    ref: RepoRef
    url: str  # normalised: absolute path for local repositories
    mirror: Path
    commit: str
    default_branch: str | None = None
    committed_at: datetime | None = None  # the commit's committer date: its world is resolved as of then


def normalise_url(url: str) -> str:
    """Local paths become absolute so the same repo named two ways shares one mirror."""
    if "://" in url or (":" in url and not Path(url).exists()):
        return url
    return str(Path(url).expanduser().resolve())


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Serialise work on one thing (a mirror, an image) across threads and processes, by a lock file beside `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class GitFailed(RuntimeError):
    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause


def _run_git(args: list[str], timeout: int = GIT_TIMEOUT) -> None:
    """Run a network git command in its own process group, killed whole when it outlives `timeout`.

    Not gitpython here: its clone ignores kill_after_timeout, and a stalled server would hang a worker.
    """
    proc = subprocess.Popen(
        ["git", *GIT_CONFIG, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **GIT_ENV}, start_new_session=True, stdin=subprocess.DEVNULL,
    )
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise GitFailed(f"git {args[0]} did not finish within {timeout}s") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        cause = next((line.removeprefix("fatal:").strip() for line in lines if line.startswith("fatal:")), None)
        raise GitFailed(cause or (lines[-1] if lines else f"git {args[0]} exited {proc.returncode}"))


def _update_mirror(url: str, mirror: Path) -> None:
    """Fetch into the mirror, or clone it; a mirror that cannot be fetched is cloned again once."""
    if mirror.exists():
        # why: a git killed mid-fetch leaves *.lock files that would fail every later fetch; we hold the lock
        for stale in mirror.rglob("*.lock"):
            stale.unlink(missing_ok=True)
        try:
            _run_git(["-C", str(mirror), "fetch", "--prune", "--tags", "origin", "+refs/heads/*:refs/heads/*"])
            return
        except GitFailed:
            shutil.rmtree(mirror, ignore_errors=True)
    # why: clone beside the mirror and rename, so a killed clone never leaves a half mirror behind
    partial = mirror.with_suffix(f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        _run_git(["clone", "--mirror", "--quiet", url, str(partial)])
    except GitFailed:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    partial.rename(mirror)


def fetch(ref: RepoRef, cache_dir: Path) -> RepoSnapshot:
    """Clone or update the mirror of `ref.url`, then resolve `ref.ref` (default: the default branch's HEAD)."""
    url = normalise_url(ref.url)
    shown = ref.safe_url
    if "://" not in url and ":" not in url and not Path(url).exists():
        raise ForagerError(FailureCategory.clone, f"cannot clone {shown}: no such path or URL (check the spelling)")
    mirror = cache_dir / "mirrors" / (hashlib.sha256(url.encode()).hexdigest()[:20] + ".git")
    with locked(mirror):
        try:
            _update_mirror(url, mirror)
        except GitFailed as exc:
            raise ForagerError(
                FailureCategory.clone,
                f"cannot clone {shown}: {exc.cause[:300]} (check the URL or path and that it is a git repository)",
            ) from exc
        repo = git.Repo(mirror)
        if repo.git.rev_parse("--is-shallow-repository") == "true":
            # why: a cut history has no parents to mine, and its oldest commit looks like a root
            raise ForagerError(FailureCategory.clone, f"{shown} is a shallow clone (its history is cut off); "
                               "fetch the whole history first (git fetch --unshallow) or give the full repository")
        default_branch = _default_branch(repo)
        wanted = ref.ref or "HEAD"
        try:
            commit = repo.git.rev_parse("--verify", "--end-of-options", f"{wanted}^{{commit}}")
        except git.GitCommandError as exc:
            raise ForagerError(
                FailureCategory.clone,
                f"{shown}: commit or ref {wanted!r} not found (fetched branches and tags; check the sha)",
            ) from exc
        committed_at = datetime.fromisoformat(repo.git.show("-s", "--format=%cI", commit).strip())
    return RepoSnapshot(ref=ref, url=url, mirror=mirror, commit=commit, default_branch=default_branch,
                        committed_at=committed_at)


def _default_branch(repo: git.Repo) -> str | None:
    try:
        return repo.git.symbolic_ref("--short", "HEAD")
    except git.GitCommandError:
        return None


def export_sanitised(snapshot: RepoSnapshot, dest: Path) -> None:
    """Write a work tree of the commit at `dest` whose git history holds only the commit and its ancestors.

    No remotes, no other branches, only tags of ancestors, no reflog, and gc'd objects: an agent in the
    image must not be able to find a later commit (the future fix) in history.
    """
    dest.mkdir(parents=True, exist_ok=True)
    repo = git.Repo.init(dest, initial_branch="main")
    # why: fetching one sha by path transfers only objects reachable from it, and adds no remote.
    repo.git.fetch("--no-tags", "--quiet", str(snapshot.mirror), snapshot.commit)
    # Tags on the commit's own ancestors are the past, not the future: keep them, since version tools
    # (setuptools-scm, hatch-vcs, versioneer) derive the package version from them.
    past_tags = git.Repo(snapshot.mirror).git.tag("--merged", snapshot.commit).split()
    if past_tags:
        repo.git.fetch("--no-tags", "--quiet", str(snapshot.mirror), *(f"refs/tags/{t}:refs/tags/{t}" for t in past_tags))
    repo.git.checkout("--quiet", "-B", "main", snapshot.commit)
    (dest / ".git" / "FETCH_HEAD").unlink(missing_ok=True)
    repo.git.reflog("expire", "--expire=now", "--all")
    repo.git.gc("--prune=now", "--quiet")


CHANGED_PREFIX = "changed-by-install: "


def history_check_script(commit: str) -> str:
    """Shell run inside the image: prints a reason and exits 1 if anything beyond `commit` is reachable or stored."""
    return f"""set -e
cd "$1"
[ "$(git rev-parse HEAD)" = "{commit}" ] || {{ echo "HEAD is not {commit}"; exit 1; }}
[ -z "$(git remote)" ] || {{ echo "remotes present: $(git remote)"; exit 1; }}
extra_refs=$(git for-each-ref --format='%(objectname)' | while read sha; do git merge-base --is-ancestor "$sha" HEAD || echo "$sha"; done)
[ -z "$extra_refs" ] || {{ echo "refs not in HEAD's history: $extra_refs"; exit 1; }}
stored=$(git cat-file --batch-all-objects --batch-check='%(objecttype) %(objectname)' | awk '$1=="commit"{{print $2}}' | sort)
reachable=$(git rev-list HEAD | sort)
[ "$stored" = "$reachable" ] || {{ echo "commits stored that HEAD does not reach"; exit 1; }}
[ -z "$(git reflog 2>/dev/null)" ] || {{ echo "reflog not empty"; exit 1; }}
echo history-ok
git diff --name-only | sed 's/^/{CHANGED_PREFIX}/'
"""


def changed_in_check(output: str) -> list[str]:
    """Tracked files the image's install changed, as the history check lists them after its verdict (pure)."""
    return [line[len(CHANGED_PREFIX):] for line in output.splitlines() if line.startswith(CHANGED_PREFIX)]


def read_tree(work_tree: Path) -> RepoTree:
    """Tracked paths and the text of the files detection wants (pure detection reads nothing itself)."""
    repo = git.Repo(work_tree)
    paths = repo.git.ls_files("-z").split("\0")
    paths = [p for p in paths if p]
    files: dict[str, str] = {}
    for path in paths:
        if envspec.wanted(path):
            full = work_tree / path
            # why: a tracked symlink may point outside the repository (even at the host's secrets)
            if full.is_file() and not full.is_symlink():
                with full.open("rb") as handle:
                    files[path] = handle.read(MAX_READ_BYTES).decode("utf-8", errors="replace")
    return RepoTree(paths=paths, files=files)


def read_files_at(mirror: Path, commit: str, paths: list[str]) -> dict[str, str]:
    """Text of `paths` as `commit` has them (missing or binary files are left out)."""
    tree = git.Repo(mirror).commit(commit).tree
    texts: dict[str, str] = {}
    for path in paths:
        try:
            data = (tree / path).data_stream.read()
        except KeyError:
            continue
        try:
            texts[path] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return texts


class CommitInfo(BaseModel):
    """One commit of a repository's history, as mining sees it."""

    sha: str
    parent: str
    message: str
    authored_at: str
    files: list[str]


def first_parent_history(
    mirror: Path, commit: str, max_commits: int, since: date | None = None,
) -> list[CommitInfo]:
    """Up to `max_commits` commits reachable from `commit` by first parents, newest first; the root left out.

    A merge is taken against its first parent: its change is what the merged branch brought to the line (a
    pull request merged with a merge commit). With `since`, only commits committed on or after that day (the committer date's own calendar day) are kept;
    the `max_commits` walked still count the ones left out.
    """
    repo = git.Repo(mirror)
    history = []
    for item in repo.iter_commits(commit, first_parent=True, max_count=max_commits):
        if not item.parents:
            continue
        if since is not None and item.committed_datetime.date() < since:
            continue
        parent = item.parents[0]
        files = [path for path in repo.git.diff("--name-only", "--no-renames", parent.hexsha, item.hexsha).splitlines() if path]
        history.append(
            CommitInfo(sha=item.hexsha, parent=parent.hexsha, message=str(item.message).strip(),
                       authored_at=item.authored_datetime.isoformat(), files=files)
        )
    return history


def diff_between(mirror: Path, old: str, new: str) -> str:
    """`git diff` from `old` to `new` as `git apply` takes it (binary hunks included, no renames)."""
    return git.Repo(mirror).git.diff("--binary", "--full-index", "--no-renames", old, new, stdout_as_string=True) + "\n"
