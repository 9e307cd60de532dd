"""detect(): a repository's paths and config text in, an EnvSpec with a note per decision out."""

from __future__ import annotations

from datetime import date

from packaging.utils import canonicalize_name

from forager.models import EnvSpec, FailureCategory, RepoTree

from .configs import load_configs
from .errors import DetectError
from .imports import imported_modules, third_party_distributions
from .as_of import TEST_RUNNER_DEPENDENCIES, resolution_note
from .install import plan_install
from .layout import all_paths, has_python, own_module_names
from .pep508 import merge_requirements, requirement_names
from .plugins import needed_plugins
from .pytest_config import PytestConfig, find_pytest_config, test_file_patterns
from .python_version import choose_python, python_constraints, read_pin
from .suite_layout import DEFAULT_TEST_PATTERNS, has_tests, obvious_test_dirs, unmatched_test_modules
from .suite_sources import parse_test_sources
from .version_hints import collect_hints

ENV = {"PYTHONDONTWRITEBYTECODE": "1"}


def _test_args(paths: set[str], patterns: tuple[str, ...], config: PytestConfig) -> tuple[list[str], str]:
    if config.words("testpaths"):
        return [], f"test paths: testpaths from {config.source}"
    unmatched = unmatched_test_modules(paths, patterns)
    if unmatched:
        return unmatched, f"test paths: {' '.join(unmatched)} (no file matches {' '.join(patterns)}; named explicitly)"
    dirs = obvious_test_dirs(paths, patterns)
    if dirs:
        return dirs, f"test paths: {' '.join(dirs)} (no testpaths configured)"
    return [], "test paths: none given; pytest collects from the repository root"


def detect(tree: RepoTree, python_versions: list[str], as_of: date | None = None) -> EnvSpec:
    """The spec of a repository; with `as_of` (a commit's cut-off day), its Python is the one current then and
    its dependencies resolve to releases uploaded before it."""
    paths = all_paths(tree)
    if not has_python(paths):
        raise DetectError("no Python code found (no .py files tracked)")
    configs = load_configs(tree, paths)
    notes = list(configs.notes)

    pytest_config = find_pytest_config(configs)
    patterns = test_file_patterns(pytest_config) or DEFAULT_TEST_PATTERNS
    if not has_tests(paths, patterns):
        raise DetectError(
            "no tests found (no test_*.py or *_test.py files); add tests or set test_args in an override",
            FailureCategory.no_tests,
        )

    constraints, constraint_notes = python_constraints(configs)
    python, python_notes = choose_python(
        python_versions, constraints, read_pin(tree.read(".python-version")), collect_hints(tree, configs), as_of
    )
    notes += constraint_notes + python_notes

    plan = plan_install(tree, configs, paths)
    notes += plan.notes

    test_args, test_note = _test_args(paths, patterns, pytest_config)
    notes.append(test_note)

    modules = parse_test_sources(tree)
    own_names = own_module_names(paths)
    plugins = needed_plugins(pytest_config, modules.values(), own_names)
    if plugins:
        notes.append("pytest plugins: " + ", ".join(f"{req} ({reason})" for req, reason in plugins))
    requirements = merge_requirements(plan.requirements, [req for req, _ in plugins])

    covered = requirement_names(requirements) | plan.installed_names | {canonicalize_name(n) for n in own_names}
    optional = third_party_distributions(imported_modules(modules.values()), own_names, covered)
    if optional:
        notes.append(f"optional packages from test imports: {', '.join(optional)}")

    # with uv (as of a day) only: pip has no overrides
    unconstrained = _unconstrained(plan.project_names) if as_of and plan.project_install else []
    return EnvSpec(
        python=python,
        requirements=requirements,
        requirement_files=plan.requirement_files,
        project_install=plan.project_install,
        optional_packages=optional,
        test_args=test_args,
        env=dict(ENV),
        as_of=as_of.isoformat() if as_of else None,
        resolver="uv" if as_of else "pip",
        unconstrained=unconstrained,
        notes=[*notes, resolution_note(as_of), *_unconstrained_note(unconstrained)],
    )


def _unconstrained(project_names: set[str]) -> list[str]:
    """The project's own names that the test runner depends on: other packages' requirements on them become the
    repository itself."""
    return sorted(project_names & TEST_RUNNER_DEPENDENCIES)


def _unconstrained_note(names: list[str]) -> list[str]:
    return [f"install: requirements on {', '.join(names)} are the repository itself (uv --overrides): pytest depends on "
            "this project, and its development version may fall outside their ranges"] if names else []
