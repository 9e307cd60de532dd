"""A test that never returns is one failed test, not a suite that times out: the per-test limit in baseline runs,
and the one rerun without a test that still takes a run down (here: one that ignores the alarm)."""

from __future__ import annotations

from forager.images.pipeline import ImageBuilder
from forager.models import EnvSpec, RepoRef
from forager.testing.runner import TAKEN_DOWN, run_suite
from tests.conftest import minimal_pyproject

PYPROJECT = minimal_pyproject("slowcalc")

REPO = {
    "pyproject.toml": PYPROJECT,
    "slowcalc/__init__.py": "def add(a, b):\n    return a + b\n",
    "tests/test_calc.py": (
        "import time\n\nfrom slowcalc import add\n\n\n"
        "def test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_hang():\n    # a live server that is never stopped, say\n    time.sleep(10**6)\n\n\n"
        "def test_after():\n    assert add(-1, 1) == 0\n"
    ),
}
# Copied into the image for one run: a test that the alarm cannot stop, so only the suite deadline does.
STUCK = (
    "import signal\nimport time\n\n\n"
    "def test_stuck():\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    time.sleep(10**6)\n"
)
CASE_LIMIT = 3


def test_a_hanging_test_fails_alone_and_the_image_is_ready(repo_factory, settings, store, engine):
    root, (commit,) = repo_factory("slowcalc", REPO)
    builder = ImageBuilder(settings.model_copy(update={"test_case_timeout": CASE_LIMIT}), store, engine)
    result = builder.build(RepoRef(url=str(root), ref=commit))

    assert result.status == "ready", result.message
    assert result.category != "timeout"
    assert (result.passed, result.failed, result.errors) == (2, 1, 0)
    baseline = {b.test_id: b for b in store.baseline(result.image_id)}
    hang = baseline["tests/test_calc.py::test_hang"]
    assert hang.status == "failed" and hang.statuses == ["failed", "failed"] and not hang.flaky
    assert baseline["tests/test_calc.py::test_add"].status == "passed"
    assert baseline["tests/test_calc.py::test_after"].status == "passed"
    assert f"Timeout (>{CASE_LIMIT}s)" in (store.image(result.image_id).log_tail or "")

    # the reason travels with the test's outcome (what a baseline run returns to the builder)
    spec = EnvSpec(**store.image(result.image_id).spec)
    run = run_suite(engine, result.tag, spec, repo_path=settings.repo_path, timeout=120, case_timeout=CASE_LIMIT)
    outcomes = {o.test_id: o for o in run.outcomes}
    assert outcomes["tests/test_calc.py::test_hang"].status == "failed"
    assert f"Timeout (>{CASE_LIMIT}s)" in outcomes["tests/test_calc.py::test_hang"].message

    # a test the alarm cannot stop holds the run to its deadline: the rest runs again without it
    stuck = run_suite(engine, result.tag, spec, repo_path=settings.repo_path, timeout=15, case_timeout=CASE_LIMIT,
                      files={f"{settings.repo_path}/tests/test_stuck.py": STUCK.encode()})
    assert not stuck.timed_out, stuck.log_tail
    statuses = stuck.statuses()
    assert statuses == {"tests/test_calc.py::test_add": "passed", "tests/test_calc.py::test_hang": "failed",
                        "tests/test_calc.py::test_after": "passed", "tests/test_stuck.py::test_stuck": "failed"}
    held = next(o for o in stuck.outcomes if o.test_id == "tests/test_stuck.py::test_stuck")
    assert held.message.startswith(TAKEN_DOWN) and "time limit" in held.message
