"""Test and development dependencies declared by packaging and task tools.

Each tool keeps them somewhere else (PEP 735 groups, Poetry groups, PDM, Hatch,
uv, tox, Pipfile, setuptools tests_require); they all end up as PEP 508 strings
installed in the shared dependency layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name

from .configs import Configs, as_list, ini_lines, ini_value, table
from .groups import TEST_GROUPS, pick_groups
from .pep508 import clean_requirement
from .tool_requirements import pipfile_requirement, poetry_requirement

# tox factor-conditional deps ("py38: pytest<7") apply to some environments only.
_TOX_CONDITIONAL = re.compile(r"^[A-Za-z0-9_.,!{}-]+:\s*\S")
_HATCH_ENVS = ("default", *TEST_GROUPS, "hatch-test")


@dataclass
class DeclaredDependencies:
    requirements: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # from tox "-r file" lines, repo-relative
    sources: list[str] = field(default_factory=list)  # "dependency-groups test (4)" for the notes
    dropped: int = 0  # entries that were local, conditional or unparsable

    def add(self, label: str, entries: Any) -> None:
        if not isinstance(entries, list):  # a malformed table: nothing usable
            return
        cleaned = [clean_requirement(e) if isinstance(e, str) else None for e in entries]
        kept = [c for c in cleaned if c]
        self.dropped += len(cleaned) - len(kept)
        if kept:
            self.requirements += kept
            self.sources.append(f"{label} ({len(kept)})")


def _string_lists(data: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: v for k, v in data.items() if isinstance(v, list)}


def _dependency_group(groups: dict[str, list[Any]], name: str, seen: frozenset[str]) -> list[Any]:
    """A PEP 735 group with its {include-group = ...} entries expanded (cycles cut)."""
    entries: list[Any] = []
    for entry in groups.get(name, []):
        included = entry.get("include-group") if isinstance(entry, dict) else None
        if isinstance(included, str):
            target = canonicalize_name(included)
            if target not in seen:
                entries += _dependency_group(groups, target, seen | {target})
        else:
            entries.append(entry)
    return entries


def _pep735(deps: DeclaredDependencies, pyproject: dict[str, Any]) -> None:
    groups = {canonicalize_name(k): v for k, v in _string_lists(table(pyproject, "dependency-groups")).items()}
    for name in pick_groups(groups):
        deps.add(f"dependency-groups {name}", _dependency_group(groups, name, frozenset({name})))


def _poetry(deps: DeclaredDependencies, poetry: dict[str, Any]) -> None:
    groups = {name: table(group, "dependencies") for name, group in table(poetry, "group").items()}
    if legacy := table(poetry, "dev-dependencies"):
        groups.setdefault("dev", {}).update(legacy)
    for name in pick_groups(groups):
        entries = [poetry_requirement(dep, spec) for dep, spec in groups[name].items() if dep.lower() != "python"]
        deps.add(f"poetry group {name}", entries)


def _pdm(deps: DeclaredDependencies, pyproject: dict[str, Any]) -> None:
    groups = _string_lists(table(pyproject, "tool", "pdm", "dev-dependencies"))
    for name in pick_groups(groups):
        deps.add(f"pdm dev-dependencies {name}", groups[name])


def _hatch(deps: DeclaredDependencies, pyproject: dict[str, Any]) -> None:
    # Hatch environments inherit from "default", so its dependencies count alongside the test env's.
    envs = table(pyproject, "tool", "hatch", "envs")
    for name in _HATCH_ENVS:
        env = table(envs, name)
        entries = [*as_list(env.get("dependencies")), *as_list(env.get("extra-dependencies"))]
        # "{root}" and similar are Hatch context fields that only resolve inside Hatch.
        deps.add(f"hatch env {name}", [e for e in entries if isinstance(e, str) and "{" not in e])


def _tox(deps: DeclaredDependencies, configs: Configs) -> None:
    entries: list[Any] = []
    for line in ini_lines(ini_value(configs.tox, "testenv", "deps")):
        if line.startswith(("-r", "--requirement")):
            target = re.sub(r"^(-r|--requirement)\s*=?\s*", "", line).replace("{toxinidir}/", "")
            if "{" not in target:
                deps.files.append(target.removeprefix("./"))
        elif line.startswith(("-c", "-e")) or "{" in line or _TOX_CONDITIONAL.match(line):
            deps.dropped += 1
        else:
            entries.append(line)
    native = as_list(table(configs.pyproject, "tool", "tox", "env_run_base").get("deps"))
    entries += [e for e in native if isinstance(e, str)]
    deps.add("tox testenv deps", entries)


def _pipfile(deps: DeclaredDependencies, pipfile: dict[str, Any], include_packages: bool) -> None:
    # [packages] matters only when nothing else installs the runtime dependencies.
    sections = ["dev-packages", *(["packages"] if include_packages else [])]
    for section in sections:
        entries = [pipfile_requirement(name, spec) for name, spec in table(pipfile, section).items()]
        deps.add(f"Pipfile [{section}]", entries)


def _tests_require(deps: DeclaredDependencies, configs: Configs) -> None:
    deps.add("setup.cfg tests_require", ini_lines(configs.setup_cfg("options", "tests_require")))
    deps.add("setup.py tests_require", configs.setup_py.tests_require if configs.setup_py else [])


def declared_dependencies(configs: Configs, project_installed: bool) -> DeclaredDependencies:
    deps = DeclaredDependencies()
    _pep735(deps, configs.pyproject)
    _poetry(deps, table(configs.pyproject, "tool", "poetry"))
    _pdm(deps, configs.pyproject)
    _hatch(deps, configs.pyproject)
    deps.add("uv dev-dependencies", table(configs.pyproject, "tool", "uv").get("dev-dependencies", []))
    _tox(deps, configs)
    _pipfile(deps, configs.pipfile, include_packages=not project_installed)
    _tests_require(deps, configs)
    return deps
