"""The trace stage: chosen tests of a ready image (or a task's buggy and fixed states) run under the tracer in a
fresh container, cut into function-level traces, checked, and stored one test at a time.

The tracer (recorder.py, stdlib only) and a ten-line pytest plugin that calls it around each test's call phase
are copied into the container at run time, like the node-id plugin: nothing is installed in the image, and the
run has no network. Every test is traced `runs` times (PYTHONHASHSEED fixed, as in every forager run); a trace
that differs between runs is marked non-deterministic. Tests are traced in chunks, each chunk saved when it
ends, so a rerun with the same tracer version skips what is stored and a killed run loses one chunk at most.
"""

from __future__ import annotations

import fnmatch
import hashlib
import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from forager.config import Settings
from forager.engine.docker_engine import Engine
from forager.jsontext import parse
from forager.models import SuiteRun, TestStatus
from forager.store import Image, Store, Task, Trace, TracedTest
from forager.tasks.evaluate import run_graded
from forager.tasks.grading import GradingSpec, grading_spec, suite_grading
from forager.traces import checks, cwm
from forager.traces.checks import RawTraceError
from forager.traces.cut import cut_functions
from forager.traces.models import FunctionTrace, RawTestTrace

RECORDER_MODULE = "forager_trace_recorder"
PLUGIN_MODULE = "forager_trace"
OUTPUT_PREFIX = "traces-"  # one JSON-lines file per pytest process: xdist workers never share a file
PLUGIN_SOURCE = '''
"""forager trace: each test's call phase under the recorder; one JSON line per test, written as it ends."""
import json
import os

import pytest

from forager_trace_recorder import Recorder

_RECORDER = Recorder(os.getcwd(), max_events={max_events}, max_calls={max_calls})
_OUT = os.path.join(os.environ["FORAGER_OUT_DIR"], "{prefix}%d.jsonl" % os.getpid())


def pytest_configure(config):
    # a test the tracer stopped (a __repr__ that never ends, past the deadline) fails; pytest's own tracebacks
    # would show each frame's arguments with repr and hang on that same object: Python's tracebacks show none
    config.option.tbstyle = "native"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    _RECORDER.start(item.nodeid)
    try:
        yield
    finally:
        record = _RECORDER.stop()
        with open(_OUT, "a") as handle:
            handle.write(json.dumps(record) + "\\n")
'''
RECORDER_SOURCE = (Path(__file__).with_name("recorder.py")).read_text()
# the tracer's identity: what it records changes with either file, and a rerun with another version traces again
TRACER_VERSION = hashlib.sha256((RECORDER_SOURCE + PLUGIN_SOURCE).encode()).hexdigest()[:12]
SUITE = "suite"


class TraceOptions(BaseModel):
    """How tests are traced and cut; stored with every traced test (depth, seed, tracer version)."""

    depth: int = Field(default=1, ge=0, description="nested calls traced this deep; deeper ones are stepped over")
    limit: int = Field(default=20, ge=1, description="tests traced per image (sampled from the baseline's passing)")
    seed: int = Field(default=0, description="seed of the test sample")
    max_events: int = Field(default=10_000, ge=1, description="a function-level trace past this many line events is"
                                                              " dropped (CWM: 10k)")
    max_bytes: int = Field(default=1_000_000, ge=1, description="a trace whose text passes this is dropped (CWM: 1 MB)")
    raw_events: int = Field(default=1_000_000, ge=1, description="raw events per test before tracing stops")
    calls_per_function: int = Field(default=5, ge=1, description="activations of one function kept per test")
    include_tests: bool = Field(default=False, description="functions in test files are entry points too")
    runs: int = Field(default=2, ge=1, description="times each test is traced; traces that differ are"
                                                   " non-deterministic")
    case_timeout: float = Field(default=120, gt=0, description="seconds one traced test may take")
    chunk: int = Field(default=20, ge=1, description="tests per container")
    jobs: int = Field(default=1, ge=1, description="containers at once")


class Subject(BaseModel):
    """What is traced: an image's suite, or one state (bug or fix) of a task."""

    image: Image
    spec: GradingSpec
    patch: str = ""
    tests: list[str]
    task: Task | None = None
    variant: str = SUITE

    @property
    def key(self) -> str:
        return SUITE if self.task is None else f"task:{self.task.id}:{self.variant}"


class TraceReport(BaseModel):
    """What one `forager trace` subject did (a table row, a JSON object)."""

    image_id: int
    repo: str = ""
    subject: str
    python: str | None = None
    tests: int = 0
    skipped: int = Field(default=0, description="already traced by this tracer version")
    traced: int = 0
    tests_dropped: dict[str, int] = Field(default_factory=dict)
    traces: int = 0
    dropped: dict[str, int] = Field(default_factory=dict, description="function-level traces dropped, by reason")
    nondeterministic: int = 0
    raw_events: int = 0
    line_events: int = 0
    bug_line_seen: int | None = None
    seconds: float = 0.0


def select_tests(passing: list[str], *, selector: str | None, limit: int, seed: int) -> list[str]:
    """Up to `limit` of the passing tests, sampled with `seed` (pure). A selector (comma-separated) keeps the
    tests that equal a part, start with it (a file, a class) or match it as a glob."""
    chosen = passing
    if selector:
        parts = [part.strip() for part in selector.split(",") if part.strip()]
        chosen = [t for t in passing if any(t == p or t.startswith(p) or fnmatch.fnmatchcase(t, p) for p in parts)]
    if len(chosen) > limit:
        chosen = random.Random(seed).sample(chosen, limit)
    return sorted(chosen)


def read_records(files: dict[str, bytes]) -> tuple[list[RawTestTrace], int]:
    """The tracer's records from a run's output files, and how many lines were unreadable (a process killed
    mid-write leaves a partial last line)."""
    records, broken = [], 0
    for name in sorted(files):
        if not (name.startswith(OUTPUT_PREFIX) and name.endswith(".jsonl")):
            continue
        for line in files[name].splitlines():
            if not line.strip():
                continue
            try:
                records.append(RawTestTrace.model_validate(parse(line)))
            except (ValueError, ValidationError):
                broken += 1
    return records, broken


def plugins(options: TraceOptions) -> dict[str, str]:
    return {RECORDER_MODULE: RECORDER_SOURCE,
            PLUGIN_MODULE: PLUGIN_SOURCE.format(max_events=options.raw_events, max_calls=options.calls_per_function,
                                                prefix=OUTPUT_PREFIX)}


def suite_subject(image: Image, settings: Settings, tests: list[str]) -> Subject:
    return Subject(image=image, spec=suite_grading(image, settings).model_copy(update={"tests": tests}), tests=tests)


def task_subjects(task: Task, image: Image, settings: Settings) -> list[Subject]:
    """The task's FAIL_TO_PASS tests in its buggy state (the start state) and fixed (the gold patch applied)."""
    tests = sorted(task.fail_to_pass)
    spec = grading_spec(task, image, settings, tests=tests)
    return [Subject(image=image, spec=spec, tests=tests, task=task, variant="bug"),
            Subject(image=image, spec=spec, patch=task.gold_patch, tests=tests, task=task, variant="fix")]


class Tracer:
    """Runs subjects under the tracer and stores what they give."""

    def __init__(self, settings: Settings, store: Store, engine: Engine):
        self.settings, self.store, self.engine = settings, store, engine

    def trace(self, subject: Subject, options: TraceOptions,
              on_progress: Callable[[int, int], None] = lambda done, total: None) -> TraceReport:
        started = time.monotonic()
        image = subject.image
        repo = self.store.repo(image.repo_id)
        report = TraceReport(image_id=image.id, repo=repo.name if repo else "", subject=subject.key,
                             python=image.python_version, tests=len(subject.tests))
        done = self.store.traced(image.id, subject.key, TRACER_VERSION)
        todo = [t for t in subject.tests if t not in done]
        report.skipped = len(subject.tests) - len(todo)
        chunks = [todo[i : i + options.chunk] for i in range(0, len(todo), options.chunk)]
        finished = report.skipped
        on_progress(finished, len(subject.tests))
        with ThreadPoolExecutor(max_workers=options.jobs) as pool:
            for rows in pool.map(lambda chunk: self._chunk(subject, chunk, options), chunks):
                self.store.save_traced(rows)
                _count(report, rows)
                finished += len(rows)
                on_progress(finished, len(subject.tests))
        report.seconds = round(time.monotonic() - started, 2)
        return report

    def _chunk(self, subject: Subject, tests: list[str], options: TraceOptions) -> list[tuple[TracedTest, list[Trace]]]:
        spec = subject.spec.model_copy(update={"tests": tests, "case_timeout": options.case_timeout})
        timeout = int(min(4 * 3600, 60 + options.case_timeout * len(tests)))
        runs = [run_graded(self.engine, spec, subject.patch, plugins=plugins(options), timeout=timeout)
                for _ in range(options.runs)]
        records = [_by_test(read_records(run.files)[0]) for run in runs]
        files: dict[str, str] = {}
        for record in records[0].values():
            files.update(record.files)
        first = runs[0]
        statuses = first.statuses()
        durations = {o.test_id: o.duration for o in first.outcomes}
        rows = []
        for test in tests:
            row = TracedTest(
                image_id=subject.image.id, task_id=subject.task.id if subject.task else None,
                variant=subject.variant, subject=subject.key, test_id=test, tracer_version=TRACER_VERSION,
                python_version=subject.image.python_version, seed=options.seed, depth=options.depth,
                test_status=statuses.get(test), seconds=round(durations.get(test, 0.0), 4),
            )
            raw = records[0].get(test)
            if raw is None:
                if first.setup_error is None and test not in statuses and not first.timed_out:
                    continue  # never ran (pytest stopped first): traced again next time
                row.status, row.reason = "failed", _no_record(first, test)
                rows.append((row, []))
                continue
            rows.append(self._traced(row, raw, [r.get(test) for r in records[1:]], files, subject, options))
        return rows

    def _traced(self, row: TracedTest, raw: RawTestTrace, again: list[RawTestTrace | None], files: dict[str, str],
                subject: Subject, options: TraceOptions) -> tuple[TracedTest, list[Trace]]:
        row.status = {"complete": "traced"}.get(raw.outcome, raw.outcome)
        row.reason = raw.reason
        row.raw_events = len(raw.events)
        row.line_events = sum(1 for event in raw.events if event and event[0] == "line")
        try:
            cut = self._cut(raw, files, options)
            repeats = [self._keys(self._cut(other, files, options).traces) if other is not None else {}
                       for other in again]
        except RawTraceError as exc:  # a record the tracer wrote wrongly: the test is kept out, with why
            row.status, row.reason = "failed", f"unreadable trace record: {exc}"
            return row, []
        row.dropped = dict(cut.dropped)
        if raw.calls_skipped:  # past the per-function cap in the container already: never recorded
            row.dropped["calls per function"] = row.dropped.get("calls per function", 0) + raw.calls_skipped
        traces, own = [], set()
        for function in cut.traces:
            text = cwm.serialise(function)
            sha = cwm.trace_sha256(text)
            key = (function.path, function.qualname, function.ordinal)
            own.add(key)
            deterministic = all(seen.get(key) == sha for seen in repeats) if repeats else None
            traces.append(Trace(
                image_id=row.image_id, task_id=row.task_id, variant=row.variant, test_id=row.test_id,
                path=function.path, qualname=function.qualname, ordinal=function.ordinal, depth=function.depth,
                line_events=function.line_events, events_count=len(function.events), bytes=len(text.encode()),
                sha256=sha, text=text, context=function.context,
                events=[event.model_dump(exclude_defaults=True) for event in function.events],
                return_value=function.return_value, raised=function.raised, return_checked=function.return_checked,
                deterministic=deterministic,
            ))
        row.traces = len(traces)
        if repeats:
            # why the keys as well: a trace only one run has is a difference too
            row.deterministic = all(t.deterministic for t in traces) and all(set(seen) == own for seen in repeats)
        if subject.variant == "bug" and subject.task is not None:
            row.bug_line_seen = checks.bug_line_seen([raw], subject.task.gold_patch)
        return row, traces

    @staticmethod
    def _cut(raw: RawTestTrace, files: dict[str, str], options: TraceOptions):
        return cut_functions(raw, files, depth=options.depth, include_tests=options.include_tests,
                             calls_per_function=options.calls_per_function, max_line_events=options.max_events,
                             max_bytes=options.max_bytes)

    @staticmethod
    def _keys(traces: list[FunctionTrace]) -> dict[tuple[str, str, int], str]:
        return {(t.path, t.qualname, t.ordinal): cwm.trace_sha256(cwm.serialise(t)) for t in traces}


def _by_test(records: list[RawTestTrace]) -> dict[str, RawTestTrace]:
    return {record.test: record for record in records}


def _no_record(run: SuiteRun, test: str) -> str:
    if run.setup_error is not None:
        return f"the state could not be set up: {run.setup_error.strip().splitlines()[-1][:200]}"
    status = run.statuses().get(test)
    if status is None:
        return "the run ended before the test ran" + (" (deadline)" if run.timed_out else "")
    return f"no trace record (the test {status} before its call phase)"


def _count(report: TraceReport, rows: list[tuple[TracedTest, list[Trace]]]) -> None:
    dropped, tests_dropped = Counter(report.dropped), Counter(report.tests_dropped)
    for row, traces in rows:
        if row.status == "traced" or row.status == "cut":
            report.traced += 1
        if row.status != "traced":
            tests_dropped[row.status] += 1
        dropped.update(row.dropped or {})
        report.traces += len(traces)
        report.nondeterministic += sum(1 for t in traces if t.deterministic is False)
        report.raw_events += row.raw_events
        report.line_events += row.line_events
        if row.bug_line_seen is not None:
            report.bug_line_seen = (report.bug_line_seen or 0) + int(row.bug_line_seen)
    report.dropped, report.tests_dropped = dict(dropped), dict(tests_dropped)


def passing_tests(store: Store, image_id: int) -> list[str]:
    return [t.test_id for t in store.baseline(image_id) if t.status == TestStatus.passed and not t.flaky]
