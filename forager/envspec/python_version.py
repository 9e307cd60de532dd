"""Choosing the image's Python: declared constraints filter, .python-version pins, hints rank."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from packaging.specifiers import SpecifierSet

from .configs import Configs, table
from .constraints import loose_pep440, poetry_to_pep440
from .errors import DetectError

# Constraints are checked against several patch releases so ">=3.8.1" allows 3.8 and "==3.11" allows 3.11.
_PATCHES = range(30)
_PIN = re.compile(r"^(?:c?python-?)?(\d+)\.(\d+)")
# The day each minor version was first released (python.org): a commit is built with the Python that was
# current at its date, so its dependencies as of that date have wheels and support for it.
RELEASED = {
    "3.6": date(2016, 12, 23), "3.7": date(2018, 6, 27), "3.8": date(2019, 10, 14), "3.9": date(2020, 10, 5),
    "3.10": date(2021, 10, 4), "3.11": date(2022, 10, 24), "3.12": date(2023, 10, 2), "3.13": date(2024, 10, 7),
    "3.14": date(2025, 10, 7),
}


@dataclass(frozen=True)
class PythonConstraint:
    source: str
    text: str
    alternatives: tuple[SpecifierSet, ...]

    def allows(self, version: str) -> bool:
        return any(s.contains(f"{version}.{p}") for s in self.alternatives for p in _PATCHES)

    def __str__(self) -> str:
        return f"{self.source} {self.text}"


def python_constraints(configs: Configs) -> tuple[list[PythonConstraint], list[str]]:
    """Every declared constraint (all must hold) and notes about the unreadable ones."""
    setup_py = configs.setup_py
    declared = [
        ("requires-python", table(configs.pyproject, "project").get("requires-python"), loose_pep440),
        ("poetry python", table(configs.pyproject, "tool", "poetry", "dependencies").get("python"), poetry_to_pep440),
        (
            "flit requires-python",
            table(configs.pyproject, "tool", "flit", "metadata").get("requires-python"),
            loose_pep440,
        ),
        ("setup.cfg python_requires", configs.setup_cfg("options", "python_requires"), loose_pep440),
        ("setup.py python_requires", setup_py.python_requires if setup_py else None, loose_pep440),
    ]
    constraints, notes = [], []
    for source, text, parse in declared:
        if not isinstance(text, str) or not text.strip():
            continue
        alternatives = parse(text)
        if alternatives is None:
            notes.append(f"ignored unparsable {source} {text!r}")
        else:
            constraints.append(PythonConstraint(source, text.strip(), tuple(alternatives)))
    return constraints, notes


def read_pin(text: str | None) -> str | None:
    """X.Y from a .python-version file's first entry (X.Y or X.Y.Z); None for other interpreters."""
    for line in (text or "").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = _PIN.match(line)
            return f"{match.group(1)}.{match.group(2)}" if match else None
    return None


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def current_at(day: date) -> str:
    """The newest Python minor version released by `day` (the oldest known one before them all)."""
    out = [version for version, released in RELEASED.items() if released <= day]
    return max(out, key=_key) if out else min(RELEASED, key=_key)


def nearest(target: str, versions: list[str]) -> str:
    """The version closest to `target` in release order; between two as close, the older one (a commit's
    code is likelier to run on the Python before its time than on the one after it)."""
    ladder = sorted({target, *versions, *RELEASED}, key=_key)
    position = ladder.index(target)
    return min(versions, key=lambda v: (abs(ladder.index(v) - position), _key(v)))


def choose_python(
    available: list[str],
    constraints: list[PythonConstraint],
    pin: str | None,
    hints: dict[str, set[str]],
    as_of: date | None = None,
) -> tuple[str, list[str]]:
    """The chosen version and the notes explaining it. With `as_of`, the Python current at that date when
    it is available and allowed, else the nearest one that is."""
    if not available:
        raise DetectError("no Python versions are available for base images; set FORAGER_PYTHON_VERSIONS")
    allowed = [v for v in available if all(c.allows(v) for c in constraints)]
    rule = " and ".join(map(str, constraints))
    if not allowed:
        quoted = " and ".join(f"{c.source} '{c.text}'" for c in constraints)
        raise DetectError(
            f"{quoted} excludes every available Python ({', '.join(available)}); "
            "set FORAGER_PYTHON_VERSIONS or bootstrap a base for a matching version"
        )
    notes = []
    if pin is not None:
        if pin in allowed:
            return pin, [f"python {pin}: pinned by .python-version"]
        why = "not available" if pin not in available else f"excluded by {rule}"
        notes.append(f".python-version {pin} ignored: {why}")
    if as_of is not None:
        target = current_at(as_of)
        chosen = nearest(target, allowed)
        within = f", allowed by {rule}" if rule else ""
        if chosen == target:
            return chosen, [*notes, f"python {chosen}: current at {as_of}{within}"]
        missing = "excluded by " + rule if target in available else "no base image for it here"
        return chosen, [*notes, f"python {chosen}: nearest to {target}, current at {as_of} ({missing}){within}"]
    for version in allowed:
        sources = [source for source, versions in hints.items() if version in versions]
        if sources:
            within = f" among versions allowed by {rule}" if rule else ""
            return version, [*notes, f"python {version}: preferred by {', '.join(sources)}{within}"]
    reason = f"allowed by {rule}" if rule else "(no Python constraint declared)"
    return allowed[0], [*notes, f"python {allowed[0]}: first available version {reason}"]
