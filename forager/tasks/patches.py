"""Unified diffs as text: which files a patch touches, and its test part vs. its source part.

Pure string work, no git and no I/O. A SWE-bench gold patch often mixes the fix with the
tests that prove it; grading wants them apart (the tests go in ``test_patch``, applied before
grading; the fix is what the agent must find), and each part must still be a patch that
``git apply`` accepts, so the split copies whole per-file sections byte for byte.

The parser follows git's output:

- a section starts at ``diff --git a/X b/Y``; without git headers (plain ``diff -u``) it
  starts at a ``--- X`` line that is followed by ``+++ Y``;
- hunk bodies are consumed by the line counts in their ``@@ -a,b +c,d @@`` header, so a
  removed line that happens to read ``-- x`` is never taken for a new file header;
- git C-quotes awkward paths (``"b/caf\\303\\251.py"``) but leaves spaces unquoted, adding a
  tab after the name on the ``---``/``+++`` lines; both forms are read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_TEST_DIRS = frozenset({"test", "tests", "testing"})
_TEST_FILES = frozenset({"conftest.py", "tests.py"})
_DEV_NULL = "/dev/null"
_HUNK_RE = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def is_test_path(path: str) -> bool:
    """True when a repository path is test code: under a test directory, or a test file name.

    Directories named ``test``, ``tests`` or ``testing`` count; so do pytest's default file
    names (``test_*.py``, ``*_test.py``), ``conftest.py`` and Django's ``tests.py``. The
    directory rule applies to directories only: ``docs/tests.rst`` and ``testing_utils.py``
    are not tests.
    """
    parts = [part for part in path.replace("\\", "/").split("/") if part]
    if not parts:
        return False
    *dirs, name = parts
    if any(part in _TEST_DIRS for part in dirs):
        return True
    if name in _TEST_FILES:
        return True
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def changed_files(diff: str) -> list[str]:
    """Repository-relative paths the diff touches, in diff order, each once.

    One path per file section: the new name (``b/`` side), or the old one for a deletion.
    """
    seen: dict[str, None] = {}
    for section in _sections(diff)[1]:
        if section.path is not None:
            seen.setdefault(section.path, None)
    return list(seen)


def touched_files(diff: str) -> list[str]:
    """Every repository path the diff changes, each once: both names of a rename or copy, and a deleted file."""
    seen: dict[str, None] = {}
    for section in _sections(diff)[1]:
        names = [section.path]
        if section.old is not None and section.old != _DEV_NULL:
            names.append(section.old)
        elif section.git_header:
            names.append(_header_path(section.git_header, old_side=True))
        seen.update((name, None) for name in names if name)
    return list(seen)


def split_by_tests(diff: str) -> tuple[str, str]:
    """(non-test part, test part) of a diff, grouped per file section by :func:`is_test_path`.

    Each part is its sections concatenated in their original order, byte for byte, so each
    applies on its own with ``git apply``. Text before the first section (a commit message,
    an email header) belongs to neither and is dropped. A section whose path cannot be read
    stays with the non-test part, where a bad patch fails loudly instead of hiding in the tests.
    """
    source: list[str] = []
    tests: list[str] = []
    for section in _sections(diff)[1]:
        target = tests if section.path is not None and is_test_path(section.path) else source
        target.append(section.text)
    return "".join(source), "".join(tests)


def test_files(test_ids: Iterable[str]) -> list[str]:
    """Unique files named by pytest node ids, in first-seen order.

    The file is the part before the first ``::`` (``tests/test_a.py::TestX::test_y[a-b::c]``
    -> ``tests/test_a.py``); an id without ``::`` is taken as a path itself.
    """
    seen: dict[str, None] = {}
    for test_id in test_ids:
        name = test_id.split("::", 1)[0].strip()
        if name:
            seen.setdefault(name, None)
    return list(seen)


@dataclass
class _Section:
    """One file's part of a diff: its exact text and what its header lines say."""

    lines: list[str] = field(default_factory=list)
    git_header: str | None = None  # text after "diff --git ", when the section has one
    old: str | None = None  # from "--- ", quotes and prefix removed; "/dev/null" kept
    new: str | None = None  # from "+++ "
    renamed_to: str | None = None  # from "rename to " / "copy to "
    deleted: bool = False

    @property
    def text(self) -> str:
        return "".join(self.lines)

    @property
    def path(self) -> str | None:
        """The file this section is about: new name, else old name for a deletion."""
        if self.new is not None and self.new != _DEV_NULL:
            return self.new
        if self.renamed_to is not None:
            return self.renamed_to
        if self.old is not None and self.old != _DEV_NULL:
            return self.old
        # why: sections without ---/+++ lines (mode change, binary, empty new or deleted
        # file) name their file only in the git header
        return _header_path(self.git_header, old_side=self.deleted) if self.git_header else None


def _sections(diff: str) -> tuple[str, list[_Section]]:
    """(text before the first section, the file sections) of a diff."""
    lines = _lines(diff)
    preamble: list[str] = []
    sections: list[_Section] = []
    current: _Section | None = None
    old_left = new_left = 0
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if current is not None and (old_left > 0 or new_left > 0):
            taken, old_left, new_left = _hunk_line(line, old_left, new_left)
            if taken:
                current.lines.append(line)
                continue
            old_left = new_left = 0  # why: a short hunk ends early; read the line as a header
        body = line.rstrip("\r\n")
        if body.startswith("diff --git "):
            current = _Section(git_header=body[len("diff --git ") :])
            sections.append(current)
        elif body.startswith("--- ") and index < len(lines) and lines[index].startswith("+++ "):
            # why: in a git section the ---/+++ pair is its own header; without git headers
            # (or for a second pair) the pair opens a new section
            if current is None or current.git_header is None or current.old is not None:
                current = _Section()
                sections.append(current)
            plus = lines[index]
            index += 1
            current.old = _strip_prefix(_header_name(body[4:]), "a/")
            current.new = _strip_prefix(_header_name(plus.rstrip("\r\n")[4:]), "b/")
            current.lines += [line, plus]
            continue
        elif current is not None:
            hunk = _HUNK_RE.match(body)
            if hunk:
                old_left = int(hunk.group(1) or "1")
                new_left = int(hunk.group(2) or "1")
            elif current.git_header is not None:
                _read_extended_header(current, body)
        (current.lines if current is not None else preamble).append(line)
    return "".join(preamble), sections


def _lines(text: str) -> list[str]:
    """Lines with their endings kept; only "\\n" ends a line (file content may hold \\r or \\f)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _hunk_line(line: str, old_left: int, new_left: int) -> tuple[bool, int, int]:
    """Consume one hunk body line: (was it one, old lines left, new lines left)."""
    marker = line[:1]
    if marker in (" ", "\n", "\r"):  # why: some tools strip the space of empty context lines
        return True, old_left - 1, new_left - 1
    if marker == "-":
        return True, old_left - 1, new_left
    if marker == "+":
        return True, old_left, new_left - 1
    if marker == "\\":  # "\ No newline at end of file"
        return True, old_left, new_left
    return False, old_left, new_left


def _read_extended_header(section: _Section, body: str) -> None:
    """Note what git's extended header lines say about the file's name and fate."""
    for prefix in ("rename to ", "copy to "):
        if body.startswith(prefix):
            section.renamed_to = _header_name(body[len(prefix) :])
    if body.startswith("deleted file mode "):
        section.deleted = True


def _header_name(text: str) -> str:
    """A file name from a ---/+++/rename line: C-unquoted, or cut at the tab git or diff adds."""
    if text.startswith('"'):
        name, _rest = _unquote(text)
        return name
    return text.split("\t", 1)[0].rstrip("\r")


def _header_path(header: str, *, old_side: bool) -> str | None:
    """A path from the text after ``diff --git ``: "a/X b/Y", either side possibly quoted.

    Unquoted names may hold spaces, so "a/x y b/x y" is split where both halves name the same
    file (git writes the same name twice unless the section is a rename, which carries
    ``rename to`` lines and never gets here).
    """
    header = header.rstrip("\r")
    if header.startswith('"'):
        old, rest = _unquote(header)
        rest = rest.lstrip(" ")
        new = _unquote(rest)[0] if rest.startswith('"') else rest
    elif header.endswith('"') and ' "' in header:
        cut = header.index(' "')
        old, new = header[:cut], _unquote(header[cut + 1 :])[0]
    else:
        old, new = _split_same_name(header)
    name = _strip_prefix(old, "a/") if old_side else _strip_prefix(new, "b/")
    return name or None


def _split_same_name(header: str) -> tuple[str, str]:
    """Split "a/NAME b/NAME" at the space where both sides, prefixes dropped, agree."""
    for cut in (i for i, char in enumerate(header) if char == " "):
        old, new = header[:cut], header[cut + 1 :]
        if old.partition("/")[2] == new.partition("/")[2]:
            return old, new
    old, _space, new = header.partition(" b/")
    return old, "b/" + new if new else old


def _unquote(text: str) -> tuple[str, str]:
    """Decode a git C-quoted name at the start of `text`: (name, text after the closing quote).

    Git escapes ``\\t \\n \\" \\\\`` and friends, and writes non-ASCII bytes as octal
    (``\\303\\251`` is UTF-8 for "é"), so the name is rebuilt as bytes and then decoded.
    """
    out = bytearray()
    index = 1
    while index < len(text):
        char = text[index]
        if char == '"':
            return _decode(bytes(out)), text[index + 1 :]
        if char == "\\" and index + 1 < len(text):
            nxt = text[index + 1]
            octal = text[index + 1 : index + 4]
            if len(octal) == 3 and all(c in "01234567" for c in octal):
                out.append(int(octal, 8) & 0xFF)
                index += 4
                continue
            if nxt in _C_ESCAPES:
                out.append(_C_ESCAPES[nxt])
                index += 2
                continue
        out.extend(char.encode("utf-8", errors="surrogateescape"))
        index += 1
    # why: no closing quote means the name was not quoted after all; keep the text as written
    return text, ""


def _decode(raw: bytes) -> str:
    # why: git paths are bytes; surrogateescape keeps a non-UTF-8 name round-trippable (as
    # os.fsdecode does) instead of failing on it
    return raw.decode("utf-8", errors="surrogateescape")


def _strip_prefix(name: str, prefix: str) -> str:
    """Drop git's a/ or b/ prefix; /dev/null and plain paths stay as they are."""
    return name.removeprefix(prefix)


@dataclass
class FileChange:
    """One file's change as whole texts: what each hunk's old lines become (for tools that edit by search/replace)."""

    path: str
    created: bool = False
    deleted: bool = False
    hunks: list[tuple[str, str]] = field(default_factory=list)  # (old text, new text), lines joined with "\n"
    plain: bool = True  # False: a rename, mode change, binary or missing final newline (only `git apply` will do)


def file_changes(diff: str) -> list[FileChange]:
    """Per file of a diff: its hunks as (old, new) texts, and whether the file is created or deleted."""
    changes = []
    for section in _sections(diff)[1]:
        change = FileChange(path=section.path or "", created=section.old == _DEV_NULL, deleted=section.deleted
                            or section.new == _DEV_NULL)
        change.plain = bool(section.path) and section.renamed_to is None and (section.old in (None, _DEV_NULL)
                                                                              or section.old == section.path)
        old: list[str] | None = None
        new: list[str] = []
        for line in section.lines:
            body = line.rstrip("\n")
            if _HUNK_RE.match(body):
                if old is not None:
                    change.hunks.append(("\n".join(old), "\n".join(new)))
                old, new = [], []
            elif old is None:
                if body.startswith(("GIT binary patch", "Binary files", "old mode", "new mode")):
                    change.plain = False
            elif body.startswith("\\"):  # "\ No newline at end of file"
                change.plain = False
            elif body[:1] in (" ", ""):
                old.append(body[1:])
                new.append(body[1:])
            elif body[:1] == "-":
                old.append(body[1:])
            elif body[:1] == "+":
                new.append(body[1:])
        if old is not None:
            change.hunks.append(("\n".join(old), "\n".join(new)))
        changes.append(change)
    return changes


_HUNK_START_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,(\d+))? @@")


def fix_lines(diff: str) -> dict[str, set[int]]:
    """Per file (its old name), the old-side lines a diff removes or changes: the lines of the state before it.

    A run of added lines with no removed line next to it changes no old line; the old lines right before
    and after the insertion point stand for it (the code around it is what lacked the addition). A file
    the diff creates has no old lines and is left out, as is a file none of whose lines are touched.
    """
    touched: dict[str, set[int]] = {}
    for section in _sections(diff)[1]:
        path = section.old if section.old not in (None, _DEV_NULL) else section.path
        if section.old == _DEV_NULL or not path:
            continue
        lines: set[int] = set()
        for start, markers in _hunk_markers(section.lines):
            lines |= _old_lines_touched(start, markers)
        if lines:
            touched.setdefault(path, set()).update(lines)
    return touched


def _hunk_markers(lines: list[str]) -> list[tuple[int, list[str]]]:
    """(first old line, the body lines' markers) of each hunk of a section, bodies read by the header's counts."""
    hunks: list[tuple[int, list[str]]] = []
    old_left = new_left = 0
    for line in lines:
        if old_left > 0 or new_left > 0:
            taken, old_left, new_left = _hunk_line(line, old_left, new_left)
            if taken:
                hunks[-1][1].append(line[:1])
                continue
            old_left = new_left = 0
        hunk = _HUNK_START_RE.match(line)
        if hunk:
            old_left, new_left = int(hunk.group(2) or "1"), int(hunk.group(3) or "1")
            # why: a hunk with no old lines ("-5,0") names the line the insertion follows, not the next one
            start = int(hunk.group(1)) + (1 if old_left == 0 else 0)
            hunks.append((start, []))
    return hunks


def _old_lines_touched(start: int, markers: list[str]) -> set[int]:
    touched: set[int] = set()
    old = start
    run: list[str] = []  # the markers of the current run of -/+ lines
    run_start = start
    for marker in [*markers, " "]:  # why: the closing context line ends the last run
        if marker == "\\":
            continue
        if marker in ("-", "+"):
            if not run:
                run_start = old
            run.append(marker)
            if marker == "-":
                touched.add(old)
                old += 1
            continue
        if run and "-" not in run:
            touched.update(line for line in (run_start - 1, run_start) if line >= 1)
        run = []
        old += 1
    return touched
