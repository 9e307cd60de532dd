"""Problem statements: the symptom, never the answer (pure).

mutate-fix: an injected bug has no issue text, so the statement is written from what a user would see:
which tests fail and how. It must never name the mutated file, function, line or mutation,
or the task would be solved by reading the prompt; this module is therefore given only test
ids and their failure messages. Callers should pass the short failure message (a JUnit
``message``), not a full traceback, whose frames point at the mutated file and line.

issue-fix (mined from a fix commit): the commit message describes the change, not the problem, so the
statement reports what fails before the fix: the FAIL_TO_PASS tests, their messages and the tail of
their tracebacks, opened by the commit's subject when it reads as behaviour. Lines that name a file or
function the fix changes are left out (:func:`hidden_names` finds them in the gold patch).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence

from forager.tasks.patches import touched_files
from forager.text import one_line

_INTRO = "Some tests of this repository fail and they should pass."
_OUTRO = "Find the cause in the source code and fix it. Do not change the tests."
_NO_MESSAGE = "(no error message)"
_CUT_MARK = "…"
_INDENT = "  "


def mutate_fix_statement(
    failures: list[tuple[str, str]],
    *,
    total: int,
    shown: int = 3,
    message_chars: int = 800,
) -> str:
    """The problem statement for a mutate-fix task from its failing tests.

    `failures` holds (test id, error message) pairs in a stable order; the first `shown` are
    listed, each message trimmed to `message_chars` characters. `total` is how many tests
    fail in all, so the text can say how many more there are. Same input, same text.
    """
    _check(failures, total=total, shown=shown, message_chars=message_chars)
    listed = failures[:shown]
    lines = [_INTRO, "", f"Failing tests ({len(listed)} of {total}):"]
    for test_id, message in listed:
        lines.append(f"- {one_line(test_id)}")
        lines.extend(_INDENT + line if line else "" for line in _message_lines(message, message_chars))
    more = total - len(listed)
    if more:
        lines += ["", f"and {more} more."]
    lines += ["", _OUTRO]
    return "\n".join(lines)


def _check(failures: list[tuple[str, str]], *, total: int, shown: int, message_chars: int) -> None:
    if not failures:
        raise ValueError("mutate_fix_statement needs at least one failing test; a mutation no test catches is no task")
    if total < len(failures):
        raise ValueError(f"total={total} is less than the {len(failures)} failures given; pass the full failing count")
    if shown < 1:
        raise ValueError(f"shown={shown} must be 1 or more; the statement has to list a failing test")
    if message_chars < 1:
        raise ValueError(f"message_chars={message_chars} must be 1 or more")
    for index, (test_id, _message) in enumerate(failures):
        if not test_id.strip():
            raise ValueError(f"failures[{index}] has an empty test id; pass the pytest node id of each failing test")


def _message_lines(message: str, limit: int) -> list[str]:
    """The message as tidy lines: no trailing spaces or blank edges, cut to `limit` characters."""
    text = "\n".join(line.rstrip() for line in message.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    text = text.strip("\n")
    if not text.strip():
        return [_NO_MESSAGE]
    if len(text) > limit:
        text = text[: limit - len(_CUT_MARK)].rstrip() + _CUT_MARK
    return text.split("\n")


# -- issue-fix statements (mined from a repository's own fix commits) ---------------------------------

_ISSUE_INTRO = "Some tests fail and they should pass."
_ISSUE_TESTS = "Failing tests ({listed} of {total}; they may not all be in the repository yet):"
_ISSUE_OUTRO = "Find the cause in the source code and fix it, so that these tests pass. Do not change the tests."
_TRACEBACK_HEADER = "Traceback (last lines):"
# pytest's long traceback style separates its entries with a line of "_ _ _ ..."
_ENTRY_SEPARATOR = re.compile(r"^\s*_( _)+\s*$")
_DEF_RE = re.compile(r"^\s*(?:async\s+)?def\s+([A-Za-z_]\w*)")
_HUNK_HEADER_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")
_PR_SUFFIX = re.compile(r"\s*\((?:[\w.-]+/[\w.-]+)?#\d+\)\s*$")
_ISSUE_REF = r"(?:[\w.-]+/[\w.-]+)?#\d+"
_BARE_REFS = re.compile(
    rf"^(?:(?:fix(?:es|ed)?|close[sd]?|resolve[sd]?|see|refs?|issue|pr|gh)\s*:?\s*)?{_ISSUE_REF}"
    rf"(?:\s*(?:,|and|&)?\s*{_ISSUE_REF})*\s*[.!]?$",
    re.IGNORECASE,
)
_RELEASE = re.compile(
    r"^(?:(?:release|releasing|released|prepare(?:d)?(?: for)?(?: the)?(?: release)?|bump(?:ed)?(?: the)?(?: version)?(?: to)?"
    r"|version|tag(?:ged)?|cut)\b[\s:]*v?\d+(?:\.\d+)+\S*"
    r"|v?\d+(?:\.\d+)+\S*(?:\s+release[d]?)?"
    r"|bump(?:ed)?\s+(?:the\s+)?version\b.*"
    r"|bump\s+\S+\s+from\s+\S+\s+to\s+\S+.*"
    r"|(?:update|updated)\s+(?:the\s+)?(?:changelog|changes|history|release notes)\b.*"
    r"|(?:start|open)\s+(?:version\s+)?v?\d+(?:\.\d+)+\S*(?:\s+development)?)\s*[.!]?$",
    re.IGNORECASE,
)
_CHANGE_ONLY = re.compile(
    r"^(?:merge\b|revert\b|\[pre-commit\.ci\]|pre-commit\b|co-authored-by\b|wip\b|fixup!|squash!)", re.IGNORECASE,
)


def hidden_names(gold_patch: str, sources: Mapping[str, str] | None = None) -> tuple[list[str], list[str]]:
    """(files, functions) a gold patch changes, which an issue-fix statement must never name (pure).

    Files are every path the patch touches; functions are the ``def`` lines its hunks add, remove or
    show, the function git names in a hunk header, and, given `sources` (path -> text of the file before
    the fix), every function that holds a removed line or gets an added line in its body.
    """
    files = [path for path in touched_files(gold_patch) if path and path != "/dev/null"]
    sources = sources or {}
    names: dict[str, None] = {}
    points: dict[str, list[tuple[int, int]]] = {}  # path -> (old line, indent of an added line or -1)
    path = ""
    old_left = new_left = old_line = 0
    added_def: int | None = None
    for line in gold_patch.split("\n"):
        if old_left > 0 or new_left > 0:  # inside a hunk: its header's counts say where it ends
            kind, body = line[:1], line[1:]
            if kind == "\\":
                continue
            if kind in "-+" and (match := _DEF_RE.match(body)):
                names.setdefault(match.group(1), None)  # a function the fix adds, removes or redefines
            if kind != "+":
                added_def = None  # the indent of a def among the lines just added: its body is new, not a change
            if kind == "-":
                points.setdefault(path, []).append((old_line, -1))
                old_line, old_left = old_line + 1, old_left - 1
            elif kind == "+":
                indent = len(body) - len(body.lstrip())
                if body.strip() and (added_def is None or indent <= added_def):
                    points.setdefault(path, []).append((old_line - 1, indent))
                    added_def = indent if _DEF_RE.match(body) else None
                new_left -= 1
            else:
                if path not in sources and (match := _DEF_RE.match(body)):
                    names.setdefault(match.group(1), None)  # without the source, a def shown is a guess
                old_line, old_left, new_left = old_line + 1, old_left - 1, new_left - 1
            continue
        if line.startswith("+++ "):
            path = line[4:].split("\t")[0].strip().removeprefix("b/")
        elif header := _HUNK_HEADER_RE.match(line):
            old_line = int(header.group(1))
            old_left = int(header.group(2)) if header.group(2) is not None else 1
            new_left = int(header.group(4)) if header.group(4) is not None else 1
            if old_left == 0:
                old_line += 1  # "-N,0": the insertion comes after line N
            if path not in sources and (match := re.search(r"\bdef\s+([A-Za-z_]\w*)", header.group(5))):
                names.setdefault(match.group(1), None)
    for where, found in points.items():
        if where in sources:
            for name in _enclosing_functions(sources[where], found):
                names.setdefault(name, None)
    return files, list(names)


def _enclosing_functions(source: str, points: list[tuple[int, int]]) -> list[str]:
    """Functions (at any depth) that hold a removed line (line, -1), or an added line indented deeper than
    their ``def`` right after `line` (line, indent)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    found: dict[str, None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            end = getattr(node, "end_lineno", None) or node.lineno
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            for line, indent in points:
                if start <= line <= end and (indent < 0 or indent > node.col_offset):
                    found.setdefault(node.name, None)
                    break
    return list(found)


def _hiding_patterns(files: Sequence[str], functions: Sequence[str]) -> list[re.Pattern[str]]:
    """Patterns that find a changed file (by any trailing part of its path, or as a dotted module) or function."""
    patterns: list[re.Pattern[str]] = []
    for path in files:
        parts = [part for part in path.split("/") if part]
        if not parts:
            continue
        for start in range(len(parts)):
            tail = parts[start:]
            if tail == ["__init__.py"]:
                continue  # every package has one: a traceback's bare "__init__.py" names nothing
            patterns.append(re.compile(rf"(?<![\w.-]){re.escape('/'.join(tail))}(?!\w)"))
            if tail[-1].endswith(".py") and (len(tail) > 1 or tail[-1] != "__init__.py"):
                stem = [*tail[:-1], tail[-1][:-3]] if tail[-1] != "__init__.py" else tail[:-1]
                if len(stem) > 1:  # a dotted module; a bare stem ("wait") is an ordinary word...
                    patterns.append(re.compile(rf"(?<![\w.]){re.escape('.'.join(stem))}(?![\w])"))
                elif stem:  # ...but not when it qualifies a name ("wait.wait_fixed")
                    patterns.append(re.compile(rf"(?<![\w./-]){re.escape(stem[0])}\.(?=[A-Za-z_])"))
    for name in functions:
        patterns.append(re.compile(rf"(?<!\w){re.escape(name)}(?!\w)"))
    return patterns


def named_in(text: str, files: Sequence[str], functions: Sequence[str]) -> list[str]:
    """The changed files, modules and functions that `text` names, as written there, each once (pure)."""
    spans = [match.span() for pattern in _hiding_patterns(list(files), list(functions))
             for match in pattern.finditer(text)]
    kept: list[tuple[int, int]] = []  # the longest match wins where several overlap ("src/a/b.py" over "b.py")
    for start, end in sorted(spans, key=lambda span: span[0] - span[1]):
        if all(end <= other_start or start >= other_end for other_start, other_end in kept):
            kept.append((start, end))
    return list(dict.fromkeys(text[start:end].rstrip(".") for start, end in sorted(kept)))


def _names_any(text: str, patterns: list[re.Pattern[str]]) -> bool:
    return any(pattern.search(text) for pattern in patterns)


def _redacted(text: str, patterns: list[re.Pattern[str]]) -> str:
    """`text` with every changed file, module and function it names replaced by "…"."""
    for pattern in patterns:
        text = pattern.sub(_CUT_MARK, text)
    return text


def commit_subject(message: str, files: Sequence[str] = (), functions: Sequence[str] = ()) -> str | None:
    """The commit's subject when it reads as behaviour, else None (pure heuristic).

    Left out: merges and reverts, co-author trailers, bare issue references ("#123", "fixes #12"),
    release and version bumps, changelog updates, and any subject that names a file or function the
    fix changes (it would point at the answer). A trailing pull-request reference "(#123)" is dropped.
    """
    lines = [line.strip() for line in message.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines:
        return None
    subject = _PR_SUFFIX.sub("", lines[0]).strip()
    if not subject or _CHANGE_ONLY.match(subject) or _BARE_REFS.match(subject) or _RELEASE.match(subject):
        return None
    if not re.search(r"[A-Za-z]{2}", subject):
        return None
    if _names_any(subject, _hiding_patterns(list(files), list(functions))):
        return None
    return subject


def traceback_tail(text: str, files: Sequence[str] = (), functions: Sequence[str] = (), *, lines: int = 12) -> list[str]:
    """The last `lines` lines of a pytest traceback, never naming a changed file or function (pure).

    Entries (pytest's "_ _ _" separated frames) located in a changed file are dropped but for their "E" lines
    (the exception); other lines that name a changed file, module or function are dropped, and "E" lines
    that do have those names replaced by "…".
    """
    patterns = _hiding_patterns(list(files), list(functions))
    entries: list[list[str]] = [[]]
    for line in _tidy(text).split("\n"):
        if _ENTRY_SEPARATOR.match(line):
            entries.append([])
        else:
            entries[-1].append(line)
    kept: list[str] = []
    for entry in entries:
        located_in_change = any(_names_any(line, patterns) for line in entry if _is_location(line))
        for line in entry:
            if _is_exception(line):
                kept.append(_redacted(line, patterns))
            elif not located_in_change and not _names_any(line, patterns):
                kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    tail = kept[-lines:] if lines > 0 else []
    while tail and not tail[0].strip():
        tail.pop(0)
    return tail


def _is_exception(line: str) -> bool:
    """pytest's "E   ..." lines: the exception and the assertion's explanation."""
    return line.startswith("E ") or line == "E"


def _is_location(line: str) -> bool:
    """pytest's "path/to/file.py:123: ..." line that ends a traceback entry."""
    return bool(re.match(r"^\S[^:]*\.py:\d+:", line))


def _tidy(text: str) -> str:
    text = "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return text.strip("\n")


def issue_statement(
    failures: list[tuple[str, str, str]],
    *,
    total: int,
    subject: str | None = None,
    files: Sequence[str] = (),
    functions: Sequence[str] = (),
    shown: int = 3,
    message_chars: int = 600,
    traceback_lines: int = 12,
) -> str:
    """The problem statement of an issue-fix task mined from a fix commit: what fails before the fix (pure).

    `failures` holds (test id, failure message, traceback text) of FAIL_TO_PASS tests as the run without the
    fix saw them; the first `shown` are listed with their message and the traceback's tail (tests listed one
    after the other that fail the same way share one). `subject` (from :func:`commit_subject`) opens the text
    when given. A changed file, module or function (`files`, `functions`, from :func:`hidden_names`) is never
    named: it is replaced by "…" in messages and exception lines, and other traceback lines naming it are
    left out. Test ids are shown as they are. Same input, same text.
    """
    _check(
        [(test_id, message) for test_id, message, _tb in failures],
        total=total, shown=shown, message_chars=message_chars,
    )
    patterns = _hiding_patterns(list(files), list(functions))
    listed = failures[:shown]
    lines: list[str] = []
    if subject:
        lines += [one_line(subject), ""]
    lines += [_ISSUE_INTRO, "", _ISSUE_TESTS.format(listed=len(listed), total=total)]
    groups: list[tuple[list[str], list[str]]] = []  # tests listed together when they fail the same way
    for test_id, message, traceback in listed:
        block: list[str] = []
        shown_message = _redacted(_tidy(message), patterns)
        tail = traceback_tail(traceback, list(files), list(functions), lines=traceback_lines)
        if shown_message.strip() or not tail:
            block.extend(_INDENT + line if line else "" for line in _message_lines(shown_message, message_chars))
        if tail:
            block.append(_INDENT + _TRACEBACK_HEADER)
            block.extend(_INDENT * 2 + line if line else "" for line in tail)
        if groups and groups[-1][1] == block:
            groups[-1][0].append(test_id)
        else:
            groups.append(([test_id], block))
    for test_ids, block in groups:
        lines.extend(f"- {one_line(test_id)}" for test_id in test_ids)
        lines.extend(block)
    more = total - len(listed)
    if more:
        lines += ["", f"and {more} more."]
    lines += ["", _ISSUE_OUTRO]
    return "\n".join(lines)
