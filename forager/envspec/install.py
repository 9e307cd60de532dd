"""How the project and its test dependencies get installed: project target, requirements, requirement files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name

from forager.models import RepoTree

from .configs import Configs, ini_lines, table
from .dev_dependencies import declared_dependencies
from .groups import pick_groups
from .layout import is_install_requirements_file
from .pep508 import (
    canonical_name,
    clean_requirement,
    merge_requirements,
    requirement_names,
    requirements_in_file,
    unfetchable,
)


@dataclass(frozen=True)
class InstallPlan:
    project_install: str | None
    requirements: list[str]
    requirement_files: list[str]
    installed_names: set[str]  # canonical names pip will install one way or another
    project_names: set[str]  # the project's own distribution names, canonical
    notes: list[str]


def _packaging_source(configs: Configs) -> str | None:
    """Which file makes `pip install .` work, if any."""
    pyproject = configs.pyproject
    tool = table(pyproject, "tool")
    if (
        "build-system" in pyproject
        or "project" in pyproject
        or table(tool, "poetry")
        or table(tool, "flit", "metadata")
    ):
        return "pyproject.toml"
    if "setup.py" in configs.present:
        return "setup.py"
    # pip needs setup.py or pyproject.toml; with the latter, setuptools reads setup.cfg's metadata.
    if "pyproject.toml" in configs.present and configs.setup_cfg("metadata", "name"):
        return "setup.cfg"
    return None


def _strip_marker(extra: str) -> str:
    return extra.split(":", 1)[0].strip()  # setuptools allows "test:python_version<'3'"


def declared_extras(configs: Configs) -> dict[str, list[str]]:
    """Extra name -> its requirements, from every place a project can declare extras."""
    pyproject = configs.pyproject
    sources: list[dict[str, Any]] = [
        table(pyproject, "project", "optional-dependencies"),
        table(pyproject, "tool", "poetry", "extras"),
        table(pyproject, "tool", "flit", "metadata", "requires-extra"),
    ]
    parser = configs.ini.get("setup.cfg")
    if parser is not None and parser.has_section("options.extras_require"):
        sources.append({k: ini_lines(v) for k, v in parser.items("options.extras_require")})
    if configs.setup_py:
        sources.append(configs.setup_py.extras_require)
    extras: dict[str, list[str]] = {}
    for source in sources:
        for name, requirements in source.items():
            if isinstance(requirements, list):
                extras.setdefault(_strip_marker(name), []).extend(r for r in requirements if isinstance(r, str))
    return extras


def _project_dependencies(configs: Configs) -> list[str]:
    """Static [project].dependencies: safe to install before the source is copied."""
    project = table(configs.pyproject, "project")
    if "dependencies" in project.get("dynamic", []) or not isinstance(project.get("dependencies"), list):
        return []
    return [r for r in map(clean_requirement, project["dependencies"]) if r]


def _runtime_names(configs: Configs) -> set[str]:
    """Runtime dependency names declared anywhere; installing the project installs them."""
    names = set(table(configs.pyproject, "tool", "poetry", "dependencies")) - {"python"}
    entries = ini_lines(configs.setup_cfg("options", "install_requires"))
    entries += configs.setup_py.install_requires if configs.setup_py else []
    names |= {canonical_name(r) for e in entries if (r := clean_requirement(e))}
    return {canonicalize_name(n) for n in names}


def _project_names(configs: Configs) -> set[str]:
    pyproject = configs.pyproject
    candidates = [
        table(pyproject, "project").get("name"),
        table(pyproject, "tool", "poetry").get("name"),
        table(pyproject, "tool", "flit", "metadata").get("module"),
        configs.setup_cfg("metadata", "name"),
        configs.setup_py.name if configs.setup_py else None,
    ]
    return {canonicalize_name(c) for c in candidates if isinstance(c, str) and c.strip()}


def _requirement_files(paths: set[str], from_tox: list[str]) -> list[str]:
    chosen = {p for p in paths if is_install_requirements_file(p)} | {p for p in from_tox if p in paths}
    # The plain requirements.txt first: the others often "-r" it.
    return sorted(chosen, key=lambda p: (p != "requirements.txt", p))


def plan_install(tree: RepoTree, configs: Configs, paths: set[str]) -> InstallPlan:
    source = _packaging_source(configs)
    notes: list[str] = []
    extras = declared_extras(configs)
    chosen = pick_groups(extras) if source else []
    if source:
        target = f".[{','.join(chosen)}]" if chosen else "."
        offered = f"extras offered: {', '.join(sorted(extras))}" if extras else "no extras declared"
        notes.append(f"install: {target} ({source}; {offered})")
    else:
        target = None
        notes.append("install: project not installed (no setup.py or installable pyproject.toml)")

    project_names = _project_names(configs)
    project_deps = _project_dependencies(configs) if source else []
    declared = declared_dependencies(configs, project_installed=source is not None)
    merged = merge_requirements(["pytest"], project_deps, declared.requirements)
    # A group naming the project itself would fetch a released copy over the checkout.
    requirements = [r for r in merged if canonical_name(r) not in project_names]
    if project_deps:
        notes.append(f"requirements: [project].dependencies ({len(project_deps)}) for a shared cached layer")
    if declared.sources:
        notes.append(f"test dependencies from {', '.join(declared.sources)}")
    if declared.dropped:
        notes.append(f"skipped {declared.dropped} dependency entries that are local, conditional or unparsable")

    unreachable = [r for r in requirements if unfetchable(r)]
    if unreachable:
        requirements = [r for r in requirements if r not in unreachable]
        notes.append(f"dropped requirements that name a VCS repository or an archive URL (not fetchable here; the "
                     f"project's extras and index releases stand in): {', '.join(unreachable[:3])}")
    files = _requirement_files(paths, declared.files)
    inlined = [path for path in files if any(unfetchable(line) for line in (tree.read(path) or "").splitlines())]
    if inlined:
        # why: pip stops at the first line it cannot fetch; the file's other requirements still count
        files = [path for path in files if path not in inlined]
        kept = [r for path in inlined for r in requirements_in_file(tree.read(path) or "") if not unfetchable(r)]
        requirements = merge_requirements(requirements, [r for r in kept if canonical_name(r) not in project_names])
        notes.append(f"requirement files not installed as they are, since they name VCS repositories or archive "
                     f"URLs: {', '.join(inlined)} (their other requirements are installed)")
    if files:
        notes.append(f"requirement files: {', '.join(files)}")

    installed = requirement_names(requirements)
    for path in files:
        installed |= requirement_names(requirements_in_file(tree.read(path) or ""))
    if source:
        installed |= _runtime_names(configs) | requirement_names(project_deps) | project_names
        installed |= {canonical_name(r) for extra in chosen for r in extras[extra] if clean_requirement(r)}
    return InstallPlan(target, requirements, files, installed, project_names, notes)
