"""Synthetic bugs for mutate-fix tasks: source text in, candidate mutations out (pure, no I/O).

A mutate-fix task takes a function whose tests pass, injects a bug and asks an agent to
repair it. The five mutation families follow Meta's CWM ForagerAgent:

- functions:  replace a function body with ``pass``, or drop one of its statements
- arguments:  drop a parameter from a definition, or swap two positional arguments of a call
- variables:  swap two local variable names throughout one function
- statements: drop a module-level import, or a ``return <value>`` inside a function
- operators:  replace a binary, augmented, unary, comparison or boolean operator

Every mutation is found on the AST but written by splicing text into the original source at
the node positions, never with ``ast.unparse``: the bug patch must touch only the lines that
changed, or the diff would give the bug away (and the agent would see a reformatted file).
"""

from __future__ import annotations

import ast
import bisect
import difflib
import itertools
import random
import re
import sys
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, field_validator

FAMILIES: tuple[str, ...] = ("functions", "arguments", "variables", "statements", "operators")
MODULE_SYMBOL = "<module>"

_FUNCTION_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef)
_SCOPE_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_COMPREHENSION_TYPES = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
# why: before 3.12 the positions of nodes inside f-strings come from re-parsing the string
# piece and are wrong in several cases (nested quotes, multi-line); splicing there would
# corrupt the file, so those nodes are left alone.
_SKIP_FSTRINGS = sys.version_info < (3, 12)
# why: an annotation never runs (with postponed evaluation) or only documents a type, so a
# mutant there (int | None -> int & None) is almost always equivalent to the original.
_ANNOTATION_FIELDS = frozenset({"annotation", "returns"})
# Between two operands only whitespace, parentheses, line continuations and comments may
# surround the operator token.
_TRIVIA = frozenset(b" \t\f\r\n\\()")
_NEWLINE_RE = re.compile(rb"\r\n|\r|\n")
_SELF_NAMES = frozenset({"self", "cls"})
# why: "_" marks a value nobody reads; swapping it with a real name is usually equivalent
_THROWAWAY_NAMES = frozenset({"_"})
# why: swapping the arguments of a commutative call produces an equivalent mutant.
_COMMUTATIVE_CALLS = frozenset({"max", "min"})

_BINOP_SYMBOLS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
}
# One or two plausible slips per operator rather than every alternative: the candidate list
# stays proportional to the code, and each mutant still changes behaviour.
_BINOP_SWAPS: dict[str, tuple[str, ...]] = {
    "+": ("-",),
    "-": ("+",),
    "*": ("/",),
    "/": ("*", "//"),
    "//": ("/",),
    "%": ("//",),
    "**": ("*",),
    "&": ("|",),
    "|": ("&",),
    "^": ("&",),
    "<<": (">>",),
    ">>": ("<<",),
}
_CMPOP_SYMBOLS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}
# An off-by-one boundary and the negation for each ordering; the exact negation otherwise.
_CMPOP_SWAPS: dict[str, tuple[str, ...]] = {
    "==": ("!=",),
    "!=": ("==",),
    "<": ("<=", ">="),
    "<=": ("<", ">"),
    ">": (">=", "<="),
    ">=": (">", "<"),
    "is": ("is not",),
    "is not": ("is",),
    "in": ("not in",),
    "not in": ("in",),
}
_UNARY_SYMBOLS: dict[type[ast.unaryop], str] = {ast.USub: "-", ast.UAdd: "+", ast.Invert: "~", ast.Not: "not"}
# "not" has no other boolean unary operator to become, so its mutant drops it ("" below).
_UNARY_SWAPS: dict[str, str] = {"-": "+", "+": "-", "~": "-", "not": ""}
_BOOLOP_SWAPS: dict[type[ast.boolop], tuple[str, str]] = {ast.And: ("and", "or"), ast.Or: ("or", "and")}


class Mutation(BaseModel):
    """One injected bug: where it is, what it did, and both whole-file texts to diff."""

    model_config = ConfigDict(frozen=True)

    family: str
    path: str
    symbol: str
    line: int
    description: str
    original: str
    mutated: str

    @field_validator("family")
    @classmethod
    def _known_family(cls, family: str) -> str:
        if family not in FAMILIES:
            raise ValueError(f"{family!r} is not one of {', '.join(FAMILIES)}")
        return family

    @field_validator("path")
    @classmethod
    def _repo_relative(cls, path: str) -> str:
        # why: the path lands verbatim in "--- a/PATH"; an absolute or empty one makes a patch
        # that git apply rejects or writes outside the repository
        if not path or path.startswith("/") or "\n" in path:
            raise ValueError(f"{path!r} is not a repository-relative file path")
        return path

    @field_validator("line")
    @classmethod
    def _one_based(cls, line: int) -> int:
        if line < 1:
            raise ValueError("line numbers start at 1")
        return line

    def bug_patch(self) -> str:
        """Unified diff that injects the bug (original -> mutated), for git apply."""
        return _unified_diff(self.path, self.original, self.mutated)

    def gold_patch(self) -> str:
        """Unified diff that fixes the bug (mutated -> original): the reference solution."""
        return _unified_diff(self.path, self.mutated, self.original)


def functions_in(source: str) -> list[tuple[str, int, int]]:
    """(qualified name, def line, last line) of every function and method, in source order.

    Names follow Python's __qualname__ (``outer.<locals>.inner``, ``Class.method``) so that they
    match what a tracer or coverage context reports at run time. The first line is the ``def``
    line, not a decorator: decorators run in the enclosing scope.
    """
    tree = _parse(source)
    if tree is None:
        return []
    return [(fn.qualname, fn.node.lineno, fn.node.end_lineno or fn.node.lineno) for fn in _Index(tree).functions]


def enumerate_mutations(
    path: str,
    source: str,
    *,
    symbols: set[str] | None = None,
    families: tuple[str, ...] = FAMILIES,
) -> list[Mutation]:
    """Every candidate mutation of one file, ordered by line, then family, then discovery order.

    ``symbols`` keeps only mutations inside those qualified function names; module-level import
    removals count as ``<module>``. A source that does not parse yields no candidates, and so
    does every candidate whose mutated text does not parse (checked on the lines of the function
    or statement it touches) or equals the original.
    """
    _check_families(families)
    tree = _parse(source)
    if tree is None:
        return []
    src = _Source(source)
    index = _Index(tree)
    generators = {
        "functions": _function_drafts,
        "arguments": _argument_drafts,
        "variables": _variable_drafts,
        "statements": _statement_drafts,
        "operators": _operator_drafts,
    }
    ranked: list[tuple[int, int, int, Mutation]] = []
    drafts = itertools.chain.from_iterable(
        generators[family](src, index, tree, path) for family in FAMILIES if family in families
    )
    for order, draft in enumerate(drafts):
        if symbols is not None and draft.symbol not in symbols:
            continue
        if not src.region_parses(draft.scope, draft.edits):
            continue
        mutated = src.apply(draft.edits)
        if mutated is None or mutated == source:
            continue
        mutation = Mutation(
            family=draft.family,
            path=path,
            symbol=draft.symbol,
            line=draft.line,
            description=draft.description,
            original=source,
            mutated=mutated,
        )
        ranked.append((draft.line, FAMILIES.index(draft.family), order, mutation))
    ranked.sort(key=lambda item: item[:3])
    return [item[3] for item in ranked]


def sample_mutations(
    candidates: list[Mutation], count: int, seed: int, families: tuple[str, ...] = FAMILIES
) -> list[Mutation]:
    """Up to ``count`` distinct mutations, drawn round-robin over ``families``.

    Reproducible for a seed: each family's candidates are shuffled with ``random.Random(seed)``
    and the families take turns, so no family dominates because it has more candidates. Two
    candidates with the same bug patch (reached by different families) count once.
    """
    _check_families(families)
    rng = random.Random(seed)
    order = list(dict.fromkeys(families))
    # why: with fewer picks than families a fixed order would always favour the first ones
    rng.shuffle(order)
    pools: dict[str, list[Mutation]] = {}
    for family in order:
        pool = [candidate for candidate in candidates if candidate.family == family]
        rng.shuffle(pool)
        pool.reverse()  # pop() from the end takes them in shuffled order
        pools[family] = pool
    chosen: list[Mutation] = []
    seen: set[str] = set()
    while len(chosen) < count and any(pools.values()):
        for family in order:
            pool = pools[family]
            while pool:
                candidate = pool.pop()
                patch = candidate.bug_patch()
                if patch in seen:
                    continue
                seen.add(patch)
                chosen.append(candidate)
                break
            if len(chosen) >= count:
                break
    return chosen


# ---------------------------------------------------------------------------------------------
# Source text and splicing


Edit = tuple[int, int, str]  # byte range [start, end) of the original UTF-8 source -> new text


@dataclass
class _Draft:
    family: str
    symbol: str
    line: int
    description: str
    edits: list[Edit]
    scope: ast.AST  # the function (or module-level statement) whose lines hold every edit


class _Source:
    """The original text as UTF-8 bytes, addressed the way ast positions are.

    why: col_offset and end_col_offset count UTF-8 bytes, not characters, so a line holding
    "é" before the node would be cut in the wrong place if we sliced the str.
    """

    def __init__(self, text: str):
        self.text = text
        self.data = text.encode("utf-8")
        self.line_starts = [0] + [match.end() for match in _NEWLINE_RE.finditer(self.data)]

    def offset(self, lineno: int, col: int) -> int:
        return self.line_starts[lineno - 1] + col

    def start(self, node: ast.AST) -> int:
        return self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]

    def end(self, node: ast.AST) -> int:
        return self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]

    def segment(self, start: int, end: int) -> str:
        return self.data[start:end].decode("utf-8")

    def node_text(self, node: ast.AST) -> str:
        return self.segment(self.start(node), self.end(node))

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.line_starts, offset)

    def line_span(self, lineno: int) -> tuple[int, int]:
        """Byte range of a whole line, its line break included."""
        start = self.line_starts[lineno - 1]
        end = self.line_starts[lineno] if lineno < len(self.line_starts) else len(self.data)
        return start, end

    def apply(self, edits: list[Edit]) -> str | None:
        """The source with every edit spliced in; None when edits overlap or cut a character."""
        out: list[bytes] = []
        cursor = 0
        for start, end, text in sorted(edits):
            if start < cursor:
                return None
            out.append(self.data[cursor:start])
            out.append(text.encode("utf-8"))
            cursor = end
        out.append(self.data[cursor:])
        try:
            return b"".join(out).decode("utf-8")
        except UnicodeDecodeError:
            return None

    def region_parses(self, scope: ast.AST, edits: list[Edit]) -> bool:
        """Whether the lines of ``scope`` still parse once the edits are spliced in.

        why: re-parsing the whole file for every candidate is quadratic (minutes for a
        2,500-line module). Every edit stays inside the lines of one function or one
        module-level statement, and a statement's syntax does not depend on its neighbours,
        so parsing those lines alone decides the same question.
        """
        start = self.line_starts[scope.lineno - 1]  # type: ignore[attr-defined]
        end = self.line_span(scope.end_lineno)[1]  # type: ignore[attr-defined]
        if any(a < start or b > end for a, b, _ in edits):
            return False
        region = _Source(self.segment(start, end))
        text = region.apply([(a - start, b - start, new) for a, b, new in edits])
        if text is None:
            return False
        if text[:1].isspace():
            # an indented method or nested function: give it a block to sit in; lines
            # indented less (inside strings) are no concern to the tokenizer
            text = "if 1:\n" + text
        return _parse(text) is not None

    def operator_token(self, start: int, end: int) -> tuple[int, int, str] | None:
        """The operator between two operands: its byte range and its words joined by one space.

        Parentheses, whitespace, continuations and comments around it are skipped, so
        ``(a) +  b`` gives "+" and ``a is  not b`` gives "is not".
        """
        spans: list[tuple[int, int]] = []
        i = start
        while i < end:
            byte = self.data[i]
            if byte == ord("#"):
                newline = _NEWLINE_RE.search(self.data, i, end)
                i = newline.start() if newline else end
            elif byte in _TRIVIA:
                i += 1
            else:
                j = i
                while j < end and self.data[j] not in _TRIVIA and self.data[j] != ord("#"):
                    j += 1
                spans.append((i, j))
                i = j
        if not spans:
            return None
        words = " ".join(self.segment(a, b) for a, b in spans)
        return spans[0][0], spans[-1][1], words

    def padded(self, start: int, end: int, text: str) -> str:
        """``text`` with a space where a word operator would otherwise touch its neighbours (a==b -> a is b)."""
        if text[:1].isalpha() and start > 0 and not chr(self.data[start - 1]).isspace():
            text = " " + text
        if text[-1:].isalpha() and end < len(self.data) and not chr(self.data[end]).isspace():
            text = text + " "
        return text

    def skip_back(self, offset: int, chars: bytes) -> int:
        while offset > 0 and self.data[offset - 1] in chars:
            offset -= 1
        return offset

    def skip_forward(self, offset: int, chars: bytes) -> int:
        while offset < len(self.data) and self.data[offset] in chars:
            offset += 1
        return offset

    def owns_lines(self, start: int, end: int) -> bool:
        """Whether [start, end) is alone on its lines: only indentation before, only a comment after."""
        line_start = self.line_starts[self.line_of(start) - 1]
        before = self.data[line_start:start]
        _, line_end = self.line_span(self.line_of(max(end - 1, start)))
        after = self.data[end:line_end].strip()
        return not before.strip() and (not after or after.startswith(b"#"))

    def whole_lines(self, start: int, end: int) -> tuple[int, int]:
        first = self.line_of(start)
        last = self.line_of(max(end - 1, start))
        return self.line_span(first)[0], self.line_span(last)[1]


def _remove_statement(src: _Source, stmt: ast.stmt, block: list[ast.stmt]) -> list[Edit] | None:
    """Edits that delete one statement from its block, keeping the block valid.

    The last statement of a block becomes ``pass``; a statement alone on its lines takes them
    with it; one joined by ``;`` takes the separator. Anything else is not attempted.
    """
    start, end = src.start(stmt), src.end(stmt)
    if len(block) == 1:
        return [(start, end, "pass")]
    if src.owns_lines(start, end):
        line_start, line_end = src.whole_lines(start, end)
        return [(line_start, line_end, "")]
    after = src.skip_forward(end, b" \t")
    if after < len(src.data) and src.data[after] == ord(";"):
        return [(start, src.skip_forward(after + 1, b" \t"), "")]
    before = src.skip_back(start, b" \t")
    if before > 0 and src.data[before - 1] == ord(";"):
        return [(before - 1, end, "")]
    return None


def _snippet(text: str, limit: int = 40) -> str:
    """First line of a piece of code, shortened for a one-line description."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Where things are: functions, and the function each node runs in


@dataclass(frozen=True)
class _Function:
    qualname: str
    node: ast.FunctionDef | ast.AsyncFunctionDef
    is_method: bool


@dataclass
class _Index:
    """One walk over the tree: every function with its qualified name, and every node that
    runs inside a function body paired with that function's name (innermost wins).

    Decorators and default values belong to the enclosing scope (they run there);
    annotations are skipped altogether.
    """

    tree: ast.Module
    functions: list[_Function] = field(default_factory=list)
    scoped: list[tuple[ast.AST, _Function]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for stmt in self.tree.body:
            self._visit(stmt, "", None, False)

    def _visit(self, node: ast.AST, prefix: str, owner: _Function | None, in_class: bool) -> None:
        if isinstance(node, _FUNCTION_TYPES):
            function = _Function(prefix + node.name, node, in_class)
            self.functions.append(function)
            outer = [*node.decorator_list, *node.args.defaults, *(d for d in node.args.kw_defaults if d)]
            for child in outer:
                self._visit(child, prefix, owner, False)
            for stmt in node.body:
                self._visit(stmt, function.qualname + ".<locals>.", function, False)
            return
        if isinstance(node, ast.ClassDef):
            for child in [*node.decorator_list, *node.bases, *node.keywords]:
                self._visit(child, prefix, owner, False)
            for stmt in node.body:
                self._visit(stmt, prefix + node.name + ".", owner, True)
            return
        if _SKIP_FSTRINGS and isinstance(node, ast.JoinedStr):
            return
        if owner is not None:
            self.scoped.append((node, owner))
        for child in _children(node):
            self._visit(child, prefix, owner, in_class)


def _children(node: ast.AST) -> Iterator[ast.AST]:
    """Child nodes in field order, annotations left out."""
    for name, value in ast.iter_fields(node):
        if name in _ANNOTATION_FIELDS:
            continue
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, ast.AST):
                yield child


def _own_nodes(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[tuple[ast.AST, bool]]:
    """Nodes of a function's own body, nested functions, classes and lambdas excluded,
    each with whether it sits inside a comprehension (whose targets are not function locals)."""

    def walk(node: ast.AST, in_comprehension: bool) -> Iterator[tuple[ast.AST, bool]]:
        if isinstance(node, _SCOPE_TYPES) or (_SKIP_FSTRINGS and isinstance(node, ast.JoinedStr)):
            return
        yield node, in_comprehension
        inner = in_comprehension or isinstance(node, _COMPREHENSION_TYPES)
        for child in _children(node):
            yield from walk(child, inner)

    for stmt in fn.body:
        yield from walk(stmt, False)


def _own_blocks(body: list[ast.stmt]) -> Iterator[list[ast.stmt]]:
    """Every statement list of a function's own body (if/for/while/with/try/match bodies)."""
    yield body
    for stmt in body:
        if isinstance(stmt, (*_FUNCTION_TYPES, ast.ClassDef)):
            continue
        for name in ("body", "orelse", "finalbody"):
            block = getattr(stmt, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                yield from _own_blocks(block)
        for handler in getattr(stmt, "handlers", ()):
            yield from _own_blocks(handler.body)
        for case in getattr(stmt, "cases", ()):
            yield from _own_blocks(case.body)


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _is_noop(stmt: ast.stmt) -> bool:
    """pass, ``...`` or a bare string: dropping one changes nothing."""
    return isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))


def _body_without_docstring(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.stmt]:
    return fn.body[1:] if _is_docstring(fn.body[0]) else list(fn.body)


# ---------------------------------------------------------------------------------------------
# The five families. Each yields drafts; enumerate_mutations splices and validates them.


def _function_drafts(src: _Source, index: _Index, tree: ast.Module, path: str) -> Iterator[_Draft]:
    for fn in index.functions:
        kept = _body_without_docstring(fn.node)
        if not kept or all(_is_noop(stmt) for stmt in kept):
            continue
        # The docstring stays: a stub with its documentation reads like unfinished work,
        # not like a signature that gives the answer away.
        yield _Draft(
            "functions",
            fn.qualname,
            kept[0].lineno,
            f"replaced the body of {fn.qualname} with pass",
            [(src.start(kept[0]), src.end(kept[-1]), "pass")],
            fn.node,
        )
        if len(kept) < 2:
            continue
        for stmt in kept:
            # returns are the statements family's; dropping a no-op is no bug
            if _is_noop(stmt) or isinstance(stmt, ast.Return):
                continue
            edits = _remove_statement(src, stmt, fn.node.body)
            if edits:
                description = f"removed `{_snippet(src.node_text(stmt))}` from {fn.qualname}"
                yield _Draft("functions", fn.qualname, stmt.lineno, description, edits, fn.node)


def _argument_drafts(src: _Source, index: _Index, tree: ast.Module, path: str) -> Iterator[_Draft]:
    for fn in index.functions:
        yield from _parameter_drops(src, fn)
    for node, owner in index.scoped:
        if isinstance(node, ast.Call):
            yield from _call_swaps(src, node, owner)


def _parameter_drops(src: _Source, fn: _Function) -> Iterator[_Draft]:
    arguments = fn.node.args
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(arguments.defaults))
    defaults += arguments.defaults
    params: list[tuple[ast.arg, ast.expr | None, bool]] = [(a, d, False) for a, d in zip(positional, defaults)]
    if arguments.vararg:
        params.append((arguments.vararg, None, True))
    params += [(a, d, False) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults)]
    if arguments.kwarg:
        params.append((arguments.kwarg, None, True))
    is_static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.node.decorator_list)
    # why: the receiver of a method is bound by Python, not by the caller; dropping it is
    # not a plausible slip, whatever it is called
    receiver = positional[0] if fn.is_method and not is_static and positional else None
    for arg, default, starred in params:
        if arg is receiver or arg.arg in _SELF_NAMES:
            continue
        start = src.start(arg)
        if starred:
            start = src.skip_back(start, b"*")
        end = src.end(default) if default is not None else src.end(arg)
        edits = _remove_list_item(src, start, end)
        if edits:
            description = f"removed parameter {arg.arg} from {fn.qualname}"
            yield _Draft("arguments", fn.qualname, arg.lineno, description, edits, fn.node)


def _remove_list_item(src: _Source, start: int, end: int) -> list[Edit] | None:
    """Edits that delete one comma-separated item (a parameter) with the comma that goes with it."""
    after = src.skip_forward(end, b" \t\r\n\\")
    if after < len(src.data) and src.data[after] == ord(","):
        comma_end = after + 1
        if src.owns_lines(start, comma_end):
            line_start, line_end = src.whole_lines(start, comma_end)
            return [(line_start, line_end, "")]
        return [(start, src.skip_forward(comma_end, b" \t"), "")]
    before = src.skip_back(start, b" \t\r\n\\")
    if before > 0 and src.data[before - 1] == ord(","):
        return [(before - 1, end, "")]
    if before > 0 and src.data[before - 1] == ord("("):
        return [(start, end, "")]
    return None


def _call_swaps(src: _Source, call: ast.Call, owner: _Function) -> Iterator[_Draft]:
    if isinstance(call.func, ast.Name) and call.func.id in _COMMUTATIVE_CALLS:
        return
    args = call.args
    callee = _snippet(src.node_text(call.func))
    for i in range(len(args) - 1):
        first, second = args[i], args[i + 1]
        first_text, second_text = src.node_text(first), src.node_text(second)
        if first_text == second_text:
            continue
        yield _Draft(
            "arguments",
            owner.qualname,
            first.lineno,
            f"swapped arguments {i + 1} and {i + 2} of {callee}() in {owner.qualname}",
            [(src.start(first), src.end(first), second_text), (src.start(second), src.end(second), first_text)],
            owner.node,
        )


def _variable_drafts(src: _Source, index: _Index, tree: ast.Module, path: str) -> Iterator[_Draft]:
    for fn in index.functions:
        arguments = fn.node.args
        every_arg = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
        params = {a.arg for a in every_arg if a is not None}
        declared: set[str] = set()
        stored: set[str] = set()
        occurrences: dict[str, list[ast.Name]] = {}
        names_by_line: dict[int, set[str]] = {}
        spliceable = True
        for node, in_comprehension in _own_nodes(fn.node):
            if isinstance(node, (ast.Global, ast.Nonlocal)):
                declared.update(node.names)
            elif isinstance(node, ast.Name):
                # why: identifiers are NFKC-normalised, so node.id can differ from the text
                if src.node_text(node) != node.id:
                    spliceable = False
                occurrences.setdefault(node.id, []).append(node)
                names_by_line.setdefault(node.lineno, set()).add(node.id)
                if isinstance(node.ctx, ast.Store) and not in_comprehension:
                    stored.add(node.id)
        if not spliceable:
            continue
        # Only names both bound in this function and used in its body: globals, builtins
        # and attributes never take part (attributes are not Name nodes at all).
        local_names = (params | stored) - declared - _SELF_NAMES - _THROWAWAY_NAMES
        # why: every pair of locals would grow with the square of a function's size; a swap
        # is a plausible slip only between names that meet on some line, so only those pair up
        pairs: set[tuple[str, str]] = set()
        for names in names_by_line.values():
            pairs.update(itertools.combinations(sorted(names & local_names), 2))
        for first, second in sorted(pairs):
            names = occurrences[first] + occurrences[second]
            edits = [(src.start(n), src.end(n), second if n.id == first else first) for n in names]
            yield _Draft(
                "variables",
                fn.qualname,
                min(n.lineno for n in names),
                f"swapped variables {first} and {second} in {fn.qualname}",
                edits,
                fn.node,
            )


def _statement_drafts(src: _Source, index: _Index, tree: ast.Module, path: str) -> Iterator[_Draft]:
    yield from _import_removals(src, tree, path)
    for fn in index.functions:
        kept = _body_without_docstring(fn.node)
        for block in _own_blocks(fn.node.body):
            for stmt in block:
                if not isinstance(stmt, ast.Return) or stmt.value is None:
                    continue
                if isinstance(stmt.value, ast.Constant) and stmt.value.value is None:
                    continue  # the function returns None either way
                if kept == [stmt]:
                    continue  # the same patch as replacing the body with pass
                edits = _remove_statement(src, stmt, block)
                if edits:
                    description = f"removed `{_snippet(src.node_text(stmt))}` from {fn.qualname}"
                    yield _Draft("statements", fn.qualname, stmt.lineno, description, edits, fn.node)


def _import_removals(src: _Source, tree: ast.Module, path: str) -> Iterator[_Draft]:
    postponed = any(
        isinstance(stmt, ast.ImportFrom)
        and stmt.module == "__future__"
        and any(alias.name == "annotations" for alias in stmt.names)
        for stmt in tree.body
    )
    used = _names_used(tree, skip_annotations=postponed) | _dunder_all(tree)
    # why: a package's __init__ imports to re-export; the names are used by other modules
    reexports = path.rsplit("/", 1)[-1] == "__init__.py"
    for stmt in tree.body:
        if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            continue  # removing it is a syntax change at most, not a bug
        bound = {alias.asname or alias.name.split(".")[0] for alias in stmt.names if alias.name != "*"}
        if not bound or not (reexports or bound & used):
            continue  # an unused import: removing it changes nothing
        edits = _remove_statement(src, stmt, tree.body)
        if edits:
            description = f"removed `{_snippet(src.node_text(stmt))}`"
            yield _Draft("statements", MODULE_SYMBOL, stmt.lineno, description, edits, stmt)


def _names_used(tree: ast.AST, *, skip_annotations: bool) -> set[str]:
    names: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name):
            names.add(node.id)
        stack.extend(_children(node) if skip_annotations else ast.iter_child_nodes(node))
    return names


def _dunder_all(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for stmt in tree.body:
        if not isinstance(stmt, ast.Assign) or not isinstance(stmt.value, (ast.List, ast.Tuple)):
            continue
        if any(isinstance(target, ast.Name) and target.id == "__all__" for target in stmt.targets):
            names.update(
                e.value for e in stmt.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
            )
    return names


def _operator_drafts(src: _Source, index: _Index, tree: ast.Module, path: str) -> Iterator[_Draft]:
    for node, owner in index.scoped:
        if isinstance(node, ast.BinOp):
            symbol = _BINOP_SYMBOLS.get(type(node.op))
            if symbol:
                gap = (src.end(node.left), src.start(node.right))
                yield from _token_swaps(src, owner, gap, symbol, _BINOP_SWAPS[symbol])
        elif isinstance(node, ast.AugAssign):
            symbol = _BINOP_SYMBOLS.get(type(node.op))
            if symbol:
                gap = (src.end(node.target), src.start(node.value))
                swaps = tuple(alternative + "=" for alternative in _BINOP_SWAPS[symbol])
                yield from _token_swaps(src, owner, gap, symbol + "=", swaps)
        elif isinstance(node, ast.Compare):
            left: ast.expr = node.left
            for op, right in zip(node.ops, node.comparators):
                symbol = _CMPOP_SYMBOLS[type(op)]
                yield from _token_swaps(src, owner, (src.end(left), src.start(right)), symbol, _CMPOP_SWAPS[symbol])
                left = right
        elif isinstance(node, ast.UnaryOp):
            yield from _unary_swap(src, node, owner)
        elif isinstance(node, ast.BoolOp):
            yield from _boolop_swap(src, node, owner)


def _token_swaps(
    src: _Source, owner: _Function, gap: tuple[int, int], expected: str, alternatives: Iterable[str]
) -> Iterator[_Draft]:
    token = src.operator_token(*gap)
    if token is None or token[2] != expected:
        return  # the text between the operands is not what the AST says: leave it alone
    token_start, token_end, _ = token
    for alternative in alternatives:
        yield _Draft(
            "operators",
            owner.qualname,
            src.line_of(token_start),
            f"replaced {expected} with {alternative} in {owner.qualname}",
            [(token_start, token_end, src.padded(token_start, token_end, alternative))],
            owner.node,
        )


def _unary_swap(src: _Source, node: ast.UnaryOp, owner: _Function) -> Iterator[_Draft]:
    symbol = _UNARY_SYMBOLS[type(node.op)]
    token = src.operator_token(src.start(node), src.start(node.operand))
    if token is None or token[2] != symbol:
        return
    token_start, token_end, _ = token
    replacement = _UNARY_SWAPS[symbol]
    if replacement:
        edit = (token_start, token_end, replacement)
        description = f"replaced unary {symbol} with {replacement} in {owner.qualname}"
    else:
        edit = (token_start, src.skip_forward(token_end, b" \t"), "")
        description = f"removed {symbol} in {owner.qualname}"
    yield _Draft("operators", owner.qualname, src.line_of(token_start), description, [edit], owner.node)


def _boolop_swap(src: _Source, node: ast.BoolOp, owner: _Function) -> Iterator[_Draft]:
    # The whole chain flips (a and b and c -> a or b or c): one operator, one mutation.
    symbol, replacement = _BOOLOP_SWAPS[type(node.op)]
    edits: list[Edit] = []
    for left, right in itertools.pairwise(node.values):
        token = src.operator_token(src.end(left), src.start(right))
        if token is None or token[2] != symbol:
            return
        edits.append((token[0], token[1], replacement))
    description = f"replaced {symbol} with {replacement} in {owner.qualname}"
    yield _Draft("operators", owner.qualname, src.line_of(edits[0][0]), description, edits, owner.node)

# ---------------------------------------------------------------------------------------------
# Helpers


def _check_families(families: tuple[str, ...]) -> None:
    unknown = [family for family in families if family not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown mutation families {unknown}; expected some of {list(FAMILIES)}")


def _parse(source: str) -> ast.Module | None:
    # why: a file with invalid escape sequences parses with a SyntaxWarning; that is the
    # project's business, not a reason to print warnings for every candidate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(source)
        except (SyntaxError, ValueError):
            return None


def _split_lines(text: str) -> list[str]:
    """Lines as git counts them: only "\\n" ends a line (str.splitlines also splits on \\f, \\x1c, ...)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _unified_diff(path: str, before: str, after: str) -> str:
    """A git-apply compatible unified diff with three lines of context."""
    if before == after:
        return ""
    hunks = list(difflib.unified_diff(_split_lines(before), _split_lines(after), n=3))[2:]
    out = [f"--- a/{path}\n", f"+++ b/{path}\n"]
    for line in hunks:
        # why: difflib leaves a last line without "\n" as is; git needs the marker line
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)
