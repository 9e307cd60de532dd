"""A commit's world as of its date: the cut-off day its dependencies resolve to (pure).

The cut-off is the committer date plus a grace (a fix released days after the commit was usually what it
was tested with), rounded up to the first of the next month, so the commits of a month share one cut-off
and so, where their requirements agree, one dependency layer.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from .python_version import RELEASED

GRACE = timedelta(days=14)
# Releases made before an interpreter existed rarely build on it (C extensions): when the commit's Python
# has no base here and a newer one runs it, its dependencies are taken as of that Python's first months.
INTERPRETER_SETTLING = timedelta(days=75)
# Packages exempt from the cut-off: the installers themselves, build backends and what the backends import.
# An old backend may not build the project the way forager installs it (PEP 660 editables), its age is not
# what the code needs, and today's setuptools beside 2021's packaging fails (canonicalize_version() got an
# unexpected keyword, seen on tenacity 8.0.1). Exempt from the date, not from version constraints: old
# pytest still gets the pluggy it asks for.
EXEMPT = (
    "pip", "uv", "setuptools", "wheel", "setuptools-scm", "hatchling", "hatch-vcs", "hatch-fancy-pypi-readme",
    "flit-core", "poetry-core", "pdm-backend", "pdm-pep517", "scikit-build-core", "meson-python", "maturin",
    "packaging", "pyparsing", "tomli", "trove-classifiers", "pathspec", "pluggy", "editables", "typing-extensions",
    "importlib-metadata", "zipp", "pyproject-metadata", "setuptools-rust", "semantic-version",
)
# What pytest has depended on over its releases. A project among them (pluggy, packaging, attrs...) is installed
# as its development version, which other releases' ranges may exclude (pytest 5.4 asks pluggy<1.0 while the
# repository is 1.0.0.dev30): a resolver then picks a pytest old enough to ask for nothing (3.2, with pluggy
# vendored), and the suite does not run. The project's own CI (tox) installed over such ranges; so does forager.
TEST_RUNNER_DEPENDENCIES = frozenset({
    "pluggy", "iniconfig", "packaging", "attrs", "py", "more-itertools", "atomicwrites", "colorama", "exceptiongroup",
    "tomli", "wcwidth", "six", "setuptools", "importlib-metadata", "zipp", "pygments", "funcsigs", "pathlib2",
})
LATEST, COMMIT = "latest", "commit"
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class AsOfError(ValueError):
    """A --as-of value that is neither latest, commit nor a day."""


def parse_as_of(value: str) -> str:
    """`latest`, `commit` or a day YYYY-MM-DD, checked; the error says what is accepted."""
    value = value.strip().lower()
    if value in (LATEST, COMMIT):
        return value
    if _DAY.fullmatch(value):
        try:
            date.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise AsOfError(f"as-of {value!r}: give latest, commit or a day such as 2021-06-30")


def cutoff(mode: str, committed_at: datetime | None, today: date) -> tuple[date | None, str | None]:
    """(the cut-off day or None for today's releases, a note when the commit's date could not be used)."""
    if mode == LATEST:
        return None, None
    if mode != COMMIT:
        day = date.fromisoformat(mode)
        return (day, None) if day < today else (None, None)  # today or later: today's releases
    if committed_at is None:
        return None, "the commit's date is unknown: dependencies as of today"
    first_of_next = _first_of_next_month((committed_at + GRACE).date())
    if first_of_next > today:
        if committed_at.date() > today:
            return None, f"the commit is dated {committed_at.date()}, after today: dependencies as of today"
        return None, None  # a recent commit: today's releases are its world
    return first_of_next, None


def _first_of_next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def for_interpreter(day: date, python: str) -> tuple[date, str | None]:
    """The cut-off for a build on `python`: `day`, or later when `python` came out too recently before it."""
    released = RELEASED.get(python)
    if released is None:
        return day, None
    floor = _first_of_next_month(released + INTERPRETER_SETTLING)
    if floor <= day:
        return day, None
    return floor, (f"dependencies as of {floor}, not {day}: Python {python} (released {released}) runs this commit, "
                   "and releases from before it rarely build on it")


def resolution_note(as_of: date | None) -> str:
    if as_of is None:
        return "dependencies: today's releases (pip)"
    return (f"dependencies: releases uploaded before {as_of} (uv pip --exclude-newer; "
            f"exempt: {', '.join(EXEMPT[:4])} and other build backends)")
