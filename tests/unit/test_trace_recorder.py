"""The in-container line tracer, run in-process: sample modules written to a temporary "repository", traced.

Each test writes small modules under tmp_path (the repository root the Recorder is given; "outside" code
goes to another temporary directory), imports them, and runs them between start() and stop().
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import json
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from forager.tasks.patches import is_test_path
from forager.traces import recorder as recorder_module
from forager.traces.models import UNCHANGED, RawTestTrace
from forager.traces.recorder import CUT_MARKER, MAX_ITEMS, REPR_LIMIT, Recorder, make_safe_repr

_names = itertools.count()


@pytest.fixture(autouse=True)
def _keep_trace_function():
    """Whatever a test does, the trace function the suite runs under comes back."""
    before = sys.gettrace()
    yield
    sys.settrace(before)


def load(root: Path, relative: str, source: str):
    """Write `source` at root/relative and import it under a fresh module name."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip("\n"))
    name = "forager_trace_sample_%d" % next(_names)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def traced(recorder: Recorder, function, *args):
    """Run function(*args) under the recorder; (its result, the record, checked against the model)."""
    recorder.start("tests/test_sample.py::test_it")
    try:
        result = function(*args)
    finally:
        record = recorder.stop()
    check_shape(record)
    return result, record


def check_shape(record: dict) -> None:
    RawTestTrace.model_validate(json.loads(json.dumps(record)))
    assert all(type(event) is list for event in record["events"])


def activations(record: dict, name: str) -> list[list[list]]:
    """The events of each activation of the function `name`, in order of the activations."""
    names = {code["id"]: code["name"] for code in record["codes"]}
    wanted = [event[1] for event in record["events"] if event[0] == "call" and names[event[3]] == name]
    return [[event for event in record["events"] if event[1] == frame] for frame in wanted]


def latest(activation: list[list]) -> dict[str, str]:
    """The values of the activation's last line event, each shown in full (what ".." stood for resolved)."""
    values: dict[str, str] = {}
    for event in activation:
        shown = event[5] if event[0] == "call" else event[3] if event[0] == "line" else None
        if shown is not None:
            values = {name: values[name] if text == UNCHANGED else text for name, text in shown.items()}
    return values


def only(record: dict, name: str) -> list[list]:
    found = activations(record, name)
    assert len(found) == 1, found
    return found[0]


# -- events ------------------------------------------------------------------------------------------------


def test_call_lines_return_with_unchanged_values_and_deleted_locals(tmp_path):
    module = load(tmp_path, "pkg/calc.py", """
        def add(a, b):
            c = a + b
            d = [c]
            del a
            d.append(b)
            return c
    """)
    result, record = traced(Recorder(str(tmp_path)), module.add, 1, 2)
    assert result == 3
    assert record["outcome"] == "complete" and record["reason"] is None
    (code,) = record["codes"]
    assert code == {"id": 0, "path": "pkg/calc.py", "name": "add", "qualname": code["qualname"], "first": 1,
                    "kind": "repo"}
    assert code["qualname"] == ("add" if sys.version_info >= (3, 11) else "@1:add")
    assert record["events"] == [
        ["call", 0, None, 0, 1, {"a": "1", "b": "2"}],
        ["line", 0, 2, {"a": UNCHANGED, "b": UNCHANGED}],
        ["line", 0, 3, {"a": UNCHANGED, "b": UNCHANGED, "c": "3"}],
        ["line", 0, 4, {"a": UNCHANGED, "b": UNCHANGED, "c": UNCHANGED, "d": "[3]"}],
        ["line", 0, 5, {"b": UNCHANGED, "c": UNCHANGED, "d": UNCHANGED}],
        ["line", 0, 6, {"b": UNCHANGED, "c": UNCHANGED, "d": "[3, 2]"}],
        ["return", 0, 6, "3"],
    ]


def test_equal_new_value_is_unchanged_and_changed_one_is_shown(tmp_path):
    module = load(tmp_path, "pkg/values.py", """
        def f():
            x = 1000
            x = x + 1 - 1
            x = "a"
            return x
    """)
    _, record = traced(Recorder(str(tmp_path)), module.f)
    lines = [event[3] for event in record["events"] if event[0] == "line"]
    assert lines == [{}, {"x": "1000"}, {"x": UNCHANGED}, {"x": "'a'"}]


def test_a_deleted_local_bound_again_is_shown_in_full(tmp_path):
    module = load(tmp_path, "pkg/again.py", """
        def f():
            a = 1
            del a
            a = 1
            return a
    """)
    _, record = traced(Recorder(str(tmp_path)), module.f)
    lines = [event[3] for event in record["events"] if event[0] == "line"]
    assert lines == [{}, {"a": "1"}, {}, {"a": "1"}]


def test_nested_calls_link_to_their_caller(tmp_path):
    module = load(tmp_path, "pkg/nest.py", """
        def leaf(x):
            return x * 2


        def mid(x):
            return leaf(x) + leaf(x + 1)
    """)
    result, record = traced(Recorder(str(tmp_path)), module.mid, 1)
    assert result == 6
    calls = [event for event in record["events"] if event[0] == "call"]
    (mid,) = [call for call in calls if record["codes"][call[3]]["name"] == "mid"]
    leaves = [call for call in calls if record["codes"][call[3]]["name"] == "leaf"]
    assert mid[2] is None
    assert [leaf[2] for leaf in leaves] == [mid[1], mid[1]]
    assert len({mid[1], leaves[0][1], leaves[1][1]}) == 3
    assert [leaf[5] for leaf in leaves] == [{"x": "1"}, {"x": "2"}]
    assert [activation[-1][3] for activation in activations(record, "leaf")] == ["2", "4"]
    assert only(record, "mid")[-1] == ["return", mid[1], 6, "6"]


def test_recursion_gives_one_activation_per_level(tmp_path):
    module = load(tmp_path, "pkg/rec.py", """
        def fact(n):
            if n <= 1:
                return 1
            return n * fact(n - 1)
    """)
    _, record = traced(Recorder(str(tmp_path)), module.fact, 3)
    levels = activations(record, "fact")
    assert [level[0][5] for level in levels] == [{"n": "3"}, {"n": "2"}, {"n": "1"}]
    assert [level[0][2] for level in levels] == [None, levels[0][0][1], levels[1][0][1]]
    assert [level[-1][3] for level in levels] == ["6", "2", "1"]
    assert len(record["codes"]) == 1


def test_calls_past_the_per_function_cap_are_stepped_over(tmp_path):
    module = load(tmp_path, "pkg/many.py", """
        def leaf(i):
            return i + 1

        def loop(n):
            total = 0
            for i in range(n):
                total = leaf(total)
            return total
    """)
    result, record = traced(Recorder(str(tmp_path), max_calls=3), module.loop, 1000)
    assert result == 1000  # the program is unchanged
    assert len(activations(record, "leaf")) == 3 and record["calls_skipped"] == 997
    assert len(activations(record, "loop")) == 1 and activations(record, "loop")[0][-1][3] == "1000"
    _, everything = traced(Recorder(str(tmp_path)), module.loop, 10)
    assert len(activations(everything, "leaf")) == 10 and everything["calls_skipped"] == 0


def test_each_resume_of_a_generator_is_a_new_activation(tmp_path):
    module = load(tmp_path, "pkg/gen.py", """
        def gen(n):
            for i in range(n):
                yield i * 10


        def consume():
            return list(gen(2))
    """)
    result, record = traced(Recorder(str(tmp_path)), module.consume)
    assert result == [0, 10]
    consumer = only(record, "consume")[0][1]
    steps = activations(record, "gen")
    assert len(steps) == 3
    assert len({step[0][1] for step in steps}) == 3
    assert all(step[0][0] == "call" and step[-1][0] == "return" for step in steps)
    assert all(step[0][2] == consumer for step in steps)
    assert [step[-1][3] for step in steps] == ["0", "10", "None"]
    assert steps[1][0][5] == {"n": "2", "i": "0"}  # a resumed activation starts from full values


def test_async_function_under_asyncio_run(tmp_path):
    module = load(tmp_path, "pkg/aio.py", """
        import asyncio


        async def inner(x):
            await asyncio.sleep(0)
            return x + 1


        async def outer():
            a = await inner(1)
            return a * 10


        def run_both():
            return asyncio.run(outer())
    """)
    result, record = traced(Recorder(str(tmp_path)), module.run_both)
    assert result == 20
    outers = activations(record, "outer")
    inners = activations(record, "inner")
    assert len(outers) >= 2 and len(inners) >= 2
    for activation in outers + inners:
        assert activation[0][0] == "call" and activation[-1][0] == "return"
    assert outers[-1][-1][3] == "20"
    assert inners[-1][-1][3] == "2"
    assert inners[-1][0][2] == outers[-1][0][1]  # the resumed inner runs inside the resumed outer
    assert only(record, "run_both")[-1][3] == "20"
    (run,) = activations(record, "run")  # asyncio.run: outside code the repository calls
    assert record["codes"][run[0][3]]["kind"] == "external"
    assert run[0][5]["main"] == "<coroutine object outer>"  # no address
    assert outers[0][0][2] == run[0][1]  # the event loop's frames between are not followed


def test_caught_exception_then_the_handler_runs(tmp_path):
    module = load(tmp_path, "pkg/exc.py", """
        def caught():
            try:
                raise ValueError("bad")
            except ValueError:
                x = 1
            return x
    """)
    result, record = traced(Recorder(str(tmp_path)), module.caught)
    assert result == 1
    events = only(record, "caught")
    kinds = [event[0] for event in events]
    at = kinds.index("exception")
    assert events[at][2:] == [3, "ValueError('bad')"]
    assert kinds[at + 1] == "line" and kinds[-1] == "return"
    assert "exception" not in kinds[at + 1:]
    assert events[-1][3] == "1"


def test_uncaught_exception_then_return_none(tmp_path):
    module = load(tmp_path, "pkg/exc2.py", """
        def inner():
            y = 2
            raise KeyError("k")


        def outer():
            return inner()
    """)
    recorder = Recorder(str(tmp_path))
    recorder.start("t")
    with pytest.raises(KeyError):
        module.outer()
    record = recorder.stop()
    check_shape(record)
    inner = only(record, "inner")
    assert [event[0] for event in inner[-2:]] == ["exception", "return"]
    assert inner[-2][2:] == [3, "KeyError('k')"]
    assert inner[-1][3] == "None"
    outer = only(record, "outer")  # the exception passes through the caller too
    assert [event[0] for event in outer[-2:]] == ["exception", "return"]


# -- values ------------------------------------------------------------------------------------------------


def test_repr_that_raises_gives_a_clean_text(tmp_path):
    module = load(tmp_path, "pkg/bad.py", """
        class Bad:
            def __repr__(self):
                raise RuntimeError("no repr")


        def use():
            b = Bad()
            return b
    """)
    _, record = traced(Recorder(str(tmp_path)), module.use)
    events = only(record, "use")
    assert events[-2][3] == {"b": "<Bad repr raised RuntimeError>"}
    assert events[-1][3] == "<Bad repr raised RuntimeError>"
    assert "0x" not in json.dumps(record)


def test_long_values_are_cut_and_recursive_ones_terminate(tmp_path):
    module = load(tmp_path, "pkg/big.py", """
        def big():
            s = "x" * 1000
            n = list(range(1000))
            r = [1]
            r.append(r)
            d = {"k%d" % i: i for i in range(50)}
            return 0
    """)
    _, record = traced(Recorder(str(tmp_path)), module.big)
    values = latest(only(record, "big"))
    assert values["s"] == "'" + "x" * (REPR_LIMIT - 1) + CUT_MARKER
    assert values["n"] == "[" + ", ".join(str(i) for i in range(MAX_ITEMS)) + ", ...]"
    assert values["r"].startswith("[1, [1, [1, ") and "..." in values["r"] and len(values["r"]) < 100
    assert values["d"].startswith("{'k0': 0, 'k1': 1, 'k2': 2, ") and values["d"].endswith(", ...}")
    assert values["d"].count(":") == MAX_ITEMS


def test_default_reprs_have_no_memory_address(tmp_path):
    module = load(tmp_path, "pkg/plain.py", """
        class Plain:
            pass


        def make():
            o = Plain()
            f = make
            return [o, f]
    """)
    _, record = traced(Recorder(str(tmp_path)), module.make)
    values = latest(only(record, "make"))
    assert values["o"].endswith(".Plain object>") and values["f"] == "<function make>"
    assert "0x" not in json.dumps(record)


def test_safe_repr_rules():
    short = make_safe_repr(20)
    assert short("y" * 50) == "'" + "y" * 19 + CUT_MARKER
    assert short(list(range(100))) == "[0, 1, 2, 3, 4, 5, 6" + CUT_MARKER
    safe = make_safe_repr()
    assert safe({"b": 1, "a": 2}) == "{'b': 1, 'a': 2}"  # insertion order, not sorted
    names = ["k%02d" % i for i in range(20)]
    assert safe(set(reversed(names))) == "{" + ", ".join(repr(name) for name in names) + "}"  # sorted: string
    assert safe(frozenset(names)).startswith("frozenset({'k00', 'k01', ")  # hashes change between processes
    assert safe((1,)) == "(1,)" and safe(()) == "()" and safe([]) == "[]"
    assert safe([[[[[[1]]]]]]) == "[[[[[...]]]]]"

    named_list = type("list", (), {"__repr__": lambda self: "custom"})  # a class *named* list is not a list
    assert safe(named_list()) == "custom"
    assert safe([object()]) == "[<object object>]"
    assert safe([[i] for i in range(40)]) == "[" + ", ".join("[%d]" % i for i in range(MAX_ITEMS)) + ", ...]"
    broken = type("Broken", (), {"__repr__": lambda self: 1 / 0})
    assert safe([broken(), 1]) == "[<Broken repr raised ZeroDivisionError>, 1]"
    assert safe({"key": broken()}) == "{'key': <Broken repr raised ZeroDivisionError>}"
    if hasattr(sys, "set_int_max_str_digits"):
        assert safe(10 ** 5000) == "<int of %d bits>" % (10 ** 5000).bit_length()


def test_a_remembered_sequence_is_shown_again_when_a_shown_item_changes():
    memo: dict = {}
    safe = make_safe_repr(memo=memo)
    items = list(range(40))
    first = safe(items)
    assert first == "[" + ", ".join(str(i) for i in range(MAX_ITEMS)) + ", ...]"
    assert len(memo) == 1 and all(entry[1] is not items for entry in memo.values())  # a copy of the head, not the list
    items[39] = object()  # not shown: the same text
    assert safe(items) == first
    items[0] = True
    assert safe(items).startswith("[True, 1, 2, ")
    items[0] = 1  # equal to True, but another type
    assert safe(items) == "[1, " + first[len("[0, "):]
    items[5] = "five"
    assert safe(items).startswith("[1, 1, 2, 3, 4, 'five', 6, ")
    items[6] = 66  # same types
    assert safe(items).startswith("[1, 1, 2, 3, 4, 'five', 66, 7, ")
    del items[MAX_ITEMS:]
    assert safe(items).endswith(", 31]")
    items.append(32)
    assert safe(items).endswith(", 31, ...]")
    short = list(range(20))
    assert safe(short).startswith("[0, 1, ")
    short[0] = 5
    assert safe(short).startswith("[5, 1, ")
    words = tuple("w%d" % i for i in range(10))
    assert safe(words) == repr(words)


# -- robustness --------------------------------------------------------------------------------------------


class Deadline(BaseException):
    """What a per-test deadline raises (pytest's Failed is a BaseException too)."""


def test_interrupted_while_the_tracer_runs_drops_the_record_and_propagates(tmp_path):
    module = load(tmp_path, "pkg/endless.py", """
        class Endless:
            def __repr__(self):
                while True:
                    pass


        def hang():
            e = Endless()
            return 1
    """)

    def alarm(signum, frame):
        raise Deadline("deadline passed")

    # why the virtual timer: SIGALRM may be pytest-timeout's; CPU time passes while the repr spins
    old = signal.signal(signal.SIGVTALRM, alarm)
    recorder = Recorder(str(tmp_path))
    previous = sys.gettrace()
    try:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0.2)
        recorder.start("t")
        with pytest.raises(Deadline):
            module.hang()
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, old)
        record = recorder.stop()
    check_shape(record)
    assert record["outcome"] == "dropped"
    assert record["reason"] == "interrupted: Deadline: deadline passed"
    assert sys.gettrace() is previous
    assert record["events"][0][0] == "call"


def test_event_cap_cuts_the_record_and_stops_tracing(tmp_path):
    module = load(tmp_path, "pkg/loop.py", """
        def loop(n):
            total = 0
            for i in range(n):
                total += i
            return total
    """)
    previous = sys.gettrace()
    result, record = traced(Recorder(str(tmp_path), max_events=40), module.loop, 100)
    assert result == 4950
    assert record["outcome"] == "cut"
    assert "40" in record["reason"]
    assert len(record["events"]) == 40
    assert sys.gettrace() is previous
    _, small = traced(Recorder(str(tmp_path), max_events=40), module.loop, 2)
    assert small["outcome"] == "complete"


def test_tracer_error_drops_the_record_and_the_test_goes_on(tmp_path):
    module = load(tmp_path, "pkg/ok.py", """
        def ok(x):
            return x + 1
    """)
    recorder = Recorder(str(tmp_path))

    def broken(code):
        raise RuntimeError("classifier broke")

    recorder._classify = broken
    result, record = traced(recorder, module.ok, 1)
    assert result == 2
    assert record["outcome"] == "dropped"
    assert record["reason"] == "tracer error: RuntimeError: classifier broke"


def test_previous_trace_function_is_restored(tmp_path):
    module = load(tmp_path, "pkg/prev.py", """
        def f():
            return 1
    """)
    seen = []

    def previous(frame, event, arg):
        seen.append(frame.f_code.co_name)
        return None

    recorder = Recorder(str(tmp_path))
    sys.settrace(previous)
    recorder.start("t")
    mark = len(seen)
    module.f()
    record = recorder.stop()
    during = seen[mark:]
    restored = sys.gettrace()
    module.f()
    sys.settrace(None)
    assert restored is previous
    assert "f" not in during and seen[-1] == "f"
    assert [event[0] for event in record["events"]] == ["call", "line", "return"]


def test_a_test_that_replaces_the_trace_function_drops_the_record(tmp_path):
    module = load(tmp_path, "pkg/replace.py", """
        import sys


        def replace():
            sys.settrace(None)
            return 1
    """)
    _, record = traced(Recorder(str(tmp_path)), module.replace)
    assert record["outcome"] == "dropped"
    assert record["reason"] == "the test replaced the trace function"


# -- what is followed --------------------------------------------------------------------------------------


def test_outside_code_gets_a_call_and_a_return_only(tmp_path, tmp_path_factory):
    outside_root = tmp_path_factory.mktemp("outside")
    outside = load(outside_root, "helpers.py", """
        def helper(x):
            y = inner(x)
            return y + 1


        def inner(x):
            return x * 2


        def call_back(fn):
            return fn(3)
    """)
    module = load(tmp_path, "pkg/uses.py", """
        def use(outside):
            a = outside.helper(2)
            return a


        def plus(v):
            return v + 1


        def use_callback(outside):
            return outside.call_back(plus)
    """)
    recorder = Recorder(str(tmp_path))
    result, record = traced(recorder, module.use, outside)
    assert result == 5
    helper_path = str((outside_root / "helpers.py").resolve())
    helper = only(record, "helper")
    assert helper == [["call", helper[0][1], only(record, "use")[0][1], helper[0][3], 1, {"x": "2"}],
                      ["return", helper[0][1], 3, "5"]]
    assert record["codes"][helper[0][3]]["kind"] == "external"
    assert record["codes"][helper[0][3]]["path"] == helper_path
    assert activations(record, "inner") == []  # called by outside code: not followed
    assert record["lines"] == {helper_path: {"1": "def helper(x):", "3": "return y + 1"}}

    result, record = traced(recorder, module.use_callback, outside)
    assert result == 4
    (call_back,) = activations(record, "call_back")
    assert [event[0] for event in call_back] == ["call", "return"]
    assert only(record, "plus")[0][2] == call_back[0][1]  # repository code is followed wherever it is called from


def test_functions_in_test_files_are_test_code(tmp_path):
    lib = load(tmp_path, "pkg/lib.py", """
        def helper():
            return 7
    """)
    module = load(tmp_path, "tests/test_x.py", """
        import os.path


        def test_thing(lib):
            os.path.join("a", "b")
            return lib.helper()
    """)
    result, record = traced(Recorder(str(tmp_path)), module.test_thing, lib)
    assert result == 7
    kinds = {code["name"]: (code["kind"], code["path"]) for code in record["codes"]}
    # only repository frames take outside code along: the test's own call to os.path.join is not recorded
    assert kinds == {"test_thing": ("test", "tests/test_x.py"), "helper": ("repo", "pkg/lib.py")}
    assert only(record, "helper")[0][2] == only(record, "test_thing")[0][1]


def test_module_bodies_an_import_runs_are_not_traced(tmp_path, monkeypatch):
    name = "forager_trace_imported_%d" % next(_names)
    (tmp_path / ("%s.py" % name)).write_text(textwrap.dedent("""
        def compute():
            return 41


        class Thing:
            size = compute()


        VALUE = compute() + 1
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = load(tmp_path, "tests/test_imports.py", """
        def test_imports():
            import %s as imported
            return imported.VALUE + imported.compute()
    """ % name)
    try:
        result, record = traced(Recorder(str(tmp_path)), module.test_imports)
    finally:
        sys.modules.pop(name, None)
    assert result == 83
    names = [code["name"] for code in record["codes"]]
    assert names == ["test_imports", "compute"]
    assert len(activations(record, "compute")) == 1  # the call from the test, not the two the import made


def test_class_bodies_are_not_traced(tmp_path):
    module = load(tmp_path, "pkg/local.py", """
        def make():
            class Local:
                size = 1

                def get(self):
                    return self.size
            return Local().get()
    """)
    result, record = traced(Recorder(str(tmp_path)), module.make)
    assert result == 1
    assert [code["name"] for code in record["codes"]] == ["make", "get"]


def test_the_code_that_starts_the_recorder_is_not_followed(tmp_path):
    module = load(tmp_path, "pkg/work.py", """
        def work():
            return 5
    """)
    plugin = load(tmp_path, "conftest.py", """
        def wrapper(recorder, out):
            recorder.start("t")
            yield
            out.append(recorder.stop())
    """)
    out = []
    hook = plugin.wrapper(Recorder(str(tmp_path)), out)
    next(hook)
    module.work()
    with pytest.raises(StopIteration):
        next(hook)  # resumed under the tracer, as a pytest hook wrapper is
    (record,) = out
    check_shape(record)
    assert [code["name"] for code in record["codes"]] == ["work"]


def test_files_are_sent_once_per_run(tmp_path):
    first = load(tmp_path, "pkg/one.py", """
        def one():
            return 1
    """)
    second = load(tmp_path, "pkg/two.py", """
        def two():
            return 2
    """)
    recorder = Recorder(str(tmp_path))
    _, record = traced(recorder, first.one)
    assert record["files"] == {"pkg/one.py": (tmp_path / "pkg/one.py").read_text()}
    _, record = traced(recorder, first.one)
    assert record["files"] == {}
    assert record["codes"][0]["id"] == 0  # code ids are per record
    _, record = traced(recorder, second.two)
    assert list(record["files"]) == ["pkg/two.py"]


def test_dot_and_site_packages_directories_are_outside(tmp_path):
    venv = load(tmp_path, ".venv/lib/site-packages/dep.py", """
        def dep():
            return 1
    """)
    vendored = load(tmp_path, "vendor/site-packages/other.py", """
        def other():
            return 2
    """)
    module = load(tmp_path, "pkg/main.py", """
        def main(venv, vendored):
            return venv.dep() + vendored.other()
    """)
    _, record = traced(Recorder(str(tmp_path)), module.main, venv, vendored)
    kinds = {code["name"]: code["kind"] for code in record["codes"]}
    assert kinds == {"main": "repo", "dep": "external", "other": "external"}
    assert list(record["files"]) == ["pkg/main.py"]


# -- the module itself -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "tests/test_a.py", "test/helpers.py", "testing/util.py", "pkg/tests/data/x.json", "conftest.py",
    "pkg/conftest.py", "app/tests.py", "a_test.py", "pkg/a_test.py", "test_.py", "pkg/module.py",
    "docs/tests.rst", "testing_utils.py", "pkg/testing.py", "src/contest.py", "tests", "", "/", "a\\tests\\b.py",
    "pkg/test_data.txt", "my_tests/x.py", "pkg/Tests/x.py", "test.py", "pkg/test_x.pyc",
])
def test_is_test_path_agrees_with_forager(path):
    assert recorder_module.is_test_path(path) == is_test_path(path)


def test_source_is_python_39_and_standard_library_only():
    source = Path(recorder_module.__file__).read_text()
    tree = ast.parse(source, feature_version=(3, 9))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            imported.add(node.module.split(".")[0])
    assert imported, "no imports found: the walk is broken"
    outside = {name for name in imported if name not in sys.stdlib_module_names and name != "__future__"}
    assert outside == set()
    assert "pure" not in ast.get_docstring(tree).splitlines()[0].lower()
