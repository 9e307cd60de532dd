import pytest

from forager.models import FailureCategory, SuiteRun, TestOutcome, TestStatus
from forager.testing.baseline import judge, merge_runs
from forager.testing.diagnose import no_results_cause


def run(exit_code=0, timed_out=False, **statuses):
    return SuiteRun(
        exit_code=exit_code,
        timed_out=timed_out,
        outcomes=[TestOutcome(test_id=k, status=TestStatus(v)) for k, v in statuses.items()],
    )


def test_flaky_when_status_differs_or_missing():
    runs = [run(a="passed", b="passed", c="failed"), run(a="passed", b="failed", d="passed")]
    merged = {b.test_id: b for b in merge_runs(runs)}
    assert not merged["a"].flaky
    assert merged["b"].flaky and merged["b"].status == "passed" and merged["b"].statuses == ["passed", "failed"]
    assert merged["c"].flaky and merged["c"].statuses == ["failed", "missing"]
    assert merged["d"].flaky and merged["d"].status == "passed"


def test_ready_when_a_test_passed():
    runs = [run(1, a="passed", b="failed")] * 2
    assert judge(runs, merge_runs(runs)) == (None, "")


def test_categories():
    no_tests = [run(5)]
    assert judge(no_tests, merge_runs(no_tests))[0] == FailureCategory.no_tests
    crashed = [run(3)]
    assert judge(crashed, merge_runs(crashed))[0] == FailureCategory.tests_error
    all_failed = [run(1, a="failed", b="error")]
    category, cause = judge(all_failed, merge_runs(all_failed))
    assert category == FailureCategory.tests_error and "1 failed, 1 errors" in cause
    slow = [run(124, timed_out=True, a="passed")]
    assert judge(slow, merge_runs(slow))[0] == FailureCategory.timeout


MARKUPSAFE_DRIFT = """ImportError while loading conftest '/testbed/tests/conftest.py'.
tests/conftest.py:3: in <module>
    from jinja2 import Environment
/venv/lib/python3.11/site-packages/jinja2/__init__.py:12: in <module>
    from .environment import Environment
/venv/lib/python3.11/site-packages/jinja2/utils.py:6: in <module>
    from markupsafe import soft_unicode
E   ImportError: cannot import name 'soft_unicode' from 'markupsafe' (/venv/lib/python3.11/site-packages/markupsafe/__init__.py)
"""


@pytest.mark.parametrize("log, line, newer", [
    (MARKUPSAFE_DRIFT, "ImportError: cannot import name 'soft_unicode' from 'markupsafe' (loading conftest tests/conftest.py)",
     True),
    ("ERROR: usage: pytest [options] [file_or_dir] [file_or_dir] [...]\n"
     "pytest: error: unrecognized arguments: --cov=flask --cov-report\n  inifile: /testbed/setup.cfg\n",
     "unrecognized arguments: --cov=flask --cov-report", False),
    ("ERROR: Missing required plugins: pytest-asyncio>=0.21\n", "Missing required plugins: pytest-asyncio>=0.21", False),
    ("ImportError: Error importing plugin \"xdist\": No module named 'xdist'\n",
     "plugin xdist: ImportError: Error importing plugin \"xdist\": No module named 'xdist'", False),
    ("INTERNALERROR> Traceback (most recent call last):\nINTERNALERROR>   File \"x.py\", line 1\n"
     "INTERNALERROR> KeyError: 'nodeid'\n", "KeyError: 'nodeid'", False),
])
def test_a_run_without_results_names_its_cause(log, line, newer):
    cause = no_results_cause(log)
    assert cause is not None and cause.line == line and cause.newer_dependency is newer
    runs = [SuiteRun(exit_code=4, log_tail=log)]
    category, message = judge(runs, merge_runs(runs))
    assert category == FailureCategory.tests_error and message == f"pytest exited 4 without reporting tests: {line}"


def test_a_run_whose_log_names_no_cause_says_so():
    assert no_results_cause("collected 0 items\n") is None
    runs = [SuiteRun(exit_code=3, log_tail="")]
    assert "names no cause" in judge(runs, merge_runs(runs))[1]


def test_a_failed_install_is_named_by_its_error_line_not_its_command():
    from forager.testing.diagnose import install_error_line

    log = """Step 9/14 : RUN : forager-install && timeout 1200 uv pip install --no-cache --exclude-newer 2021-08-01 -e .
 ---> Running in 1deff36bada5
      × Failed to build `tenacity @ file:///testbed`
      ├─▶ The build backend returned an error
      ╰─▶ Call to `setuptools.build_meta.build_editable` failed (exit status: 1)
          TypeError: canonicalize_version() got an unexpected keyword argument 'strip_trailing_zero'
      hint: This usually indicates a problem with the package or the build environment.
Removing intermediate container 1deff36bada5
"""
    line = install_error_line(log)
    assert line == "TypeError: canonicalize_version() got an unexpected keyword argument 'strip_trailing_zero'"
    assert install_error_line("Step 1/2 : FROM x\nRemoving intermediate container 1\n") is None
