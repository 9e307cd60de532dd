"""Where the repository's tests live, judged from paths and pytest's file-name patterns."""

from __future__ import annotations

from fnmatch import fnmatch

from .layout import split

DEFAULT_TEST_PATTERNS = ("test_*.py", "*_test.py")
# Single-module suites of older projects (`tests.py`, `test.py`), which pytest's patterns do not match.
_MODULE_NAMES = ("tests.py", "test.py")
TEST_DIR_NAMES = ("tests", "test")
_ROOT_TEST_DIRS = ("tests", "test", "testing")
# Test files under these are not the suite: leaving them out of test_args is fine, requiring them is not.
_NOT_SUITE_DIRS = {"docs", "doc", "benchmarks", "benchmark", "bench", "asv_bench"}


def is_test_file(path: str, patterns: tuple[str, ...] = DEFAULT_TEST_PATTERNS) -> bool:
    _, name = split(path)
    return name.endswith(".py") and any(fnmatch(name, p) for p in patterns)


def in_test_dir(path: str) -> bool:
    directory, _ = split(path)
    return any(part in TEST_DIR_NAMES for part in directory.split("/"))


def is_test_source(path: str) -> bool:
    """Python files whose imports, fixtures and markers describe what the suite needs."""
    _, name = split(path)
    return name.endswith(".py") and (name == "conftest.py" or is_test_file(path) or in_test_dir(path))


def has_tests(paths: set[str], patterns: tuple[str, ...]) -> bool:
    return any(
        is_test_file(p, patterns) or (p.endswith(".py") and in_test_dir(p)) or split(p)[1] in _MODULE_NAMES
        for p in paths
    )


def _candidate_dir(path: str) -> str | None:
    """The obvious test directory a path is under: tests/, test/, testing/ or src/PKG/tests/."""
    parts = path.split("/")
    if len(parts) > 1 and parts[0] in _ROOT_TEST_DIRS:
        return parts[0]
    if len(parts) > 3 and parts[0] == "src" and parts[2] in TEST_DIR_NAMES:
        return "/".join(parts[:3])
    return None


def obvious_test_dirs(paths: set[str], patterns: tuple[str, ...]) -> list[str]:
    """The test directories, when every test file outside docs/benchmarks lies in one; else []."""
    test_files = [p for p in paths if is_test_file(p, patterns)]
    dirs: set[str] = set()
    for path in test_files:
        candidate = _candidate_dir(path)
        if candidate is not None:
            dirs.add(candidate)
        elif path.split("/")[0] not in _NOT_SUITE_DIRS:
            return []  # tests elsewhere too: let pytest collect from the root
    order = {name: i for i, name in enumerate(_ROOT_TEST_DIRS)}
    return sorted(dirs, key=lambda d: (order.get(d, len(order)), d))


def unmatched_test_modules(paths: set[str], patterns: tuple[str, ...]) -> list[str]:
    """Test-dir modules pytest would not collect by name, when no file matches the patterns at all.

    Suites such as `tests/test.py` (unittest style) are collected when named on the command line.
    """
    if any(is_test_file(p, patterns) for p in paths):
        return []
    return sorted(
        p for p in paths
        if p.endswith(".py") and p.split("/")[0] not in _NOT_SUITE_DIRS
        and ((in_test_dir(p) and split(p)[1] not in ("conftest.py", "__init__.py")) or split(p)[1] in _MODULE_NAMES)
    )
