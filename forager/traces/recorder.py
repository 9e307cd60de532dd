"""The line tracer that runs inside a test container: one test's execution, recorded as a raw trace record.

Standalone on purpose: this file is copied into the test container next to a tiny pytest plugin and runs
under the project's own interpreter (Python 3.9 to 3.13), where forager is not installed. So it imports
only the standard library, keeps to Python 3.9 syntax and semantics, and copies the one rule it shares with
forager (`is_test_path`, from forager.tasks.patches; a unit test keeps the two in step).

The plugin calls `start(test_id)` just before a test function runs and `stop()` right after; `stop`
returns a dict in the shape of forager.traces.models.RawTestTrace (events as documented there), which the
plugin writes as one JSON line. One Recorder serves a whole run: files are sent once per run, and what it
learnt about each code object is kept.

What is followed (sys.settrace, the calling thread only: threads a test starts are not traced):

- repository and test functions, wherever they are called from, with call, line, return and exception
  events; module and class bodies never (an import inside a test is not traced), nor what those bodies
  call while a followed frame waits below them (decorators and registries running at import time);
- outside code (the standard library, site-packages, anything not under the root, or under a dot-directory
  of it such as .venv) only where a repository (not test) frame calls it directly: a call event with its
  arguments and a return event with its value, nothing inside it. Code without a .py file is never followed
  ("<string>", exec'd text), except the standard library modules Python 3.11+ freezes ("<frozen posixpath>"),
  which are read from their file. The function that calls `start` is not followed either.

Values are reprs cut to `repr_limit` characters, containers to MAX_ITEMS items and a few levels, memory
addresses removed so a trace reads the same on every run. A `__repr__` that raises gives
`<Type repr raised Error>`. The tracer never breaks a test: an error of its own drops the record and
stops tracing; an interruption (a deadline's alarm, Ctrl-C) while it runs drops the record and goes on
up to the test; past `max_events` events the record is cut and tracing stops; a test that sets its own
trace function (sys.settrace) gets a dropped record.
"""

from __future__ import annotations

import builtins
import io
import linecache
import os
import re
import reprlib
import sys
import time
import tokenize
from array import array
from collections import deque
from itertools import islice

REPR_LIMIT = 400
CUT_MARKER = "...[cut]"
MAX_ITEMS = 32
MAX_LEVEL = 4
UNCHANGED = ".."

_CO_NEWLOCALS = 0x0002  # inspect.CO_NEWLOCALS: set on functions, lambdas, comprehensions; not on module/class bodies
_OUTSIDE_DIRS = frozenset({"site-packages", "dist-packages"})
_TEST_DIRS = frozenset({"test", "tests", "testing"})
_TEST_FILES = frozenset({"conftest.py", "tests.py"})
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
# why these types only: immutable, so the same object means the same repr; no other value is kept referenced
_ATOMIC = frozenset({int, float, bool, type(None), str, bytes, complex})
# builtins.repr of these is short and cannot run user code (an int past Python 3.11's digit limit raises ValueError)
_PLAIN = frozenset({int, float, bool, type(None), complex})
_STR_ONLY = frozenset({str})
# equal values of these types have equal reprs, and == between two of them runs no user code (not float: -0.0 == 0.0)
_EXACT = frozenset({int, bool, type(None), str})
_SHORT = 8  # a sequence up to this long is cheaper to repr again than to compare with its memo
_MEMO_SIZE = 1024
_NO_OBJECT = object()  # stands for "no reference kept" in an activation's previous values
_SELF = os.path.realpath(__file__)
if _SELF.endswith((".pyc", ".pyo")):
    _SELF = _SELF[:-1]

_REPO, _TEST, _EXTERNAL = "repo", "test", "external"


def is_test_path(path: str) -> bool:
    """True when a repository path is test code (a copy of forager.tasks.patches.is_test_path)."""
    parts = [part for part in path.replace("\\", "/").split("/") if part]
    if not parts:
        return False
    dirs, name = parts[:-1], parts[-1]
    if any(part in _TEST_DIRS for part in dirs):
        return True
    if name in _TEST_FILES:
        return True
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


class _SafeRepr(reprlib.Repr):
    """reprlib, made cheap and deterministic: exact-type dispatch, a container stops once the text is longer
    than the cut keeps, dicts in insertion order, sets sorted, no memory addresses, no exception out of a
    `__repr__`."""

    def __init__(self, limit: int) -> None:
        reprlib.Repr.__init__(self)
        self.maxlevel = MAX_LEVEL
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = MAX_ITEMS
        self.maxdict = self.maxdeque = self.maxarray = MAX_ITEMS
        # why limit + 1: a longer text is cut by `safe_repr` anyway; slicing first keeps a huge value cheap
        self.maxstring = self.maxlong = self.maxother = limit + 1
        # why: once the pieces are longer than this, the cut hides whatever would follow, so they stop there
        self._budget = limit + 2
        # why by exact type: reprlib dispatches on the type's *name*, so a user class named "list" would be
        # read as a list; subclasses (OrderedDict, namedtuples) keep their own __repr__
        self._by_type = {
            list: self.repr_list, tuple: self.repr_tuple, dict: self.repr_dict, set: self.repr_set,
            frozenset: self.repr_frozenset, deque: self.repr_deque, array: self.repr_array,
            str: self.repr_str, bytes: self.repr_bytes, int: self.repr_int,
        }

    def repr1(self, x, level):
        method = self._by_type.get(type(x))
        if method is not None:
            return method(x, level)
        return self.repr_instance(x, level)

    def _pieces(self, items, level):
        """The reprs of up to MAX_ITEMS items, and whether some were left out."""
        pieces = []
        size = 0
        budget = self._budget
        plain = _PLAIN
        repr1 = self.repr1
        for item in islice(items, MAX_ITEMS):
            text = builtins.repr(item) if type(item) in plain else repr1(item, level)
            pieces.append(text)
            size += len(text) + 2
            if size > budget:
                break
        return pieces

    def _flat(self, items):
        """Whether builtins.repr of these items is short and runs no user code (scanned in C: no Python loop)."""
        types = set(map(type, items))
        if types <= _PLAIN:
            return True
        return types == _STR_ONLY and max(map(len, items)) <= self.maxstring

    def _sequence(self, x, level, left, right, trail=""):
        count = len(x)
        if not count:
            return left + right
        if level <= 0:
            return left + "..." + right
        kind = type(x)
        if kind is list or kind is tuple:
            head = x[:MAX_ITEMS]
            if self._flat(head):
                text = builtins.repr(head)
                return text if count <= MAX_ITEMS else text[:-1] + ", ..." + right
        pieces = self._pieces(x, level - 1)
        if len(pieces) < count:
            pieces.append("...")
        elif count == 1:
            right = trail + right
        return left + ", ".join(pieces) + right

    def repr_list(self, x, level):
        return self._sequence(x, level, "[", "]")

    def repr_tuple(self, x, level):
        return self._sequence(x, level, "(", ")", ",")

    def repr_deque(self, x, level):
        return self._sequence(x, level, "deque([", "])")

    def repr_array(self, x, level):
        if not x:
            return "array('%s')" % x.typecode
        return self._sequence(x, level, "array('%s', [" % x.typecode, "])")

    def _unordered(self, x, left, right, level):
        if level <= 0:
            return left + "..." + right
        items = x
        if len(x) <= 4 * MAX_ITEMS:  # why sorted: a set of strings iterates in a per-process hash order
            try:
                items = sorted(x)
            except Exception:
                pass
        pieces = self._pieces(items, level - 1)
        if len(pieces) < len(x):
            pieces.append("...")
        return left + ", ".join(pieces) + right

    def repr_set(self, x, level):
        return self._unordered(x, "{", "}", level) if x else "set()"

    def repr_frozenset(self, x, level):
        return self._unordered(x, "frozenset({", "})", level) if x else "frozenset()"

    def repr_dict(self, x, level):
        # why not reprlib's: it sorts the keys, and a dict's order is part of its value
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        if len(x) <= MAX_ITEMS and self._flat(x) and self._flat(x.values()):
            return builtins.repr(x)
        level -= 1
        pieces = []
        size = 0
        budget = self._budget
        plain = _PLAIN
        repr1 = self.repr1
        for key, value in islice(x.items(), MAX_ITEMS):
            text = "%s: %s" % (builtins.repr(key) if type(key) in plain else repr1(key, level),
                               builtins.repr(value) if type(value) in plain else repr1(value, level))
            pieces.append(text)
            size += len(text) + 2
            if size > budget:
                break
        if len(pieces) < len(x):
            pieces.append("...")
        return "{" + ", ".join(pieces) + "}"

    def repr_str(self, x, level):
        return builtins.repr(x[:self.maxstring])

    def repr_bytes(self, x, level):
        return builtins.repr(x[:self.maxstring])

    def repr_int(self, x, level):
        try:
            return builtins.repr(x)
        except ValueError:  # Python 3.11+: more digits than sys.get_int_max_str_digits()
            return "<int of %d bits>" % x.bit_length()

    def repr_instance(self, x, level):
        try:
            text = builtins.repr(x)
        except Exception as exc:
            return "<%s repr raised %s>" % (type(x).__name__, type(exc).__name__)
        if " at 0x" in text:
            text = _ADDRESS.sub("", text)
        return text


def make_safe_repr(limit: int = REPR_LIMIT, memo: dict | None = None):
    """A function value -> its repr: never raises an Exception, at most `limit` characters plus CUT_MARKER.

    `memo` (id of a list or tuple -> what its text was made from) spares the repr of a longer sequence of
    ints, strings, bools and Nones whose shown items are the same as last time: for those types equal items
    have equal reprs, and comparing them runs no user code. Only such items are kept referenced.
    """
    formatter = _SafeRepr(limit)
    repr1 = formatter.repr1
    level = formatter.maxlevel
    plain = _PLAIN
    exact = _EXACT
    cut = CUT_MARKER
    if memo is None:
        memo = {}

    def safe_repr(value):
        kind = type(value)
        try:
            if kind in plain:
                text = builtins.repr(value)
            elif kind is str:
                text = builtins.repr(value if len(value) <= limit else value[:limit + 1])
            elif kind is list or kind is tuple:
                count = len(value)
                if count <= _SHORT:
                    # why first: the most common container; its items' reprs made in C
                    text = builtins.repr(value) if set(map(type, value)) <= plain else repr1(value, level)
                else:
                    head = value[:MAX_ITEMS]  # a copy for a list
                    types = tuple(map(type, head))
                    key = id(value)
                    seen = memo.get(key)
                    if seen is not None and seen[0] == types and seen[2] == (count > MAX_ITEMS) and seen[1] == head:
                        text = seen[3]
                    else:
                        text = repr1(value, level)
                        if exact.issuperset(types) and (str not in types or _small_strings(head)):
                            if len(memo) >= _MEMO_SIZE:
                                memo.clear()
                            memo[key] = (types, head, count > MAX_ITEMS, text)
            else:
                text = repr1(value, level)
        except Exception as exc:  # an int past the digit limit, a broken __repr__ deep in a container, ...
            if kind is int:
                text = "<int of %d bits>" % value.bit_length()
            else:
                text = "<%s repr raised %s>" % (kind.__name__, type(exc).__name__)
        if len(text) > limit:
            text = text[:limit] + cut
        return text

    return safe_repr


class Recorder:
    """Records one test at a time in the calling thread; reused for every test of a run."""

    def __init__(self, root: str, *, max_events: int = 200_000, repr_limit: int = REPR_LIMIT,
                 max_calls: int = 0) -> None:
        self.root = os.path.realpath(root)
        # activations of one repository or test function followed per test (0: all); later ones are stepped over,
        # like calls past the depth: a test calling one helper 100,000 times costs one check per call, not its lines
        self.max_calls = max_calls
        self._prefix = self.root if self.root.endswith(os.sep) else self.root + os.sep
        self._base = os.getcwd()
        self.max_events = max_events
        self.repr_limit = repr_limit
        self._memo = {}
        self._safe_repr = make_safe_repr(repr_limit, self._memo)
        # id(code) -> [kind or None, code info without id, record number, id in that record, absolute path, code]
        # why by id with the code object kept: code objects compare by content, not by file, so two identical
        # functions at the same line of two files would share an entry; holding the code keeps its id unique
        self._codes = {}
        self._paths = {}  # co_filename -> (kind, path, absolute path) or None
        self._sent = set()  # repository paths whose text a record of this run already holds
        self._generation = 0
        self._record = None
        self._previous = None
        self._tracer = None
        self._active = None
        self._started = 0.0

    # -- classification ----------------------------------------------------------------------

    def _classify(self, code):
        """The cache entry of a code object (computed once per run)."""
        entry = [None, None, -1, -1, "", code]
        located = self._locate(code.co_filename)
        if located is not None and code.co_flags & _CO_NEWLOCALS and code.co_name != "<module>":
            kind, path, filename = located
            qualname = getattr(code, "co_qualname", None)
            if qualname is None:
                qualname = "@%d:%s" % (code.co_firstlineno, code.co_name)
            entry[0] = kind
            entry[1] = {"path": path, "name": code.co_name, "qualname": qualname, "first": code.co_firstlineno,
                        "kind": kind}
            entry[4] = filename
        self._codes[id(code)] = entry
        return entry

    def _locate(self, raw):
        try:
            return self._paths[raw]
        except KeyError:
            pass
        located = None
        if raw.startswith("<frozen ") and raw.endswith(">"):
            # Python 3.11+ freezes part of the standard library (os, posixpath, ...): outside code with a real file
            filename = getattr(sys.modules.get(raw[len("<frozen "):-1]), "__file__", None)
            if isinstance(filename, str) and filename.endswith(".py") and os.path.isfile(filename):
                filename = os.path.realpath(filename)
                located = (_EXTERNAL, filename, filename)
        elif raw.endswith(".py") and not raw.startswith("<"):
            filename = os.path.realpath(os.path.join(self._base, raw))
            if filename != _SELF:
                located = (_EXTERNAL, filename, filename)
                if filename.startswith(self._prefix):
                    relative = filename[len(self._prefix):].replace(os.sep, "/")
                    parts = relative.split("/")
                    if not any(part in _OUTSIDE_DIRS or part.startswith(".") for part in parts):
                        located = (_TEST if is_test_path(relative) else _REPO, relative, filename)
                        self._send(relative, filename)
        self._paths[raw] = located
        return located

    def _send(self, relative, filename):
        if relative in self._sent or self._record is None:
            return
        self._sent.add(relative)
        try:
            with open(filename, "rb") as handle:
                data = handle.read()
            text = _decode_source(data)
        except (OSError, ValueError):
            return
        self._record["files"][relative] = text

    # -- start and stop ------------------------------------------------------------------------

    def start(self, test_id: str) -> None:
        """Start recording `test_id`: installs the tracer for the calling thread."""
        if self._record is not None:
            self.stop()
        self._generation += 1
        record = {"test": test_id, "outcome": "complete", "reason": None, "seconds": 0.0, "codes": [],
                  "events": [], "lines": {}, "files": {}}
        self._record = record
        self._active = {}
        # why: the code calling start() is the plugin's; a hook wrapper (a generator) resumed to call stop() would
        # otherwise be followed when the plugin lives under the root
        caller = sys._getframe(1).f_code
        self._codes[id(caller)] = [None, None, -1, -1, "", caller]
        self._previous = sys.gettrace()
        self._started = time.perf_counter()
        self._tracer = self._make_tracer(record)
        sys.settrace(self._tracer)

    def stop(self) -> dict:
        """Stop recording; the record in the RawTestTrace shape. Restores the previous trace function."""
        record = self._record
        if record is None:
            return {"test": "", "outcome": "dropped", "reason": "stop without start", "seconds": 0.0, "codes": [],
                    "events": [], "lines": {}, "files": {}}
        if record["outcome"] == "complete" and sys.gettrace() is not self._tracer:
            record["outcome"] = "dropped"
            record["reason"] = "the test replaced the trace function"
        sys.settrace(self._previous)
        self._previous = None
        self._tracer = None
        record["seconds"] = round(time.perf_counter() - self._started, 6)
        record["calls_skipped"] = record["calls_skipped"][0] if "calls_skipped" in record else 0
        # why tuples while recording: a tuple of untracked values leaves the garbage collector's lists
        record["events"] = [list(event) for event in record["events"]]
        self._release()
        self._memo.clear()
        self._record = None
        return record

    def _release(self):
        """Forget every frame: no trace function left on them, none referenced."""
        active = self._active
        if active:
            for frame in list(active):
                try:
                    frame.f_trace = None
                except Exception:
                    pass
            active.clear()

    def _halt(self, record, outcome, reason):
        """Stop tracing in the middle of a test; the first reason given is kept."""
        sys.settrace(None)
        if record["outcome"] == "complete":
            record["outcome"] = outcome
            record["reason"] = reason
        self._release()

    # -- the trace functions -------------------------------------------------------------------

    def _make_tracer(self, record):
        """The global trace function for one record (closures: the hot path reads locals, not attributes)."""
        events = record["events"]
        codes = record["codes"]
        lines = record["lines"]
        append = events.append
        active = self._active
        active_get = active.get
        cache_get = self._codes.get
        classify = self._classify
        safe_repr = self._safe_repr
        generation = self._generation
        cap = self.max_events
        halt = self._halt
        getline = linecache.getline
        atomic = _ATOMIC
        no_object = _NO_OBJECT
        unchanged = UNCHANGED
        activations = [0]
        max_calls = self.max_calls
        calls = {}  # id(code) -> activations followed in this test
        skipped = record["calls_skipped"] = [0]

        def cut():
            halt(record, "cut", "event cap reached: %d events" % cap)

        def fail(exc):
            halt(record, "dropped", "tracer error: " + _describe(exc))

        def interrupted(exc):
            halt(record, "dropped", "interrupted: " + _describe(exc))

        def note_line(filename, line):
            texts = lines.get(filename)
            if texts is None:
                texts = lines[filename] = {}
            key = str(line)
            if key not in texts:
                texts[key] = getline(filename, line).strip()

        def local(frame, event, arg):
            try:
                state = active_get(frame)
                if state is None:  # a frame this record no longer follows
                    return None
                if event == "line":
                    if len(events) >= cap:
                        cut()
                        return None
                    previous = state[2]  # name -> (the value if atomic else no_object, its text), updated in place
                    shown = {}
                    for name, value in frame.f_locals.items():
                        before = previous.get(name)
                        if before is None:
                            text = safe_repr(value)
                        elif before[0] is value:
                            shown[name] = unchanged
                            continue
                        else:
                            text = safe_repr(value)
                            if before[1] == text:
                                shown[name] = unchanged
                                if type(value) in atomic:  # an equal new object: the next event compares to it
                                    previous[name] = (value, text)
                                continue
                        shown[name] = text
                        previous[name] = (value if type(value) in atomic else no_object, text)
                    if len(previous) != len(shown):  # a local was deleted
                        for name in [name for name in previous if name not in shown]:
                            del previous[name]
                    append(("line", state[0], frame.f_lineno, shown))
                    return local
                if event == "return":
                    del active[frame]
                    frame.f_trace = None
                    if len(events) >= cap:
                        cut()
                        return None
                    line = frame.f_lineno
                    append(("return", state[0], line, safe_repr(arg)))
                    if state[1]:
                        note_line(state[3], line)
                    return None
                if event == "exception":
                    if state[1]:  # outside code: a call and a return only
                        return local
                    if len(events) >= cap:
                        cut()
                        return None
                    append(("exception", state[0], frame.f_lineno, safe_repr(arg[1])))
                return local
            except Exception as exc:
                fail(exc)
                return None
            except BaseException as exc:
                interrupted(exc)
                raise

        # why the same try/except in both trace functions rather than one wrapper: they run at every event, and
        # a wrapper's extra call would cost on each
        def tracer(frame, event, arg):
            try:
                code = frame.f_code
                entry = cache_get(id(code))
                if entry is None:
                    entry = classify(code)
                kind = entry[0]
                if kind is None:
                    return None
                back = frame.f_back
                state = active_get(back)
                if state is not None:
                    parent = state[0]
                    if kind is _EXTERNAL and state[4] is not _REPO:  # outside code: only what the repository calls
                        return None
                else:
                    if kind is _EXTERNAL:
                        return None
                    parent = None
                    importing = False
                    while back is not None:
                        state = active_get(back)
                        if state is not None:
                            parent = state[0]
                            break
                        if back.f_code.co_name == "<module>":
                            importing = True
                        back = back.f_back
                    if importing and parent is not None:  # called by a module body an import runs
                        return None
                if max_calls and kind is not _EXTERNAL:
                    seen = calls.get(id(code), 0)
                    if seen >= max_calls:
                        skipped[0] += 1
                        return None
                    calls[id(code)] = seen + 1
                if len(events) >= cap:
                    cut()
                    return None
                if entry[2] != generation:
                    entry[2] = generation
                    entry[3] = len(codes)
                    info = {"id": entry[3]}
                    info.update(entry[1])
                    codes.append(info)
                aid = activations[0]
                activations[0] = aid + 1
                values = {}
                previous = {}
                for name, value in frame.f_locals.items():
                    text = safe_repr(value)
                    values[name] = text
                    previous[name] = (value if type(value) in atomic else no_object, text)
                line = frame.f_lineno
                append(("call", aid, parent, entry[3], line, values))
                outside = kind is _EXTERNAL
                # state: activation id, outside code?, previous values, absolute path, kind
                active[frame] = [aid, outside, previous, entry[4], kind]
                if outside:
                    note_line(entry[4], line)
                    frame.f_trace_lines = False
                return local
            except Exception as exc:
                fail(exc)
                return None
            except BaseException as exc:
                interrupted(exc)
                raise

        return tracer


def _small_strings(items) -> bool:
    return sum(len(item) for item in items if type(item) is str) <= 4096


def _describe(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:
        message = "?"
    return "%s: %s" % (type(exc).__name__, message[:REPR_LIMIT])


def _decode_source(data: bytes) -> str:
    """A Python file's text, by its BOM or coding cookie (PEP 263), else UTF-8; undecodable bytes replaced."""
    try:
        encoding = tokenize.detect_encoding(io.BytesIO(data).readline)[0]
    except SyntaxError:
        encoding = "utf-8"
    try:
        return data.decode(encoding, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")
