"""The leak audit: probes run in the container an agent would get, each looking for a way to the answer.

    report = audit_image(engine, settings, store, image)      # the image's start state, then each task's
    results = run_probes(sandbox, task, image)                 # or the probes on a sandbox already started

A start state is audited in a `Sandbox` started as an episode starts it (a task's bug patch as the start patch;
none for the image). Four probes, each a script run in that container and a pure parser of what it printed; every
search leaves out /proc, /sys and /dev (kernel views and devices, not files):

- `git`: anything in the repository's git data beyond the start commit (refs, reflogs, stashes, unreachable
  objects, remotes, leftover ORIG_HEAD-style files, other repositories on the filesystem).
- `pre-bug-source`: copies of the files the fix changes in the form the fix leaves them (for a mutate-fix task:
  the source before the bug): identical files anywhere, bytecode compiled from them or gone stale beside them,
  install and build copies (site-packages, build/lib) that differ from the start state. For the image: copies
  of tracked sources outside the repository, and bytecode beside them (what every later task would inherit).
- `gold-lines`: the gold patch's added lines searched for on the whole filesystem.
- `caches`: caches and temporary folders with their sizes (reported), and archives of the project itself
  (wheels, sdists, unpacked copies: failing).

A finding fails its probe or is only reported (`Finding.fails`); a probe fails when one of its findings does.
A task whose start state fails a probe becomes invalid (`leak audit: PROBE: FINDING`); one that an earlier audit
made invalid becomes valid again when it passes. Results are stored in `images.audit` and in the task's
`integrity["audit"]`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field, computed_field

from forager import __version__
from forager.tasks.patches import FileChange, file_changes, touched_files

MIN_LINE = 20  # characters of a stripped gold line: shorter lines (`return total`) are everywhere
MAX_GOLD_LINES = 100  # patterns given to one grep
COMMON_FILES = 5  # a gold line found in more files than this (outside the exemptions) is boilerplate
MIN_COPY_BYTES = 256  # the image's tracked sources smaller than this are too generic to look for as copies
MAX_FINDINGS = 200  # kept per probe (the scripts stop collecting there too)
MAX_MATCHES = 5000  # lines of grep output read
PROBE_TIMEOUT = 300  # seconds one probe may run in the container
ARG_CHUNK = 100_000  # characters per argument (Linux refuses one argument over 128 KiB)
ARG_BUDGET = 1_500_000  # characters of arguments in all (Linux allows about 2 MiB with the environment)
VENDOR_OWNERS = ("pip", "setuptools", "pkg_resources")  # whose `_vendor` folders only get reported
LEAK_PREFIX = "leak audit: "
PYTHON = ["python3", "-I", "-S", "-B"]  # the image's python; isolated, no site (no .pth code), writes no .pyc


class Verdict(StrEnum):
    clean = "clean"  # looked, found nothing
    reported = "reported"  # found things worth knowing, none of them a leak
    failed = "failed"  # found a leak
    skipped = "skipped"  # nothing to look for (no gold patch, no line long enough)
    error = "error"  # could not look: the probe broke (not counted as a leak)


class Finding(BaseModel):
    """One thing a probe found: what kind, where, and whether it fails the probe."""

    kind: str
    detail: str
    path: str | None = None
    fails: bool = True


class ProbeResult(BaseModel):
    name: str
    description: str
    verdict: Verdict
    findings: list[Finding] = Field(default_factory=list)
    note: str = ""  # why skipped, output cut, the error's text
    seconds: float = 0.0

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.fails]

    @property
    def summary(self) -> str:
        """What a table shows: clean / FAILED: n findings / reported: n / skipped / ERROR."""
        if self.verdict == Verdict.failed:
            count = len(self.failures)
            return f"FAILED: {count} finding{'s' if count != 1 else ''}"
        if self.verdict == Verdict.reported:
            return f"reported: {len(self.findings)}"
        return "ERROR" if self.verdict == Verdict.error else self.verdict.value


class SubjectAudit(BaseModel):
    """The audit of one start state: the image's own, or a task's."""

    subject: str  # "image", or the task's instance id
    image_id: int | None = None
    image_tag: str | None = None
    task_id: int | None = None
    probes: list[ProbeResult] = Field(default_factory=list)
    error: str | None = None  # the start state could not be audited at all (the sandbox did not start)
    forager_version: str = __version__
    audited_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    seconds: float = 0.0

    @computed_field
    @property
    def failed(self) -> bool:
        return any(p.verdict == Verdict.failed for p in self.probes)

    @computed_field
    @property
    def passed(self) -> bool:
        """Every probe looked and none failed."""
        return self.error is None and all(p.verdict not in (Verdict.failed, Verdict.error) for p in self.probes)

    @computed_field
    @property
    def reason(self) -> str | None:
        """The invalid reason a failing start state gives its task: the first failing probe's first failure."""
        for probe in self.probes:
            if probe.failures:
                return f"{LEAK_PREFIX}{probe.name}: {probe.failures[0].detail}"
        return None


class AuditReport(BaseModel):
    """An image's audit: its own start state and each of its tasks'."""

    image_id: int | None
    repo: str
    tag: str | None
    commit: str | None
    image: SubjectAudit
    tasks: list[SubjectAudit] = Field(default_factory=list)
    invalidated: list[str] = Field(default_factory=list)  # tasks this audit made invalid
    restored: list[str] = Field(default_factory=list)  # tasks an earlier audit made invalid, valid again

    @property
    def subjects(self) -> list[SubjectAudit]:
        return [self.image, *self.tasks]

    @computed_field
    @property
    def passed(self) -> bool:
        return all(s.passed for s in self.subjects)


# ---- what is audited (pure) ------------------------------------------------------------------------


class AuditSubject(BaseModel):
    """Everything the probes' scripts are rendered from: the start state as data."""

    repo_path: str
    root: str = "/"  # the filesystem searched (tests point it at a folder)
    subject: str = "image"
    image_commit: str | None = None  # HEAD must be it or a commit on top of it (the install's changes)
    only_commit: bool = False  # a task with a bug: HEAD must be the repository's only commit
    tracked: list[str] = Field(default_factory=list)  # repo-relative paths git tracks in the start state
    start_texts: dict[str, str] = Field(default_factory=dict)  # files the gold patch changes, as the start has them
    fixed_texts: dict[str, str] = Field(default_factory=dict)  # the same files as the gold patch leaves them
    label: str = "the source"  # what fixed_texts are, in findings' words
    gold_lines: list[str] = Field(default_factory=list)
    has_gold: bool = False
    project_names: list[str] = Field(default_factory=list)

    @property
    def is_image(self) -> bool:
        return self.subject == "image"


def fixed_text(start: str, change: FileChange) -> str | None:
    """A file's text once `change` is applied to `start` (hunks placed by their old lines, in order), or None
    when a hunk's old lines are not found or the change is more than text (a rename, binary, mode)."""
    if change.deleted or not change.plain:
        return None
    if change.created:
        return change.hunks[0][1] + "\n" if change.hunks else ""
    lines = start.split("\n")
    cursor = 0
    for old, new in change.hunks:
        old_lines, new_lines = old.split("\n"), new.split("\n")
        if not old:
            return None  # nowhere to put an insertion without context
        at = next((i for i in range(cursor, len(lines) - len(old_lines) + 1)
                   if lines[i:i + len(old_lines)] == old_lines), None)
        if at is None:
            return None
        lines[at:at + len(old_lines)] = new_lines
        cursor = at + len(new_lines)
    return "\n".join(lines)


def added_lines(diff: str) -> list[str]:
    """Lines a diff adds (its hunks' new lines less their old ones), in order, each once."""
    seen: dict[str, None] = {}
    for change in file_changes(diff):
        for old, new in change.hunks:
            left = Counter(old.split("\n"))
            for line in new.split("\n"):
                if left[line] > 0:
                    left[line] -= 1
                else:
                    seen.setdefault(line, None)
    return list(seen)


def gold_lines(gold_patch: str, start_texts: dict[str, str], min_len: int = MIN_LINE) -> list[str]:
    """The gold patch's distinctive added lines: stripped, at least `min_len` characters, and in none of the
    changed files as the start state has them (a line the start already holds would find its copies)."""
    lines = []
    for line in added_lines(gold_patch):
        line = line.strip()
        if len(line) >= min_len and not any(line in text for text in start_texts.values()) and line not in lines:
            lines.append(line)
    return lines[:MAX_GOLD_LINES]


def make_subject(repo_path: str, *, tracked: list[str], texts: dict[str, str | None], gold_patch: str = "",
                 bug_patch: str = "", kind: str | None = None, subject: str = "image",
                 image_commit: str | None = None, project_names: Iterable[str] = (), root: str = "/") -> AuditSubject:
    """The subject of an audit from what a survey of the container read (`texts`: the files the gold patch
    changes, None for one the start state lacks or that is not UTF-8)."""
    changed = touched_files(gold_patch) if gold_patch else []
    start = {path: text for path in changed if (text := texts.get(path)) is not None}
    fixed = {}
    for change in file_changes(gold_patch) if gold_patch else []:
        form = fixed_text(start.get(change.path, ""), change) if change.created or change.path in start else None
        if form is not None and form != start.get(change.path):
            fixed[change.path] = form
    label = ("the pre-bug source" if bug_patch or kind == "mutate-fix" else "the fixed source") if gold_patch \
        else "the source"
    return AuditSubject(
        repo_path=repo_path, root=root, subject=subject, image_commit=None if bug_patch else image_commit,
        only_commit=bool(bug_patch), tracked=tracked, start_texts=start, fixed_texts=fixed, label=label,
        gold_lines=gold_lines(gold_patch, start) if gold_patch else [], has_gold=bool(gold_patch),
        project_names=sorted({n for n in project_names if n}),
    )


# ---- the probes: scripts rendered from the subject, parsers of what they print (pure) ----------------


class ProbeOutputError(ValueError):
    """A probe's script printed something its parser cannot read (it crashed, or was cut off)."""


@dataclass(frozen=True)
class Probe:
    name: str  # stable: the invalid reason and the stored records name it
    description: str
    render: Callable[[AuditSubject], list[str]]  # the command run in the container
    parse: Callable[[AuditSubject, str], tuple[list[Finding], str]]  # (findings, note) from its stdout
    skip: Callable[[AuditSubject], str | None] = lambda _subject: None  # why there is nothing to look for

    def result(self, findings: list[Finding], note: str = "", seconds: float = 0.0) -> ProbeResult:
        """The probe's verdict from its findings: failed if one fails, reported if any, clean if none."""
        findings = sorted(findings, key=lambda f: not f.fails)  # failures first: the reason names one
        verdict = Verdict.failed if any(f.fails for f in findings) else Verdict.reported if findings else Verdict.clean
        return ProbeResult(name=self.name, description=self.description, verdict=verdict,
                           findings=findings[:MAX_FINDINGS], note=note, seconds=round(seconds, 3))

    def skipped(self, why: str) -> ProbeResult:
        return ProbeResult(name=self.name, description=self.description, verdict=Verdict.skipped, note=why)

    def broken(self, why: str, seconds: float = 0.0) -> ProbeResult:
        return ProbeResult(name=self.name, description=self.description, verdict=Verdict.error, note=why[:2000],
                           seconds=round(seconds, 3))


# ---- git -------------------------------------------------------------------------------------------

# Prints "finding<TAB>KIND<TAB>DETAIL" lines, then "done". $1 the repository, $2 "1" when HEAD must be the only
# commit, $3 the commit HEAD must be or sit on ("" for none), $4 the filesystem root searched for other repositories.
GIT_SCRIPT = r"""
set -u
cd -- "$1" 2>/dev/null || { echo "cannot enter $1" >&2; exit 2; }
gitdir=$(git rev-parse --absolute-git-dir 2>/dev/null) || { echo "$1 is not a git repository" >&2; exit 2; }
tab=$(printf '\t')
found() { printf 'finding\t%s\t%s\n' "$1" "$2"; }
ancestor() { git merge-base --is-ancestor "$1" HEAD 2>/dev/null; }
if ! head=$(git rev-parse -q --verify 'HEAD^{commit}'); then found head "HEAD names no commit"; echo done; exit 0; fi
if [ "$2" = 1 ]; then
  count=$(git rev-list --count HEAD)
  [ "$count" = 1 ] || found history "HEAD has $count commits in its history; a task's start state is its only commit"
fi
if [ -n "$3" ] && [ "$head" != "$3" ] && [ "$(git rev-parse -q --verify 'HEAD^1' 2>/dev/null)" != "$3" ]; then
  found head "HEAD $head is neither the image's commit $3 nor a commit on top of it"
fi
git for-each-ref --format="%(refname)$tab%(objectname)$tab%(objecttype)" | while IFS=$tab read -r ref sha type; do
  case $ref in refs/stash) kind=stash ;; refs/tags/*) kind=tag ;; refs/remotes/*) kind=remote-ref ;; *) kind=ref ;; esac
  if ! peeled=$(git rev-parse -q --verify "$sha^{commit}" 2>/dev/null); then found "$kind" "$ref points at a $type, not a commit"
  elif ! ancestor "$peeled"; then found "$kind" "$ref -> $peeled is not in HEAD's history"; fi
done
if [ -f "$gitdir/packed-refs" ]; then
  grep -v '^[#^]' "$gitdir/packed-refs" | while read -r sha ref; do
    [ "$(git rev-parse -q --verify "$ref" 2>/dev/null)" = "$sha" ] && continue  # the ref itself: looked at above
    git cat-file -e "$sha" 2>/dev/null || continue  # names an object that is gone: nothing to read
    peeled=$(git rev-parse -q --verify "$sha^{commit}" 2>/dev/null) && ancestor "$peeled" && continue
    found packed-ref "packed-refs keeps $ref at $sha, outside HEAD's history"
  done
fi
if [ -d "$gitdir/logs" ]; then
  find "$gitdir/logs" -type f -size +0c | while read -r log; do
    found reflog "${log#"$gitdir"/} is not empty ($(wc -l < "$log") lines)"
  done
fi
for name in ORIG_HEAD FETCH_HEAD MERGE_HEAD CHERRY_PICK_HEAD REVERT_HEAD BISECT_HEAD REBASE_HEAD AUTO_MERGE; do
  [ -e "$gitdir/$name" ] && found head-file "$name exists: $(head -c 200 "$gitdir/$name" | head -n 1)"
done
for name in rebase-merge rebase-apply; do
  [ -e "$gitdir/$name" ] && found head-file "$name/ exists (an unfinished rebase keeps other commits)"
done
git remote | while read -r remote; do  # credentials in a URL are not copied into the store
  found remote "remote $remote ($(git remote get-url "$remote" 2>/dev/null | sed 's#//[^/@]*@#//***@#'))"
done
[ -s "$gitdir/objects/info/alternates" ] && found alternates "objects are borrowed from $(head -n 1 "$gitdir/objects/info/alternates")"
[ -n "$(ls -A "$gitdir/worktrees" 2>/dev/null)" ] && found worktree "other worktrees: $(ls "$gitdir/worktrees" | tr '\n' ' ')"
git diff --cached --quiet HEAD -- 2>/dev/null || found index "the index differs from HEAD: $(git diff --cached --name-only HEAD -- | head -n 5 | tr '\n' ' ')"
git fsck --connectivity-only --unreachable --no-reflogs --no-progress 2>/dev/null | head -n 100 | while read -r what type sha; do
  [ "$what" = unreachable ] && found unreachable "$type $sha is stored but nothing reaches it"
done
base=${4%/}
find "$base/" -mindepth 1 -maxdepth 1 ! -name proc ! -name sys ! -name dev -print0 | xargs -0 -r -I{} \
  find {} -type f -name HEAD 2>/dev/null | while read -r file; do
  dir=${file%/HEAD}
  [ -d "$dir/objects" ] && [ -d "$dir/refs" ] || continue
  case "$dir/" in "$gitdir"/*) continue ;; esac
  case "$dir/" in "$1"/*) git ls-files --error-unmatch -- "${file#"$1"/}" >/dev/null 2>&1 && continue ;; esac
  found other-repo "a git repository at $dir"
done
echo done
"""


def render_git(subject: AuditSubject) -> list[str]:
    return ["bash", "-c", GIT_SCRIPT, "git-probe", subject.repo_path, "1" if subject.only_commit else "",
            subject.image_commit or "", subject.root]


def parse_git(_subject: AuditSubject, output: str) -> tuple[list[Finding], str]:
    lines = output.splitlines()
    if not lines or lines[-1].strip() != "done":
        raise ProbeOutputError("the git probe stopped before its end")
    findings = []
    for line in lines[:-1]:
        parts = line.split("\t", 2)
        if len(parts) == 3 and parts[0] == "finding":
            findings.append(Finding(kind=parts[1], detail=parts[2], fails=True))
    return findings, ""


# ---- pre-bug source ----------------------------------------------------------------------------------

# Walks the filesystem once. Input: JSON (split over the arguments): root, repo, label, image (bool), min_bytes,
# watched: [{path, size, sha256, text}] (the files as the fix leaves them; text may be null) or null for the image
# (every tracked .py, as it is). Prints JSON: findings, more (left out), files (walked).
SOURCE_SCRIPT = r"""
import hashlib, importlib.util, json, marshal, os, stat, subprocess, sys

spec = json.loads("".join(sys.argv[1:]))
root, repo, label, image = spec["root"].rstrip("/") or "/", spec["repo"].rstrip("/"), spec["label"], spec["image"]
MAGIC = importlib.util.MAGIC_NUMBER
findings, more = [], [0]


def add(kind, path, detail, fails=True):
    if len(findings) < 200:
        findings.append({"kind": kind, "path": path, "detail": path + ": " + detail, "fails": fails})
    else:
        more[0] += 1


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


listed = subprocess.run(["git", "-C", repo, "ls-files", "-z"], capture_output=True).stdout
tracked = {os.path.join(repo, p) for p in listed.decode("utf-8", "surrogateescape").split("\0") if p}


class Watched:
    def __init__(self, rel, size=None, sha=None, text=None):
        self.rel, self.abs, self.given_size, self.given_sha = rel, os.path.join(repo, rel), size, sha
        self.text = None if text is None else text.encode("utf-8", "surrogateescape")
        self.stem = os.path.basename(rel).split(".")[0]
        parts = rel.split("/")
        if len(parts) > 2 and parts[0] in ("src", "lib"):
            parts = parts[1:]
        self.tails = ["/".join(parts[-2:])] if len(parts) > 1 else [d + "/" + parts[0] for d in
                                                                     ("site-packages", "dist-packages", "lib")]
        self.codes = {}

    def leak(self):  # the watched form's bytes: given, or (the image) the file as it is
        if self.text is None and image:
            try:
                self.text = read(self.abs)
            except OSError:
                pass
        return self.text

    def size(self):
        if self.given_size is None:
            self.given_size = os.lstat(self.abs).st_size
        return self.given_size

    def sha(self):
        if self.given_sha is None:
            self.given_sha = hashlib.sha256(self.leak() or b"").hexdigest()
        return self.given_sha

    def code(self, level):
        if level not in self.codes:
            try:
                leak = self.leak()
                self.codes[level] = None if leak is None else compile(leak, self.abs, "exec", dont_inherit=True,
                                                                      optimize=level)
            except (SyntaxError, ValueError):
                self.codes[level] = None
        return self.codes[level]

    def start(self):
        try:
            return read(self.abs)
        except OSError:
            return None


if spec["watched"] is None:
    watched = [Watched(p[len(repo) + 1:]) for p in sorted(tracked) if p.endswith(".py") and os.path.isfile(p)]
else:
    watched = [Watched(w["path"], w["size"], w["sha256"], w.get("text")) for w in spec["watched"]]
by_size, by_stem, by_tail = {}, {}, {}
for w in watched:
    try:
        if not image or w.size() >= spec["min_bytes"]:
            by_size.setdefault(w.size(), []).append(w)
    except OSError:
        pass
    by_stem.setdefault(w.stem, []).append(w)
    for tail in w.tails:
        by_tail.setdefault(tail, []).append(w)
hashes = {}


def sha_of(path):
    if path not in hashes:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        hashes[path] = digest.hexdigest()
    return hashes[path]


def install_place(parts):
    for i, part in enumerate(parts[:-1]):
        if part in ("site-packages", "dist-packages") or part.endswith(".egg"):
            return True
        if part == "build" and parts[i + 1].startswith("lib"):
            return True
    return False


def same_code(data, w, level):
    code = w.code(level)
    if code is None or data[:4] != MAGIC:
        return False
    try:
        return marshal.loads(data[16:]) == code
    except Exception:
        return False


def fresh(data, source):
    try:
        st, text = os.stat(source), read(source)
    except OSError:
        return False
    if int.from_bytes(data[4:8], "little") & 1:
        return data[8:16] == importlib.util.source_hash(text)
    return (int.from_bytes(data[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(data[12:16], "little") == st.st_size & 0xFFFFFFFF)


def check_pyc(path, name, parts):
    stem = name.split(".")[0]
    if stem not in by_stem:
        return
    level = 2 if ".opt-2." in name else 1 if ".opt-1." in name else 0
    folder = os.path.dirname(path)
    pycache = os.path.basename(folder) == "__pycache__"
    source = os.path.join(os.path.dirname(folder) if pycache else folder, stem + ".py")
    try:
        data = read(path)
    except OSError:
        return
    for w in by_stem[stem]:
        if w.abs != source:
            continue
        if data[:4] != MAGIC:
            add("stale-pyc", path, "bytecode of %s from another Python (magic %s)" % (w.rel, data[:4].hex()))
        elif image:
            add("pyc", path, "bytecode of %s in the image: a task that changes the file leaves it compiled from "
                "the original" % w.rel)
        elif same_code(data, w, level):
            add("stale-pyc", path, "bytecode compiled from %s (%s)" % (w.rel, label))
        elif not fresh(data, source):
            add("stale-pyc", path, "bytecode of %s whose header does not match the file (compiled from another "
                "version of it)" % w.rel)
        return
    tail = "/".join(parts[-3:-2] + [stem + ".py"]) if pycache else "/".join(parts[-2:-1] + [stem + ".py"])
    for w in by_stem[stem]:
        if (image and tail not in w.tails) or not same_code(data, w, level):
            continue
        if path in tracked:
            add("tracked-pyc", path, "a tracked file: bytecode compiled from %s (%s)" % (w.rel, label), fails=False)
        else:
            add("compiled-copy", path, "bytecode compiled from %s (%s)" % (w.rel, label))
        return


def check_copy(path, size, parts):
    copied = False
    for w in by_size.get(size, ()):
        if path == w.abs:
            continue
        try:
            if sha_of(path) != w.sha():
                continue
        except OSError:
            continue
        copied = True
        if path in tracked:
            if not image:
                add("tracked-copy", path, "a tracked file identical to %s (%s): the repository repeats itself"
                    % (w.rel, label), fails=False)
        else:
            add("copy", path, "identical to %s (%s)" % (w.rel, label))
    if copied or image or path in tracked or not install_place(parts):
        return
    for w in by_tail.get("/".join(parts[-2:]), ()):
        if path == w.abs:
            continue
        try:
            data = read(path)
        except OSError:
            return
        if data != w.start():
            add("install-copy", path, "an installed or built copy of %s that differs from the start state" % w.rel)
        return


files = 0
top = root
for dirpath, dirnames, filenames in os.walk(top):
    if dirpath == top:
        dirnames[:] = [d for d in dirnames if d not in ("proc", "sys", "dev")]
    for name in filenames:
        path = os.path.join(dirpath, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        files += 1
        parts = path.split("/")
        check_copy(path, st.st_size, parts)
        if name.endswith(".pyc"):
            check_pyc(path, name, parts)
print(json.dumps({"findings": findings, "more": more[0], "files": files, "watched": len(watched)}))
"""


def source_spec(subject: AuditSubject, budget: int = ARG_BUDGET) -> dict:
    """The source script's input: for a task, the changed files as the fix leaves them (texts dropped, largest
    first, past the argument budget: those are then found as copies but not compared as bytecode)."""
    watched = None
    if not subject.is_image:
        watched = []
        for path, text in sorted(subject.fixed_texts.items(), key=lambda item: len(item[1])):
            data = text.encode("utf-8", "surrogateescape")
            budget -= len(json.dumps(text))
            watched.append({"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                            "text": text if budget > 0 else None})
    return {"root": subject.root, "repo": subject.repo_path, "label": subject.label, "image": subject.is_image,
            "min_bytes": MIN_COPY_BYTES, "watched": watched}


def chunked(text: str, size: int = ARG_CHUNK) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def render_source(subject: AuditSubject) -> list[str]:
    return [*PYTHON, "-c", SOURCE_SCRIPT, *chunked(json.dumps(source_spec(subject)))]


def _json_output(output: str, probe: str) -> dict:
    try:
        data = json.loads(output.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise ProbeOutputError(f"the {probe} probe printed no result") from None
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        raise ProbeOutputError(f"the {probe} probe printed no findings")
    return data


def _findings(data: dict) -> tuple[list[Finding], str]:
    findings = [Finding.model_validate(item) for item in data["findings"]]
    more = int(data.get("more") or 0)
    return findings, f"{more} more findings left out" if more else ""


def parse_source(_subject: AuditSubject, output: str) -> tuple[list[Finding], str]:
    data = _json_output(output, "pre-bug-source")
    findings, note = _findings(data)
    walked = f"{data.get('files', 0)} files walked, {data.get('watched', 0)} sources watched"
    return findings, f"{walked}; {note}" if note else walked


def skip_source(subject: AuditSubject) -> str | None:
    if subject.has_gold and not subject.fixed_texts:
        return "the gold patch's changes could not be rebuilt as files (renames, binary changes or deletions only)"
    return None


# ---- gold lines -----------------------------------------------------------------------------------

# Prints "PATH:LINE" for each gold line found in a file (grep -o), each pair once, then "done". $1 the root;
# the rest are the lines. Kernel views and devices are left out; grep -r follows no symbolic link below them.
GOLD_SCRIPT = r"""
base=${1%/}
shift
patterns=()
for line in "$@"; do patterns+=(-e "$line"); done
roots=()
for entry in "$base"/* "$base"/.[!.]*; do
  case $entry in "$base/proc"|"$base/sys"|"$base/dev") continue ;; esac
  [ -e "$entry" ] && [ ! -L "$entry" ] && roots+=("$entry")
done
if [ ${#roots[@]} -gt 0 ]; then
  LC_ALL=C grep -rIsoF "${patterns[@]}" -- "${roots[@]}" | LC_ALL=C sort -u | head -n MAX_MATCHES
fi
echo done
""".replace("MAX_MATCHES", str(MAX_MATCHES + 1))


def render_gold(subject: AuditSubject) -> list[str]:
    return ["bash", "-c", GOLD_SCRIPT, "gold-probe", subject.root, *subject.gold_lines]


def match_pairs(output: str, lines: list[str]) -> list[tuple[str, str]]:
    """(path, gold line) pairs from grep's "PATH:LINE" output: the line is the longest one the text ends with
    (a path may hold colons; a line is known)."""
    pairs = []
    by_length = sorted(lines, key=len, reverse=True)
    for text in output.splitlines():
        line = next((line for line in by_length if text.endswith(":" + line) and len(text) > len(line) + 1), None)
        if line is not None:
            pairs.append((text[:-len(line) - 1], line))
    return pairs


def vendored(path: str) -> bool:
    """In pip's or setuptools' own `_vendor` folder: copies of other projects the installers carry."""
    parts = path.split("/")
    return any(part == "_vendor" and i > 0 and parts[i - 1] in VENDOR_OWNERS for i, part in enumerate(parts))


def classify_matches(subject: AuditSubject, pairs: list[tuple[str, str]]) -> list[Finding]:
    """Findings from where gold lines were found. Not failing: the gold patch's own files (they lack the lines
    by construction; skipped), the repository's other tracked files (its own code, which repeats itself),
    installers' `_vendor` folders, and lines found in more than COMMON_FILES other files (boilerplate). Every
    other file fails: it holds a line of the fix that the start state does not."""
    repo = subject.repo_path.rstrip("/") + "/"
    tracked, changed = set(subject.tracked), set(subject.start_texts) | set(subject.fixed_texts)
    placed: list[tuple[str, str, str]] = []  # (kind, path, line)
    for path, line in pairs:
        inside = path[len(repo):] if path.startswith(repo) else None
        if inside is not None and inside in changed:
            continue
        placed.append(("tracked" if inside is not None and inside in tracked else
                       "vendored" if vendored(path) else "copy", path, line))
    spread = Counter(line for kind, _path, line in placed if kind == "copy")
    findings = []
    for kind, path, line in placed:
        if kind == "copy" and spread[line] > COMMON_FILES:
            kind = "common"
        detail = {
            "copy": "holds a line of the fix",
            "tracked": "a tracked file of the repository holds a line of the fix (its own code repeats itself)",
            "vendored": "an installer's vendored copy holds a line of the fix",
            "common": f"holds a line of the fix that {spread[line]} files hold (boilerplate)",
        }[kind]
        findings.append(Finding(kind=kind, path=path, detail=f"{path}: {detail}: {line!r}", fails=kind == "copy"))
    return findings


def parse_gold(subject: AuditSubject, output: str) -> tuple[list[Finding], str]:
    lines = output.splitlines()
    if not lines or lines[-1].strip() != "done":
        raise ProbeOutputError("the gold-lines probe stopped before its end")
    body = lines[:-1]
    note = f"{len(subject.gold_lines)} lines of {MIN_LINE}+ characters searched"
    if len(body) > MAX_MATCHES:
        body, note = body[:MAX_MATCHES], note + f"; output cut at {MAX_MATCHES} matches"
    return classify_matches(subject, match_pairs("\n".join(body), subject.gold_lines)), note


def skip_gold(subject: AuditSubject) -> str | None:
    if not subject.has_gold:
        return "no gold patch: nothing to look for"
    if not subject.gold_lines:
        return f"no added line of {MIN_LINE}+ characters that the start state lacks: nothing distinctive to look for"
    return None


# ---- caches ---------------------------------------------------------------------------------------

# Input: JSON {root, repo, names}. Reports each entry of the cache folders (~/.cache/* of root and /home/*, /tmp/*,
# /var/tmp/*, $PIP_CACHE_DIR, $UV_CACHE_DIR, $XDG_CACHE_HOME) with its size; walks the filesystem for archives of the
# project (wheels, sdists, eggs; and unpacked .dist-info/.egg-info in the caches), the project's names being the
# given ones and those of distributions installed from the repository. Prints JSON: findings, names, more.
CACHES_SCRIPT = r"""
import json, os, re, stat, subprocess, sys

spec = json.loads(sys.argv[1])
base, repo = spec["root"].rstrip("/"), spec["repo"].rstrip("/")
top = base or "/"
findings, more = [], [0]
EXTS = (".whl", ".tar.gz", ".tgz", ".tar.bz2", ".zip", ".egg")
INFO = (".dist-info", ".egg-info")


def add(kind, path, detail, fails):
    if len(findings) < 200:
        findings.append({"kind": kind, "path": path, "detail": detail, "fails": fails})
    else:
        more[0] += 1


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_of(name):
    for ext in EXTS + INFO:
        if name.endswith(ext):
            stem = name[: -len(ext)]
            segs = stem.split("-")
            for i in range(1, len(segs)):
                if segs[i][:1].isdigit():
                    return "-".join(segs[:i])
            return stem if ext in INFO else None
    return None


def size_of(path):
    total = count = 0
    try:
        st = os.lstat(path)
    except OSError:
        return 0, 0
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size, 1
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
                count += 1
            except OSError:
                pass
    return total, count


def human(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024


listed = subprocess.run(["git", "-C", repo, "ls-files", "-z"], capture_output=True).stdout
tracked = {os.path.join(repo, p) for p in listed.decode("utf-8", "surrogateescape").split("\0") if p}
homes = [base + "/root"]
try:
    homes += sorted(os.path.join(base + "/home", h) for h in os.listdir(base + "/home"))
except OSError:
    pass
caches = [h + "/.cache" for h in homes] + [base + "/tmp", base + "/var/tmp"]
for var in ("PIP_CACHE_DIR", "UV_CACHE_DIR", "XDG_CACHE_HOME"):
    if os.environ.get(var, "").startswith("/"):
        caches.append(base + os.environ[var].rstrip("/"))
caches = [c for i, c in enumerate(caches) if c not in caches[:i] and os.path.isdir(c) and not os.path.islink(c)]
for cache in caches:
    for entry in sorted(os.listdir(cache)):
        path = os.path.join(cache, entry)
        size, count = size_of(path)
        add("cache", path, "%s: %s in %d file%s" % (path, human(size), count, "" if count == 1 else "s"), False)


def in_cache(path):
    return any(path.startswith(c + "/") for c in caches)


names = {norm(n) for n in spec["names"] if n}
found = []
for dirpath, dirnames, filenames in os.walk(top):
    if dirpath == top:
        dirnames[:] = [d for d in dirnames if d not in ("proc", "sys", "dev")]
    for name in dirnames:
        if not name.endswith(INFO):
            continue
        path = os.path.join(dirpath, name)
        dist = dist_of(name)
        try:
            with open(os.path.join(path, "direct_url.json")) as handle:
                url = json.load(handle).get("url", "")
        except (OSError, ValueError, AttributeError):
            url = ""
        if dist and (url.rstrip("/") == "file://" + repo or path.startswith(repo + "/")):
            names.add(norm(dist))
        if dist and in_cache(path):
            found.append((path, dist, "an unpacked copy"))
    for name in filenames:
        if name.endswith(EXTS) and ".editable" not in name:  # an editable wheel points at the repository, no copy
            dist = dist_of(name)
            if dist:
                found.append((os.path.join(dirpath, name), dist, "an archive"))
for path, dist, what in found:
    if norm(dist) in names and path not in tracked:
        add("project-archive", path, "%s: %s of the project %s (its source before the task)" % (path, what, dist), True)
print(json.dumps({"findings": findings, "names": sorted(names), "more": more[0]}))
"""


def render_caches(subject: AuditSubject) -> list[str]:
    spec = {"root": subject.root, "repo": subject.repo_path, "names": subject.project_names}
    return [*PYTHON, "-c", CACHES_SCRIPT, json.dumps(spec)]


def parse_caches(_subject: AuditSubject, output: str) -> tuple[list[Finding], str]:
    data = _json_output(output, "caches")
    findings, note = _findings(data)
    names = ", ".join(data.get("names") or []) or "none found"
    return findings, f"project names: {names}" + (f"; {note}" if note else "")


GIT = Probe("git", "anything in git beyond the start commit: refs, reflogs, stashes, unreachable objects, remotes, "
            "ORIG_HEAD-style files, other repositories", render_git, parse_git)
SOURCE = Probe("pre-bug-source", "copies of the changed files as the fix leaves them: identical files, bytecode "
               "compiled from them or stale beside them, install and build copies", render_source, parse_source,
               skip_source)
GOLD = Probe("gold-lines", f"the gold patch's added lines ({MIN_LINE}+ characters) anywhere on the filesystem",
             render_gold, parse_gold, skip_gold)
CACHES = Probe("caches", "caches and temporary folders (reported with sizes); archives of the project (failing)",
               render_caches, parse_caches)
PROBES = (GIT, SOURCE, GOLD, CACHES)
PROBE_NAMES = tuple(p.name for p in PROBES)


def apply_outcome(probe: Probe, subject: AuditSubject, exit_code: int, stdout: str, stderr: str,
                  seconds: float = 0.0) -> ProbeResult:
    """A probe's result from how its script ended (pure): a timeout, a crash or unreadable output is an error."""
    if exit_code == 124:
        return probe.broken(f"timed out after {PROBE_TIMEOUT}s", seconds)
    try:
        if exit_code != 0:
            raise ProbeOutputError(f"exit code {exit_code}")
        findings, note = probe.parse(subject, stdout)
    except (ProbeOutputError, ValueError) as exc:
        tail = " | ".join((stderr or stdout).strip().splitlines()[-3:])
        return probe.broken(f"{exc}{': ' + tail if tail else ''}", seconds)
    return probe.result(findings, note, seconds)


# ---- the container edge -------------------------------------------------------------------------

SURVEY_SCRIPT = r"""
import json, os, subprocess, sys
repo, paths = sys.argv[1], sys.argv[2:]
listed = subprocess.run(["git", "-C", repo, "ls-files", "-z"], capture_output=True, check=True).stdout
texts = {}
for path in paths:
    try:
        with open(os.path.join(repo, path), "rb") as handle:
            texts[path] = handle.read().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        texts[path] = None
print(json.dumps({"tracked": [p for p in listed.decode("utf-8", "surrogateescape").split("\0") if p], "texts": texts}))
"""


def _exec(sandbox, argv: list[str]) -> tuple[int, str, str]:
    """Run a command in the sandbox's container as root, outside the agent's shell; (exit code, stdout, stderr)."""
    from forager.sandbox.container import SHELL_ENV

    code, (out, err) = sandbox.container.exec_run(["timeout", str(PROBE_TIMEOUT), *argv], environment=SHELL_ENV,
                                                  workdir="/", demux=True)
    return code, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")


def survey(sandbox, task=None, image=None, *, repo_name: str = "") -> AuditSubject:
    """What the probes need from the started container: its tracked files and the changed files' start texts."""
    gold = task.gold_patch if task is not None else ""
    changed = touched_files(gold) if gold else []
    code, out, err = _exec(sandbox, [*PYTHON, "-c", SURVEY_SCRIPT, sandbox.repo_path, *changed])
    if code != 0:
        raise ProbeOutputError(f"could not read the repository at {sandbox.repo_path}: "
                               f"{(err or out).strip().splitlines()[-1:] or f'exit code {code}'}")
    data = json.loads(out)
    return make_subject(
        sandbox.repo_path, tracked=data["tracked"], texts=data["texts"], gold_patch=gold,
        bug_patch=task.bug_patch if task is not None else "", kind=task.kind if task is not None else None,
        subject=task.instance_id if task is not None else "image",
        image_commit=image.commit if image is not None else None, project_names=[repo_name],
    )


def run_probes(sandbox, task=None, image=None, *, repo_name: str = "",
               only: Iterable[str] | None = None) -> list[ProbeResult]:
    """Run the probes (all, or those named in `only`) in an already started sandbox: the start state of `task`
    (the sandbox started with its bug patch), or of the image (`task` None)."""
    subject = survey(sandbox, task, image, repo_name=repo_name)
    wanted = set(only) if only is not None else set(PROBE_NAMES)
    results = []
    for probe in PROBES:
        if probe.name not in wanted:
            continue
        if why := probe.skip(subject):
            results.append(probe.skipped(why))
            continue
        started = time.monotonic()
        code, out, err = _exec(sandbox, probe.render(subject))
        results.append(apply_outcome(probe, subject, code, out, err, time.monotonic() - started))
    return results


def audit_start_state(engine, settings, image, task=None, *, repo_name: str = "") -> SubjectAudit:
    """Start the sandbox an agent would get (the task's bug patch applied; none for the image), run every
    probe in it, remove it. A start state that cannot be started or surveyed is an audit with an error."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    from forager.sandbox.container import Sandbox
    from forager.sandbox.errors import SandboxError

    started = time.monotonic()
    audit = SubjectAudit(subject=task.instance_id if task is not None else "image", image_id=image.id,
                         image_tag=image.tag, task_id=task.id if task is not None else None)
    try:
        if not image.tag or not engine.image_exists(image.tag):
            raise SandboxError(f"image {image.tag} is not on this Docker engine (rebuild or pull it)")
        with Sandbox(engine, image.tag, repo_path=settings.repo_path, labels={"forager.role": "audit"}) as sandbox:
            sandbox.start(task.bug_patch if task is not None else "")
            audit.probes = run_probes(sandbox, task, image, repo_name=repo_name)
    except (SandboxError, ProbeOutputError, DockerException, RequestException, OSError, ValueError) as exc:
        text = str(exc).strip().splitlines()
        audit.error = f"{exc.__class__.__name__}: {text[0] if text else ''}"[:500]
    audit.seconds = round(time.monotonic() - started, 3)
    return audit


def tasks_to_audit(store, image) -> list:
    """The image's tasks worth auditing: valid ones, and those an earlier audit made invalid."""
    return [task for task, _repo in store.tasks() if task.image_id == image.id
            and (task.valid or (task.invalid_reason or "").startswith(LEAK_PREFIX))]


def record_image(store, image_id: int, audit: SubjectAudit) -> None:
    """images.audit := this audit (only that column: other writers may hold the row)."""
    from forager.store import Image
    from forager.store.tables import utcnow

    with store.session() as s:
        row = s.get(Image, image_id)
        if row is None:
            return
        row.audit = audit.model_dump(mode="json")
        row.updated_at = utcnow()
        s.add(row)
        s.commit()


def record_task(store, task_id: int, audit: SubjectAudit) -> str | None:
    """tasks.integrity["audit"] := this audit, keeping the other keys; a valid task that fails becomes invalid,
    one an earlier audit made invalid becomes valid when it passes. Returns "invalidated", "restored" or None."""
    from forager.store import Task
    from forager.store.tables import utcnow

    with store.session() as s:
        row = s.get(Task, task_id)
        if row is None:
            return None
        row.integrity = {**(row.integrity or {}), "audit": audit.model_dump(mode="json")}
        change = None
        if audit.failed and row.valid:
            row.valid, row.invalid_reason, change = False, audit.reason, "invalidated"
        elif audit.passed and not row.valid and (row.invalid_reason or "").startswith(LEAK_PREFIX):
            row.valid, row.invalid_reason, change = True, None, "restored"
        row.updated_at = utcnow()
        s.add(row)
        s.commit()
        return change


def audit_image(engine, settings, store, image, tasks: list | None = None, *,
                on_subject: Callable[[str], None] | None = None) -> AuditReport:
    """Audit the image's start state and each task's (default: `tasks_to_audit`), and store the results."""
    repo = store.repo(image.repo_id)
    repo_name = repo.name if repo is not None else ""
    tasks = tasks_to_audit(store, image) if tasks is None else tasks
    report = AuditReport(image_id=image.id, repo=repo_name, tag=image.tag, commit=image.commit,
                         image=SubjectAudit(subject="image"))
    if on_subject:
        on_subject(f"image {image.id}")
    report.image = audit_start_state(engine, settings, image, repo_name=repo_name)
    if image.id is not None:
        record_image(store, image.id, report.image)
    for task in tasks:
        if on_subject:
            on_subject(f"task {task.instance_id}")
        audit = audit_start_state(engine, settings, image, task, repo_name=repo_name)
        report.tasks.append(audit)
        if task.id is not None:
            change = record_task(store, task.id, audit)
            if change == "invalidated":
                report.invalidated.append(task.instance_id)
            elif change == "restored":
                report.restored.append(task.instance_id)
    return report
