"""Grading determinism (`forager tasks verify`): a task's gold patch and its empty patch graded K times each in
fresh containers, some runs with the tests in a seeded shuffled order.

A test whose verdict changes between runs in the order grading uses (the file order pytest collects) is
non-deterministic: it leaves FAIL_TO_PASS/PASS_TO_PASS, the task's test lists get a new version (each grade
names the version it used, so episodes graded before stay readable), and a task left without a FAIL_TO_PASS
test becomes invalid with that reason. A test whose verdict changes only when the order is shuffled is
order-dependent: recorded, kept (grading never shuffles). The record is `task.integrity["determinism"]`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from forager import __version__
from forager.config import Settings
from forager.engine.docker_engine import Engine
from forager.models import TestStatus
from forager.store import Store, Task
from forager.tasks.evaluate import grade, run_graded
from forager.tasks.grading import GradingSpec, grading_spec

ORDER_MODULE = "forager_order"
# Loaded on shuffled runs only, like the node-id plugin: the collected tests in a seeded random order, last
# of every reordering plugin so its order is the one that runs.
ORDER_PLUGIN = """
import random

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    random.Random({seed}).shuffle(items)
"""
GOLD, EMPTY = "gold", "empty"
KEY = "determinism"


class GradeRun(BaseModel):
    """One graded run of verify: which patch, which order, each test's verdict."""

    patch: str  # gold | empty
    shuffled: bool
    seed: int | None = None
    statuses: dict[str, str] = Field(default_factory=dict)
    error: str | None = None


class Determinism(BaseModel):
    """What `tasks verify` found (task.integrity["determinism"])."""

    runs: int = Field(description="K: graded runs per patch")
    shuffled_runs: int = Field(description="of those, how many ran the tests in a shuffled order")
    gold_resolved: int = Field(description="runs (of K) in which the gold patch resolved the task, with the lists as"
                                           " they were")
    bug_failed: int = Field(description="runs (of K) in which the empty patch left the task unresolved")
    flips: dict[str, int] = Field(default_factory=dict, description="test -> runs whose verdict was not the majority's"
                                                                    " (per patch, in grading's order)")
    nondeterministic: list[str] = Field(default_factory=list, description="flipped in grading's order: dropped")
    order_dependent: list[str] = Field(default_factory=list, description="flipped only when shuffled: kept")
    dropped_fail_to_pass: list[str] = Field(default_factory=list)
    dropped_pass_to_pass: list[str] = Field(default_factory=list)
    tests_version: int = Field(description="the version of the lists after verify")
    verified: bool = Field(description="valid, and in every run in grading's order the gold patch resolved and the"
                                       " empty patch did not, with the lists after verify")
    errors: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    verified_at: str = ""
    forager_version: str = __version__


def is_verified(integrity: dict | None) -> bool:
    """Whether a task's integrity record says `tasks verify` passed it (pure)."""
    return bool(((integrity or {}).get(KEY) or {}).get("verified"))


def _passed(status: str | None) -> bool:
    return status == TestStatus.passed


def judge(runs: list[GradeRun], fail_to_pass: list[str], pass_to_pass: list[str]) -> dict:
    """The verdicts of K runs per patch as a determinism record's fields (pure).

    Expected: with the gold patch every listed test passes; with the empty patch FAIL_TO_PASS tests do not and
    PASS_TO_PASS tests do. A test whose pass/fail differs between runs of one patch in grading's order is
    non-deterministic and dropped; one that differs only between grading's order and shuffled runs is
    order-dependent. A test that always gives the wrong verdict (a FAIL_TO_PASS test passing with the bug) is
    dropped too: it cannot tell a fix from no fix.
    """
    listed = [*fail_to_pass, *pass_to_pass]
    flips: dict[str, int] = defaultdict(int)
    nondeterministic, order_dependent, wrong = set(), set(), set()
    for patch in (GOLD, EMPTY):
        plain = [r for r in runs if r.patch == patch and not r.shuffled and r.error is None]
        shuffled = [r for r in runs if r.patch == patch and r.shuffled and r.error is None]
        for test in listed:
            verdicts = [_passed(r.statuses.get(test)) for r in plain]
            expected = patch == GOLD or test in pass_to_pass
            if verdicts:
                majority = sum(verdicts) * 2 >= len(verdicts)
                flips[test] += sum(v != majority for v in verdicts)
                if len(set(verdicts)) > 1:
                    nondeterministic.add(test)
                elif verdicts[0] != expected:
                    wrong.add(test)
                others = [_passed(r.statuses.get(test)) for r in shuffled]
                if test not in nondeterministic and any(v != verdicts[0] for v in others):
                    order_dependent.add(test)
                    flips[test] += sum(v != verdicts[0] for v in others)
    dropped = nondeterministic | wrong
    return {
        "flips": {t: n for t, n in flips.items() if n},
        "nondeterministic": sorted(nondeterministic),
        "order_dependent": sorted(order_dependent - dropped),
        "dropped_fail_to_pass": [t for t in fail_to_pass if t in dropped],
        "dropped_pass_to_pass": [t for t in pass_to_pass if t in dropped],
    }


def resolved_in(run: GradeRun, fail_to_pass: list[str], pass_to_pass: list[str]) -> bool:
    """Whether a run's verdicts resolve the task with these lists (pure)."""
    return (run.error is None and bool(fail_to_pass) and all(_passed(run.statuses.get(t)) for t in fail_to_pass)
            and all(_passed(run.statuses.get(t)) for t in pass_to_pass))


def plan(runs: int, seed: int) -> list[tuple[str, bool, int | None]]:
    """(patch, shuffled, order seed) of every graded run (pure): K per patch; every second run shuffled."""
    return [(patch, i % 2 == 1, seed + i if i % 2 == 1 else None) for i in range(runs) for patch in (GOLD, EMPTY)]


class Verifier:
    """Grades tasks K times per patch and records what it found on them."""

    def __init__(self, settings: Settings, store: Store, engine: Engine):
        self.settings, self.store, self.engine = settings, store, engine

    def verify(self, task: Task, *, runs: int = 5, seed: int = 0, jobs: int = 1,
               on_run: Callable[[], None] = lambda: None) -> Determinism:
        started = time.monotonic()
        image = self.store.image(task.image_id)
        spec = grading_spec(task, image, self.settings)
        planned = plan(runs, seed)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            graded = list(pool.map(lambda one: self._run(spec, task, *one, on_run), planned))
        f2p, p2p = list(task.fail_to_pass), list(task.pass_to_pass)
        found = judge(graded, f2p, p2p)
        plain = [r for r in graded if not r.shuffled]
        record = Determinism(
            runs=runs, shuffled_runs=sum(1 for p in planned if p[1] and p[0] == GOLD),
            gold_resolved=sum(resolved_in(r, f2p, p2p) for r in graded if r.patch == GOLD),
            bug_failed=sum(not resolved_in(r, f2p, p2p) and r.error is None for r in graded if r.patch == EMPTY),
            tests_version=task.tests_version or 1, verified=False,
            errors=sorted({r.error for r in graded if r.error}), verified_at=datetime.now(UTC).isoformat(), **found,
        )
        self._apply(task, record, plain)
        record.seconds = round(time.monotonic() - started, 2)
        task.integrity = {**(task.integrity or {}), KEY: record.model_dump(mode="json")}
        self.store.save_task(task)
        return record

    def _run(self, spec: GradingSpec, task: Task, patch: str, shuffled: bool, seed: int | None,
             on_run: Callable[[], None]) -> GradeRun:
        plugins = {ORDER_MODULE: ORDER_PLUGIN.format(seed=seed)} if shuffled else None
        run = run_graded(self.engine, spec, task.gold_patch if patch == GOLD else "", plugins=plugins)
        verdict = grade(run, spec.fail_to_pass, spec.pass_to_pass)
        on_run()
        return GradeRun(patch=patch, shuffled=shuffled, seed=seed, statuses=verdict.statuses,
                        error=verdict.error if not verdict.applied else ("timed out" if verdict.timed_out else None))

    @staticmethod
    def _apply(task: Task, record: Determinism, plain: list[GradeRun]) -> None:
        """Drop what flipped from the lists (a new version), and decide whether the task is verified."""
        dropped = {*record.dropped_fail_to_pass, *record.dropped_pass_to_pass}
        if dropped:
            task.fail_to_pass = [t for t in task.fail_to_pass if t not in dropped]
            task.pass_to_pass = [t for t in task.pass_to_pass if t not in dropped]
            task.tests_version = (task.tests_version or 1) + 1
            record.tests_version = task.tests_version
            if not task.fail_to_pass and task.valid:
                task.valid = False
                task.invalid_reason = ("verify: no FAIL_TO_PASS test gives the same verdict in every run "
                                       f"({', '.join(record.dropped_fail_to_pass)[:300]})")
        gold = [r for r in plain if r.patch == GOLD]
        empty = [r for r in plain if r.patch == EMPTY]
        record.verified = bool(task.valid and gold and empty
                               and all(resolved_in(r, task.fail_to_pass, task.pass_to_pass) for r in gold)
                               and not any(resolved_in(r, task.fail_to_pass, task.pass_to_pass) for r in empty)
                               and all(r.error is None for r in plain))
