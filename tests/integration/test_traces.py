"""`forager trace` on the example repository: a sample of its suite and one task's bug/fix pair traced in real
containers, stored, resumed, checked and exported (JSONL and Parquet, read back with `datasets`)."""

from __future__ import annotations

import json

import pytest

from forager.traces import cwm
from forager.traces.run import TRACER_VERSION

from .conftest import example_tasks, run_cli

LIMIT = 6


@pytest.fixture(scope="module")
def traced(tmp_path_factory, engine):
    settings, store, _builder, repo, tasks = example_tasks(tmp_path_factory.mktemp("trace-env"), engine, mutate=1,
                                                            mine=False)
    suite = run_cli("trace", "--repo", str(repo), "--limit", str(LIMIT), "--json", settings=settings, check=True)
    task = tasks[0]
    pair = run_cli("trace", "--task", task.instance_id, "--json", settings=settings, check=True)
    return settings, store, repo, task, json.loads(suite.stdout), json.loads(pair.stdout)


def test_a_sample_of_the_suite_becomes_function_level_traces(traced):
    _settings, store, _repo, _task, suite, _pair = traced
    (report,) = suite
    assert report["subject"] == "suite" and report["tests"] == LIMIT and report["traced"] == LIMIT, report
    assert report["traces"] > LIMIT and report["nondeterministic"] == 0, report
    tests = store.traced_tests(image_id=report["image_id"])
    assert {t.tracer_version for t in tests} == {TRACER_VERSION} and {t.python_version for t in tests} == {"3.11"}
    traces = [t for t in _traces(store) if t.variant == "suite"]
    assert len(traces) == report["traces"]
    for trace in traces:
        parsed = cwm.parse(trace.text)
        assert [(f.kind, f.locals, f.source, f.value) for f in parsed.frames] == [
            (e["kind"], e.get("locals", {}), e["source"], e.get("value")) for e in trace.events]
        assert "# << START_OF_TRACE" in parsed.context.splitlines()[0] or any(
            line.rstrip().endswith("# << START_OF_TRACE") and line.lstrip().startswith(("def ", "async def "))
            for line in parsed.context.splitlines())
        assert trace.events[0]["kind"] == "call" and trace.events[-1]["kind"] in ("return", "exception")
        # only the repository's code is stepped through: tests' frames are not entry points, outside code is a
        # call and a return
        assert trace.path.startswith("src/ledger/"), trace.path
        assert all(e["kind"] in ("call", "return") for e in trace.events if e.get("path", "").startswith("/"))
        assert trace.deterministic is True and trace.return_checked is not False
    # a test that binds what a function returns saw the value its trace shows
    assert any(t.return_checked for t in traces)


def test_a_rerun_traces_nothing_twice(traced):
    settings, store, repo, _task, suite, _pair = traced
    before = len(_traces(store))
    again = run_cli("trace", "--repo", str(repo), "--limit", str(LIMIT), "--json", settings=settings, check=True)
    (report,) = json.loads(again.stdout)
    assert report["skipped"] == LIMIT and report["traced"] == 0 and report["traces"] == 0, report
    assert len(_traces(store)) == before


def test_a_task_is_traced_with_its_bug_and_with_its_fix(traced):
    _settings, store, _repo, task, _suite, pair = traced
    bug, fix = pair
    assert (bug["subject"], fix["subject"]) == (f"task:{task.id}:bug", f"task:{task.id}:fix")
    assert bug["tests"] == fix["tests"] == len(task.fail_to_pass)
    assert bug["bug_line_seen"] == bug["traced"] > 0, bug  # the line the fix changes ran in the buggy run
    statuses = {(t.variant, t.test_id): t.test_status for t in store.traced_tests(task_id=task.id)}
    assert {statuses[("bug", t)] for t in task.fail_to_pass} == {"failed"}
    assert {statuses[("fix", t)] for t in task.fail_to_pass} == {"passed"}
    pairs = store.trace_pairs()
    by_id = {t.id: t for t in _traces(store)}
    mutated = [t for t in by_id.values() if t.task_id == task.id and t.variant == "bug" and t.qualname == task.symbol]
    assert mutated, f"no trace of the mutated function {task.symbol}"
    changed = [t for t in mutated if t.id in pairs and by_id[pairs[t.id]].text != t.text]
    assert changed, "the bug and the fix gave the same trace of the function the bug is in"


def test_traces_export_as_jsonl_and_parquet_that_datasets_loads(traced, tmp_path):
    import datasets  # the test extra has it
    settings, store, _repo, task, _suite, _pair = traced
    kept = [t for t in _traces(store) if t.deterministic is not False and t.return_checked is not False]
    for suffix in ("jsonl", "parquet"):
        out = tmp_path / f"traces.{suffix}"
        proc = run_cli("export", "--format", "trace", "--out", str(out), "--json", settings=settings, check=True)
        stats = json.loads(proc.stdout)
        assert stats["rows"] == len(kept) and stats["pairs"] > 0 and stats["bytes_per_event"] > 0, stats
        rows = datasets.load_dataset("json" if suffix == "jsonl" else "parquet", data_files=str(out), split="train")
        assert rows.num_rows == len(kept)
        first = rows[0]
        assert first["text"].startswith(cwm.TRACE_CONTEXT_START) and first["events"][0]["kind"] == "call"
        assert {r for r in rows["variant"]} == {"suite", "bug", "fix"}
    only_task = tmp_path / "task.jsonl"
    proc = run_cli("export", "--format", "trace", "--task", task.instance_id, "--min-events", "1", "--out",
                   str(only_task), "--json", settings=settings, check=True)
    rows = [json.loads(line) for line in only_task.read_text().splitlines()]
    assert rows and all(r["task"] == task.instance_id and r["line_events"] >= 1 for r in rows)
    assert all(r["pair_id"] is not None for r in rows if r["qualname"] == task.symbol)
    status = json.loads(run_cli("status", "--json", settings=settings, check=True).stdout)
    (entry,) = status["traces"]
    assert entry["traces"] == len(_traces(store)) and entry["tasks"] == 1


def test_bad_trace_input_gets_one_clear_line(traced):
    settings, *_ = traced
    for args, named in ((("trace",), "one of --repo"), (("trace", "--task", "no-such-task"), "--task 'no-such-task'"),
                        (("trace", "--image", "999"), "--image 999")):
        proc = run_cli(*args, settings=settings)
        assert proc.returncode == 2 and named in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def _traces(store):
    return [trace for trace, *_ in store.iter_traces()]


AWKWARD = '''\
import asyncio


def countdown(n):
    while n > 0:
        yield n
        n -= 1


async def double_later(x):
    await asyncio.sleep(0)
    return 2 * x


def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)


def safe_div(a, b):
    try:
        return a / b
    except ZeroDivisionError:
        return None


def must_be_positive(x):
    if x <= 0:
        raise ValueError("not positive: %r" % (x,))
    return x


class Loud:
    def __repr__(self):
        raise RuntimeError("no repr")


class Endless:
    def __repr__(self):
        while True:
            pass


def hold(value):
    kept = [value]
    return len(kept)


def clock():
    import time
    return time.time_ns()
'''
AWKWARD_TESTS = '''\
import asyncio

import pytest

from awk import Endless, Loud, clock, countdown, double_later, fact, hold, must_be_positive, safe_div


def test_generator():
    assert list(countdown(3)) == [3, 2, 1]


def test_coroutine():
    assert asyncio.run(double_later(4)) == 8


def test_recursion():
    result = fact(5)
    assert result == 120


def test_caught():
    assert safe_div(1, 0) is None


def test_uncaught():
    with pytest.raises(ValueError):
        must_be_positive(-1)


def test_repr_raises():
    assert hold(Loud()) == 1


def test_repr_never_ends():
    assert hold(Endless()) == 1


def test_clock():
    assert clock() > 0
'''


def test_awkward_code_gives_valid_traces_or_a_clean_skip(tmp_path, engine):
    """Generators, coroutines, recursion, exceptions caught and uncaught, a __repr__ that raises and one that
    never ends, traced in a real container: every trace parses back, and the endless repr costs its test only."""
    from forager.images.pipeline import ImageBuilder
    from forager.models import RepoRef
    from forager.store import Store
    from forager.traces.run import TraceOptions, Tracer, passing_tests, select_tests, suite_subject

    from .conftest import module_settings, small_repo

    repo = small_repo(tmp_path / "awk", "awk", AWKWARD, AWKWARD_TESTS)
    settings = module_settings(tmp_path)
    store = Store(settings.db)
    built = ImageBuilder(settings, store, engine).build(RepoRef(url=str(repo)))
    assert built.status == "ready" and built.passed == 8, built.message
    image = store.image(built.image_id)
    tests = select_tests(passing_tests(store, image.id), selector=None, limit=10, seed=0)
    report = Tracer(settings, store, engine).trace(suite_subject(image, settings, tests),
                                                   TraceOptions(depth=2, case_timeout=5))
    rows = {t.test_id.rsplit("::", 1)[1]: t for t in store.traced_tests(image_id=image.id)}
    endless = rows.pop("test_repr_never_ends")
    assert endless.status == "dropped" and "interrupted" in endless.reason and endless.traces == 0, endless
    assert {name: row.status for name, row in rows.items()} == {name: "traced" for name in rows}
    # the clock differs between the two runs of its test: marked, and left out of an export unless asked for
    assert rows.pop("test_clock").deterministic is False and all(row.deterministic for row in rows.values())
    assert report.nondeterministic == 1, report
    traces = {}
    for trace, *_ in store.iter_traces(image_id=image.id):
        parsed = cwm.parse(trace.text)
        assert len(parsed.frames) == trace.events_count and "0x" not in trace.text
        traces.setdefault(trace.qualname, []).append(trace)
    assert len(traces["countdown"]) == 4  # each resumption is an activation: three yields and the end
    assert [t.return_value for t in traces["countdown"]] == ["3", "2", "1", "None"]
    assert traces["double_later"][-1].return_value == "8"
    assert [t.return_value for t in traces["fact"]][:2] == ["120", "24"]
    assert traces["safe_div"][0].return_value == "None" and traces["safe_div"][0].raised is None
    assert [e["kind"] for e in traces["safe_div"][0].events].count("exception") == 1
    uncaught = traces["must_be_positive"][0]
    assert uncaught.raised == "ValueError('not positive: -1')" and uncaught.events[-1]["kind"] == "exception"
    assert "<Loud repr raised RuntimeError>" in traces["hold"][0].text
    assert traces["fact"][0].return_checked is True  # `result = fact(5)` bound what the trace returned
    assert [t.deterministic for t in traces["clock"]] == [False]
    from forager.export.traces import TraceExportRequest, export_traces

    stats = export_traces(store, TraceExportRequest(out=tmp_path / "t.jsonl"))
    assert stats.dropped == {"nondeterministic": 1} and stats.rows == sum(map(len, traces.values())) - 1
    assert "clock" not in (tmp_path / "t.jsonl").read_text()
    stats = export_traces(store, TraceExportRequest(out=tmp_path / "all.jsonl", include_nondeterministic=True))
    assert stats.dropped == {} and "clock" in (tmp_path / "all.jsonl").read_text()
