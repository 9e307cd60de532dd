"""What is audited (pure): a start state as data, built from a survey of the container and the task's patches.

The probes' scripts are rendered from an `AuditSubject`: the repository, its tracked files, the files the gold
patch changes as the start state has them and as the fix leaves them, and the gold patch's distinctive lines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from pydantic import BaseModel, Field

from forager.tasks.patches import FileChange, file_changes, touched_files

MIN_LINE = 20  # characters of a stripped gold line: shorter lines (`return total`) are everywhere
MAX_GOLD_LINES = 100  # patterns given to one grep


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
