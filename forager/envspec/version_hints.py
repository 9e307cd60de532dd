"""Python versions a repository says it is tested on: hints that rank allowed versions, never constraints.

CI YAML, noxfiles and conda files are scanned with regular expressions rather
than parsed: a hint that is occasionally missed costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from forager.models import RepoTree

from .configs import Configs, as_list, ini_value, table
from .layout import is_environment_path, split

_VERSION = re.compile(r"(?<![\d.])([23])\.(\d{1,2})(?!\d)")
_CLASSIFIER = re.compile(r"^Programming Language :: Python :: ([23]\.\d{1,2})\s*$")
_YAML_KEY = re.compile(r"""^(\s*)(?:-\s*)?["']?python(?:[-_]versions?)?["']?\s*:\s*(.*)$""")
_TOX_FACTOR = re.compile(r"^py(\d)\.?(\d{1,2})$|^(\d)\.(\d{1,2})$")
_CONDA_PYTHON = re.compile(r"^\s*-\s*python\s*[=<>!~]*\s*([23]\.\d{1,2})", re.MULTILINE)
_QUOTED_VERSION = re.compile(r"""["']([23]\.\d{1,2})["']""")


def _versions(text: str) -> set[str]:
    return {f"{major}.{minor}" for major, minor in _VERSION.findall(text)}


def classifier_versions(classifiers: Iterable[str]) -> set[str]:
    return {m.group(1) for c in classifiers if (m := _CLASSIFIER.match(c.strip()))}


def workflow_versions(text: str) -> set[str]:
    """Versions under python-version keys, inline ([3.9, "3.10"]) or as a block list below the key."""
    found: set[str] = set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = _YAML_KEY.match(line)
        if not match:
            continue
        indent, value = len(match.group(1)), match.group(2).split("#", 1)[0]
        found |= _versions(value)
        if value.strip():
            continue
        for following in lines[i + 1 :]:
            stripped = following.strip()
            if len(following) - len(following.lstrip()) <= indent and stripped:
                break
            if stripped.startswith("-"):
                found |= _versions(stripped)
    return found


def _split_top_level(text: str) -> list[str]:
    """Split on commas and newlines outside {...} groups."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char in ",\n" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p.strip() for p in [*parts, current] if p.strip()]


def _expand_braces(env: str, budget: int = 200) -> list[str]:
    """py{38,39}-django{3,4} -> the env names it stands for (tox also allows ranges: py3{8-11})."""
    match = re.search(r"\{([^{}]*)\}", env)
    if not match or budget <= 0:
        return [env]
    options: list[str] = []
    for item in match.group(1).split(","):
        span = re.fullmatch(r"\s*(\d+)-(\d+)\s*", item)
        options += [str(n) for n in range(int(span[1]), int(span[2]) + 1)] if span else [item.strip()]
    expanded: list[str] = []
    for option in options[:budget]:
        expanded += _expand_braces(env[: match.start()] + option + env[match.end() :], budget // 2)
    return expanded


def tox_env_versions(envlist: str | list[str]) -> set[str]:
    envs = envlist if isinstance(envlist, list) else _split_top_level(envlist)
    found: set[str] = set()
    for env in envs:
        for name in _expand_braces(str(env)):
            for factor in name.split("-"):
                if m := _TOX_FACTOR.match(factor.strip()):
                    major, minor = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
                    found.add(f"{major}.{minor}")
    return found


def _classifiers(configs: Configs) -> list[str]:
    project = as_list(table(configs.pyproject, "project").get("classifiers"))
    poetry = as_list(table(configs.pyproject, "tool", "poetry").get("classifiers"))
    setup_cfg = (configs.setup_cfg("metadata", "classifiers") or "").splitlines()
    setup_py = configs.setup_py.classifiers if configs.setup_py else []
    return [c for c in [*project, *poetry, *setup_cfg, *setup_py] if isinstance(c, str)]


def _tox_versions(configs: Configs) -> set[str]:
    found: set[str] = set()
    for key in ("envlist", "env_list"):
        found |= tox_env_versions(ini_value(configs.tox, "tox", key) or "")
    found |= _versions(ini_value(configs.tox, "gh-actions", "python") or "")
    native = table(configs.pyproject, "tool", "tox").get("env_list")
    if isinstance(native, list):
        found |= tox_env_versions([str(e) for e in native])
    return found


def collect_hints(tree: RepoTree, configs: Configs) -> dict[str, set[str]]:
    """Hinted versions by where they were found; sources without versions are left out."""
    workflows: set[str] = set()
    conda: set[str] = set()
    for path, text in tree.files.items():
        if split(path)[0] == ".github/workflows":
            workflows |= workflow_versions(text)
        elif is_environment_path(path):
            conda |= {m for m in _CONDA_PYTHON.findall(text)}
    pipfile_python = str(table(configs.pipfile, "requires").get("python_version", ""))
    hints = {
        "classifiers": classifier_versions(_classifiers(configs)),
        "tox envlist": _tox_versions(configs),
        "CI matrix": workflows,
        "noxfile": set(_QUOTED_VERSION.findall(tree.read("noxfile.py") or "")),
        "environment file": conda,
        "Pipfile": _versions(pipfile_python),
    }
    return {source: versions for source, versions in hints.items() if versions}
