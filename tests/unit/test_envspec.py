"""Unit tests for forager.envspec: pure detection over inline repository layouts (no Docker, no git)."""

from __future__ import annotations

import textwrap

import pytest

from forager.envspec import DetectError, apply_override, detect, wanted
from forager.envspec.constraints import poetry_to_pep440
from forager.models import EnvSpec, FailureCategory, RepoTree

ALL = ["3.12", "3.11", "3.13", "3.10", "3.9"]
A_TEST = {"tests/test_basic.py": "def test_ok():\n    assert True\n"}


def repo(files: dict[str, str], *other_paths: str) -> RepoTree:
    """A tree whose listed files are tracked and read; other_paths are tracked but not read."""
    texts = {path: textwrap.dedent(text).lstrip("\n") for path, text in files.items()}
    return RepoTree(paths=sorted({*texts, *other_paths}), files=texts)


def has_note(spec: EnvSpec, fragment: str) -> bool:
    return any(fragment in note for note in spec.notes)


# --- packaging metadata -------------------------------------------------------------------------


def test_pep621_project_with_test_extra_and_static_dependencies():
    spec = detect(
        repo(
            {
                "pyproject.toml": """
                [build-system]
                requires = ["hatchling"]
                build-backend = "hatchling.build"
                [project]
                name = "mylib"
                requires-python = ">=3.8"
                dependencies = ["requests >= 2.0", "click"]
                [project.optional-dependencies]
                test = ["pytest-mock"]
                docs = ["sphinx"]
                all = ["numpy"]
                """,
                **A_TEST,
            },
            "src/mylib/__init__.py",
        ),
        ALL,
    )
    assert spec.python == "3.12"
    assert spec.project_install == ".[test]"
    assert spec.requirements == ["pytest", "requests>=2.0", "click"]
    assert spec.test_command == ["python", "-m", "pytest"]
    assert spec.test_args == ["tests"]
    assert spec.env == {"PYTHONDONTWRITEBYTECODE": "1"}
    assert "python 3.12: first available version allowed by requires-python >=3.8" in spec.notes


def test_setup_py_only_with_extras_require_and_python_requires():
    setup_py = """
        from setuptools import setup, find_packages

        TESTS = ["pytest-cov", "hypothesis"]
        EXTRAS = {"tests": TESTS, "dev": TESTS + ["black"], "docs": make_docs_list()}

        setup(
            name="legacy",
            packages=find_packages(),
            python_requires=">=3.9, <3.12",
            install_requires=["six"],
            extras_require=EXTRAS,
            tests_require=["mock"],
        )
    """
    spec = detect(repo({"setup.py": setup_py, **A_TEST}, "legacy/__init__.py"), ["3.12", "3.11", "3.10"])
    assert spec.python == "3.11"
    assert spec.project_install == ".[tests]"
    assert "mock" in spec.requirements  # tests_require
    assert has_note(spec, "setup.py python_requires >=3.9, <3.12")


def test_setup_cfg_extras_require_testing():
    setup_cfg = """
        [metadata]
        name = cfgproj
        classifiers =
            Programming Language :: Python :: 3.10

        [options]
        python_requires = >=3.7
        install_requires =
            attrs

        [options.extras_require]
        testing =
            pytest-mock
        docs = sphinx
    """
    spec = detect(repo({"setup.py": "from setuptools import setup\nsetup()\n", "setup.cfg": setup_cfg, **A_TEST}), ALL)
    assert spec.project_install == ".[testing]"
    assert spec.python == "3.10"  # classifier hint among allowed versions
    assert has_note(spec, "preferred by classifiers")


def test_setup_cfg_alone_is_not_installable():
    # pip refuses a directory with neither setup.py nor pyproject.toml, whatever setup.cfg says.
    spec = detect(repo({"setup.cfg": "[metadata]\nname = x\n[flake8]\nmax-line-length = 100\n", **A_TEST}), ALL)
    assert spec.project_install is None


def test_dev_extra_used_only_when_no_test_extra():
    pyproject = """
        [project]
        name = "p"
        [project.optional-dependencies]
        dev = ["pytest-mock"]
        lint = ["ruff"]
    """
    spec = detect(repo({"pyproject.toml": pyproject, **A_TEST}), ALL)
    assert spec.project_install == ".[dev]"


# --- tool-specific dependency groups ------------------------------------------------------------


def test_poetry_caret_python_and_group_test_dependencies():
    pyproject = """
        [build-system]
        requires = ["poetry-core"]
        build-backend = "poetry.core.masonry.api"
        [tool.poetry]
        name = "poetic"
        [tool.poetry.dependencies]
        python = "^3.10"
        httpx = "^0.27"
        [tool.poetry.group.test.dependencies]
        pytest-mock = "^3.10"
        freezegun = "*"
        coverage = { version = "~7.2", extras = ["toml"] }
        localdep = { path = "../localdep" }
        [tool.poetry.group.docs.dependencies]
        mkdocs = "*"
    """
    spec = detect(repo({"pyproject.toml": pyproject, **A_TEST}), ["3.9", "3.10", "3.11"])
    assert spec.python == "3.10"
    assert spec.project_install == "."
    assert "pytest-mock<4,>=3.10" in spec.requirements
    assert "freezegun" in spec.requirements
    assert "coverage[toml]<7.3,>=7.2" in spec.requirements
    assert not any(r.startswith(("localdep", "mkdocs", "httpx")) for r in spec.requirements)
    assert has_note(spec, "poetry python ^3.10")


def test_poetry_legacy_dev_dependencies():
    pyproject = """
        [tool.poetry]
        name = "old"
        [tool.poetry.dependencies]
        python = "~3.11"
        [tool.poetry.dev-dependencies]
        pytest = "^6.2"
    """
    spec = detect(repo({"pyproject.toml": pyproject, **A_TEST}), ALL)
    assert spec.python == "3.11"
    # the pinned pytest replaces the bare "pytest" detection always adds
    assert spec.requirements == ["pytest<7,>=6.2"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("^3.8", ["<4,>=3.8"]),
        ("^0.2.3", ["<0.3,>=0.2.3"]),
        ("~3.8", ["<3.9,>=3.8"]),
        (">=3.8 <3.12", ["<3.12,>=3.8"]),
        ("~2.7 || ^3.6", ["<2.8,>=2.7", "<4,>=3.6"]),
        ("3.9", ["==3.9.*"]),
    ],
)
def test_poetry_constraints_translate_to_pep440(text, expected):
    assert [str(s) for s in poetry_to_pep440(text)] == expected


def test_pdm_dev_dependencies_take_test_group_only():
    pyproject = """
        [project]
        name = "pdmproj"
        [tool.pdm.dev-dependencies]
        test = ["pytest-cov>=4", "-e file:///${PROJECT_ROOT}/plugins/extra"]
        lint = ["flake8"]
    """
    spec = detect(repo({"pyproject.toml": pyproject, **A_TEST}), ALL)
    assert "pytest-cov>=4" in spec.requirements
    assert "flake8" not in spec.requirements
    assert has_note(spec, "skipped 1 dependency entries")


def test_hatch_default_and_test_env_dependencies():
    pyproject = """
        [project]
        name = "hatched"
        [tool.hatch.envs.default]
        dependencies = ["coverage[toml]", "{root}/vendored"]
        [tool.hatch.envs.test]
        extra-dependencies = ["pytest-randomly"]
        [tool.hatch.envs.docs]
        dependencies = ["mkdocs"]
    """
    spec = detect(repo({"pyproject.toml": pyproject, **A_TEST}), ALL)
    assert spec.requirements == ["pytest", "coverage[toml]", "pytest-randomly"]


def test_uv_dev_dependencies():
    pyproject = """
        [project]
        name = "uvproj"
        dependencies = []
        [tool.uv]
        dev-dependencies = ["pytest>=8", "syrupy"]
    """
    spec = detect(repo({"pyproject.toml": pyproject, **A_TEST}), ALL)
    assert spec.requirements == ["pytest>=8", "syrupy"]


def test_pep735_dependency_groups_with_include_group():
    pyproject = """
        [project]
        name = "grouped"
        [dependency-groups]
        coverage = ["coverage>=7"]
        test = ["pytest-xdist", {include-group = "coverage"}]
        dev = ["pre-commit"]
    """
    spec = detect(repo({"pyproject.toml": pyproject, **A_TEST}), ALL)
    assert spec.requirements == ["pytest", "pytest-xdist", "coverage>=7"]
    assert has_note(spec, "dependency-groups test (2)")


def test_dependency_group_naming_the_project_itself_is_dropped():
    pyproject = """
        [project]
        name = "My_Pkg"
        [dependency-groups]
        test = ["my-pkg[extra]", "hypothesis"]
    """
    spec = detect(repo({"pyproject.toml": pyproject, **A_TEST}), ALL)
    assert spec.requirements == ["pytest", "hypothesis"]


def test_tox_deps_requirement_file_and_envlist_hint():
    tox_ini = """
        [tox]
        envlist = py{39,310}-django{42}, lint

        [testenv]
        deps =
            pytest-django
            -r{toxinidir}/requirements-ci.txt
            -cconstraints.txt
            py39: importlib-metadata
            {[base]deps}
        commands = pytest
    """
    files = {"tox.ini": tox_ini, "requirements-ci.txt": "responses\n", **A_TEST}
    spec = detect(repo(files, "app.py"), ["3.12", "3.10", "3.9"])
    assert spec.python == "3.10"  # 3.12 is first but only 3.9/3.10 are tested by tox
    assert has_note(spec, "preferred by tox envlist")
    assert spec.project_install is None
    assert "pytest-django" in spec.requirements
    assert not any("importlib" in r for r in spec.requirements)
    assert spec.requirement_files == ["requirements-ci.txt"]


def test_requirement_files_selected_by_name_and_place():
    files = {
        "requirements.txt": "requests\n",
        "requirements-test.txt": "-r requirements.txt\npytest-mock\n",
        "test-requirements.txt": "freezegun\n",
        "requirements/dev.txt": "ipdb\n",
        "requirements/base.txt": "attrs\n",
        "requirements-docs.txt": "sphinx\n",
        "requirements/test-docs.txt": "sphinx\n",
        "docs/requirements.txt": "sphinx\n",
        "ci/requirements-ci.txt": "tox\n",
        **A_TEST,
    }
    spec = detect(repo(files, "main.py"), ALL)
    assert spec.requirement_files == [
        "requirements.txt",
        "ci/requirements-ci.txt",
        "requirements-test.txt",
        "requirements/dev.txt",
        "test-requirements.txt",
    ]


def test_pipfile_dev_packages_and_packages_for_an_application():
    pipfile = """
        [packages]
        flask = "*"
        gunicorn = "==21.2"
        [dev-packages]
        pytest-flask = ">=1.2"
        localpkg = { path = ".", editable = true }
        [requires]
        python_version = "3.11"
    """
    spec = detect(repo({"Pipfile": pipfile, **A_TEST}, "app.py"), ALL)
    assert spec.project_install is None
    assert spec.requirements == ["pytest", "pytest-flask>=1.2", "flask", "gunicorn==21.2"]
    assert spec.python == "3.11"  # Pipfile python_version is a hint


def test_bare_scripts_repository_without_metadata():
    files = {"requirements.txt": "numpy\n", "test_script.py": "import numpy\nimport script\n"}
    spec = detect(repo(files, "script.py", "README.md"), ["3.11"])
    assert spec.project_install is None
    assert spec.requirement_files == ["requirements.txt"]
    assert spec.requirements == ["pytest"]
    assert spec.test_args == []  # the test file sits at the root
    assert spec.optional_packages == []  # numpy comes from requirements.txt, script is local


# --- Python version choice ----------------------------------------------------------------------


def test_python_version_file_pins_an_available_version():
    files = {".python-version": "3.10.4\n", "pyproject.toml": '[project]\nname="x"\nrequires-python=">=3.9"\n'}
    spec = detect(repo({**files, **A_TEST}), ALL)
    assert spec.python == "3.10"
    assert "python 3.10: pinned by .python-version" in spec.notes


def test_python_version_pin_ignored_when_requires_python_excludes_it():
    files = {".python-version": "3.9\n", "pyproject.toml": '[project]\nname="x"\nrequires-python=">=3.11"\n'}
    spec = detect(repo({**files, **A_TEST}), ALL)
    assert spec.python == "3.12"
    assert has_note(spec, ".python-version 3.9 ignored: excluded by requires-python >=3.11")


def test_classifiers_prefer_a_listed_version():
    pyproject = """
        [project]
        name = "x"
        requires-python = ">=3.9"
        classifiers = [
            "Programming Language :: Python :: 3 :: Only",
            "Programming Language :: Python :: 3.9",
            "Programming Language :: Python :: 3.10",
        ]
    """
    spec = detect(repo({"pyproject.toml": pyproject, **A_TEST}), ALL)
    assert spec.python == "3.10"  # first of python_versions order that is listed


def test_ci_matrix_block_list_is_a_hint():
    workflow = """
        jobs:
          test:
            strategy:
              matrix:
                python-version:
                  - "3.9"
                  - "3.11"
            steps:
              - uses: actions/setup-python@v5
                with:
                  python-version: ${{ matrix.python-version }}
    """
    spec = detect(repo({".github/workflows/ci.yml": workflow, **A_TEST}, "m.py"), ALL)
    assert spec.python == "3.11"
    assert has_note(spec, "preferred by CI matrix")


def test_requires_python_excluding_every_available_version_is_a_detect_error():
    files = {"pyproject.toml": '[project]\nname = "new"\nrequires-python = ">=3.13"\n', **A_TEST}
    with pytest.raises(DetectError) as caught:
        detect(repo(files), ["3.11"])
    assert caught.value.category == "detect"
    assert caught.value.message == (
        "requires-python '>=3.13' excludes every available Python (3.11); "
        "set FORAGER_PYTHON_VERSIONS or bootstrap a base for a matching version"
    )


def test_invalid_requires_python_is_repaired_not_fatal():
    files = {"setup.py": "from setuptools import setup\nsetup(python_requires='>=3.6.*')\n", **A_TEST}
    spec = detect(repo(files), ["3.11"])
    assert spec.python == "3.11"


# --- test layout --------------------------------------------------------------------------------


def test_src_layout_with_tests_inside_the_package():
    files = {
        "pyproject.toml": '[project]\nname = "pkg"\n',
        "src/pkg/tests/__init__.py": "",
        "src/pkg/tests/test_core.py": "from pkg import core\nfrom pkg.tests.helpers import make\n",
        "src/pkg/tests/helpers.py": "import json\n",
    }
    spec = detect(repo(files, "src/pkg/__init__.py", "src/pkg/core.py"), ALL)
    assert spec.test_args == ["src/pkg/tests"]
    assert spec.optional_packages == []


def test_configured_testpaths_leave_test_args_empty():
    files = {"pytest.ini": "[pytest]\ntestpaths = tests\n", **A_TEST}
    spec = detect(repo(files, "lib.py"), ALL)
    assert spec.test_args == []
    assert has_note(spec, "testpaths from pytest.ini")


def test_test_args_skip_docs_but_give_up_when_tests_live_elsewhere():
    base = {**A_TEST, "docs/test_examples.py": "", "benchmarks/test_speed.py": ""}
    assert detect(repo(base, "lib.py"), ALL).test_args == ["tests"]
    scattered = {**base, "lib/test_inline.py": ""}
    assert detect(repo(scattered, "lib/__init__.py"), ALL).test_args == []


def test_python_files_setting_counts_as_tests():
    files = {"setup.cfg": "[tool:pytest]\npython_files = check_*.py\n", "check_things.py": "def test_a(): pass\n"}
    spec = detect(repo(files), ALL)
    assert spec.test_args == []


# --- pytest plugins -----------------------------------------------------------------------------


def test_addopts_cov_and_xdist_add_plugins():
    pyproject = """
        [tool.pytest.ini_options]
        addopts = "-ra --cov=mylib --cov-report=term-missing -n auto -p no:cacheprovider"
    """
    spec = detect(repo({"pyproject.toml": pyproject, **A_TEST}, "mylib/__init__.py"), ALL)
    assert spec.requirements == ["pytest", "pytest-cov", "pytest-xdist"]
    assert has_note(spec, "pytest-cov (addopts --cov)")


def test_config_keys_add_plugins():
    tox_ini = """
        [pytest]
        DJANGO_SETTINGS_MODULE = site.settings
        asyncio_mode = auto
        timeout = 30
        required_plugins = pytest-randomly>=3
    """
    spec = detect(repo({"tox.ini": tox_ini, **A_TEST}, "site/settings.py"), ALL)
    for plugin in ("pytest-django", "pytest-asyncio", "pytest-timeout", "pytest-randomly>=3"):
        assert plugin in spec.requirements


def test_asyncio_marker_adds_pytest_asyncio():
    test = """
        import pytest

        pytestmark = pytest.mark.timeout(5)

        @pytest.mark.asyncio
        async def test_fetch():
            assert True
    """
    spec = detect(repo({"tests/test_async.py": test}), ALL)
    assert "pytest-asyncio" in spec.requirements
    assert "pytest-timeout" in spec.requirements


def test_mocker_fixture_adds_pytest_mock_unless_defined_locally():
    test = """
        def test_patch(mocker, benchmark, tmp_path, capsys):
            mocker.patch("os.getcwd")
    """
    conftest = """
        import pytest

        @pytest.fixture(name="benchmark")
        def _fake_benchmark():
            return lambda f: f()
    """
    spec = detect(repo({"tests/test_mock.py": test, "tests/conftest.py": conftest}), ALL)
    assert spec.requirements == ["pytest", "pytest-mock"]


def test_pytest_plugins_in_conftest_name_third_party_modules():
    conftest = 'pytest_plugins = ["pytest_httpserver", "tests.fixtures.db", "pytester"]\n'
    files = {"conftest.py": conftest, "tests/fixtures/db.py": "", **A_TEST}
    spec = detect(repo(files), ALL)
    assert spec.requirements == ["pytest", "pytest-httpserver"]


# --- test imports -------------------------------------------------------------------------------


def test_imports_map_to_distributions_and_skip_own_and_stdlib():
    test = """
        from __future__ import annotations
        import os, json
        import yaml
        from PIL import Image
        from google.cloud import storage
        import numpy as np
        import requests
        import mylib.sub
        from helpers import build
        from . import sibling
        try:
            import cPickle
        except ImportError:
            pass
    """
    files = {
        "pyproject.toml": '[project]\nname = "mylib"\ndependencies = ["requests"]\n',
        "tests/test_mapping.py": test,
        "tests/helpers.py": "import attr\n",
    }
    spec = detect(repo(files, "mylib/__init__.py", "mylib/sub.py"), ALL)
    assert spec.optional_packages == ["attrs", "google-cloud-storage", "numpy", "Pillow", "PyYAML"]


def test_unparsable_test_files_are_skipped():
    files = {"tests/test_py2.py": 'print "old"\nimport yaml\n', "tests/test_new.py": "import toolz\n"}
    spec = detect(repo(files), ALL)
    assert spec.optional_packages == ["toolz"]


# --- failures -----------------------------------------------------------------------------------


def test_no_python_code_is_a_detect_error():
    with pytest.raises(DetectError) as caught:
        detect(repo({"README.md": "hello"}, "main.go"), ALL)
    assert caught.value.category == FailureCategory.detect
    assert caught.value.message == "no Python code found (no .py files tracked)"


def test_no_tests_is_a_no_tests_error():
    files = {"pyproject.toml": '[project]\nname = "lib"\n'}
    with pytest.raises(DetectError) as caught:
        detect(repo(files, "lib/__init__.py", "docs/conf.py"), ALL)
    assert caught.value.category == "no-tests"
    assert "add tests or set test_args in an override" in caught.value.message


def test_unittest_modules_not_matching_patterns_are_named_explicitly():
    files = {"setup.py": "from setuptools import setup\nsetup(name='d')\n", "tests/test.py": "import unittest\n"}
    spec = detect(repo(files, "src/d/__init__.py", "tests/__init__.py", "tests/helpers.py", "docs/test_x.txt"), ALL)
    assert spec.test_args == ["tests/helpers.py", "tests/test.py"]
    assert has_note(spec, "named explicitly")
    # as soon as one file matches pytest's patterns, pytest's own collection is trusted
    matched = detect(repo({**files, "tests/test_more.py": "def test_a():\n    pass\n"}), ALL)
    assert matched.test_args == ["tests"]


def test_single_module_suite_at_the_root_is_found_and_named():
    files = {"setup.py": "from setuptools import setup\nsetup(name='jp')\n", "tests.py": "import unittest\n"}
    spec = detect(repo(files, "jsonpointer.py"), ALL)
    assert spec.test_args == ["tests.py"]


def test_broken_pyproject_becomes_a_note_not_a_crash():
    files = {"pyproject.toml": "[project\nname = ", "setup.py": "from setuptools import setup\nsetup()\n", **A_TEST}
    spec = detect(repo(files), ALL)
    assert spec.project_install == "."
    assert has_note(spec, "pyproject.toml is not valid TOML")


# --- overrides ----------------------------------------------------------------------------------


def _spec() -> EnvSpec:
    return detect(repo({"pyproject.toml": '[project]\nname = "p"\n', **A_TEST}), ALL)


def test_override_replaces_fields_and_notes_it():
    spec = apply_override(_spec(), {"python": "3.9", "test_args": ["-k", "not slow"]})
    assert spec.python == "3.9"
    assert spec.test_args == ["-k", "not slow"]
    assert spec.notes[-1] == "override: python, test_args"


def test_override_append_extends_lists_and_env():
    base = _spec()
    spec = apply_override(
        base, {"append": {"requirements": ["numpy"], "system_packages": "libxml2-dev", "env": {"A": "1"}}}
    )
    assert spec.requirements == [*base.requirements, "numpy"]
    assert spec.system_packages == ["libxml2-dev"]
    assert spec.env == {"PYTHONDONTWRITEBYTECODE": "1", "A": "1"}
    assert base.requirements == ["pytest"]  # the original is untouched


def test_override_unknown_key_lists_valid_ones():
    with pytest.raises(DetectError) as caught:
        apply_override(_spec(), {"pythn": "3.12"})
    assert "unknown override key 'pythn'" in caught.value.message
    assert "python" in caught.value.message and "append" in caught.value.message
    with pytest.raises(DetectError, match="only list fields"):
        apply_override(_spec(), {"append": {"python": "3"}})
    with pytest.raises(DetectError, match="override value for python is invalid"):
        apply_override(_spec(), {"python": 3.12})


def test_content_hash_ignores_notes_and_tracks_fields():
    spec = _spec()
    renoted = spec.model_copy(update={"notes": ["something else"]})
    assert renoted.content_hash() == spec.content_hash()
    assert apply_override(spec, {"append": {"requirements": ["x"]}}).content_hash() != spec.content_hash()
    assert detect(repo({"pyproject.toml": '[project]\nname = "p"\n', **A_TEST}), ALL) == spec  # deterministic


# --- wanted -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "setup.py",
        "setup.cfg",
        "tox.ini",
        "noxfile.py",
        "pytest.ini",
        ".python-version",
        "Pipfile",
        "requirements.txt",
        "dev-requirements.txt",
        "requirements/test.txt",
        "ci/requirements-py311.txt",
        "environment.yml",
        ".github/workflows/tests.yaml",
        "pkg/sub/conftest.py",
        "tests/helpers.py",
        "pkg/test/data_maker.py",
        "test_cli.py",
        "pkg/cli_test.py",
    ],
)
def test_wanted_files(path):
    assert wanted(path)


@pytest.mark.parametrize(
    "path",
    [
        "pkg/module.py",
        "README.md",
        "docs/requirements.txt",
        "pkg/setup.py",
        "tests/data/fixture.json",
        ".github/workflows/README.md",
        "ci/run.sh",
        "contest.py",
    ],
)
def test_unwanted_files(path):
    assert not wanted(path)


def test_runner_fallbacks_cap_an_unpinned_pytest_only():
    from forager.envspec.fallbacks import runner_fallbacks

    spec = EnvSpec(python="3.11", requirements=["attrs", "pytest>=6", "pytest-mock"])
    fallbacks = runner_fallbacks(spec)
    assert [f.requirements[1] for f in fallbacks] == ["pytest<9,>=6", "pytest<8,>=6", "pytest<7,>=6"]
    assert all(f.requirements[0] == "attrs" and f.requirements[2] == "pytest-mock" for f in fallbacks)
    assert "fallback" in fallbacks[0].notes[-1]
    assert len({f.content_hash() for f in fallbacks} | {spec.content_hash()}) == 4
    assert runner_fallbacks(EnvSpec(python="3.11", requirements=["pytest<8"])) == []
    assert runner_fallbacks(EnvSpec(python="3.11", requirements=["pytest==7.4.0"])) == []
    assert runner_fallbacks(EnvSpec(python="3.11", requirements=["nose"])) == []
    # a lower bound stops the ladder where it would admit nothing
    floor = runner_fallbacks(EnvSpec(python="3.11", requirements=["pytest>=8.2"]))
    assert [f.requirements[0] for f in floor] == ["pytest<9,>=8.2"]


# --- a commit's world as of its date, and requirements that cannot be fetched ---------------------


@pytest.mark.parametrize("line, expected", [
    ("git+https://github.com/pallets/werkzeug.git#egg=werkzeug", True),
    ("-e git+https://github.com/a/b.git#egg=b", True),
    ("https://github.com/pallets/jinja/archive/main.tar.gz", True),
    ("jinja2 @ https://github.com/pallets/jinja/archive/main.zip", True),
    ("jinja2 @ git+https://github.com/pallets/jinja", True),
    ("jinja2>=3.0  # https://docs", False),
    ("-r base.txt", False),
    ("pkg @ file:///wheels/pkg.whl", False),
])
def test_unfetchable_requirements(line, expected):
    from forager.envspec.pep508 import unfetchable

    assert unfetchable(line) is expected


def test_a_requirements_file_naming_a_vcs_url_is_replaced_by_its_other_requirements():
    spec = detect(repo({
        "setup.py": "from setuptools import setup\nsetup(name='app', extras_require={'test': ['pytest']})\n",
        "requirements/dev.txt": "-r tests.txt\ngit+https://github.com/pallets/werkzeug.git#egg=werkzeug\nblinker>=1.4\n",
        "requirements/tests.txt": "pytest\nasgiref\n",
        "tox.ini": "[testenv]\ndeps =\n    jinja2 @ https://github.com/pallets/jinja/archive/main.zip\n    greenlet\n",
        **A_TEST,
    }, "app/__init__.py"), ALL)
    assert "requirements/dev.txt" not in spec.requirement_files
    assert "requirements/tests.txt" in spec.requirement_files
    assert "blinker>=1.4" in spec.requirements and "greenlet" in spec.requirements
    assert not any("github.com" in r for r in spec.requirements)
    assert has_note(spec, "requirement files not installed as they are") and has_note(spec, "dropped requirements")


def test_python_as_of_a_date_is_the_current_one_or_the_nearest_with_a_base():
    from datetime import date

    files = {"setup.py": "from setuptools import setup\nsetup(name='x', python_requires='>=3.6')\n", **A_TEST}
    assert detect(repo(files, "x.py"), ALL, date(2022, 3, 1)).python == "3.10"
    assert detect(repo(files, "x.py"), ["3.11", "3.9", "3.13"], date(2022, 3, 1)).python == "3.9"  # tie: older
    assert detect(repo(files, "x.py"), ["3.11", "3.9", "3.13"], date(2023, 2, 1)).python == "3.11"
    spec = detect(repo(files, "x.py"), ["3.11"], date(2019, 5, 1))
    assert spec.python == "3.11" and has_note(spec, "nearest to 3.7")
    assert spec.as_of == "2019-05-01" and spec.resolver == "uv"
    assert detect(repo(files, "x.py"), ["3.11", "3.9"], date(2021, 6, 1)).as_of == "2021-06-01"
    latest = detect(repo(files, "x.py"), ALL)
    assert latest.as_of is None and latest.resolver == "pip"


def test_the_cut_off_of_a_commit():
    from datetime import UTC, date, datetime

    from forager.envspec.as_of import AsOfError, cutoff, parse_as_of

    today = date(2026, 12, 1)
    assert cutoff("commit", datetime(2021, 5, 20, tzinfo=UTC), today) == (date(2021, 7, 1), None)
    assert cutoff("commit", datetime(2021, 5, 3, tzinfo=UTC), today) == (date(2021, 6, 1), None)
    assert cutoff("commit", datetime(2026, 11, 30, tzinfo=UTC), today) == (None, None)  # today's world
    day, note = cutoff("commit", datetime(2027, 3, 1, tzinfo=UTC), today)
    assert day is None and "after today" in note
    assert cutoff("latest", datetime(2021, 5, 3, tzinfo=UTC), today) == (None, None)
    assert cutoff("2020-02-29", None, today) == (date(2020, 2, 29), None)
    assert parse_as_of(" Latest ") == "latest"
    with pytest.raises(AsOfError, match="give latest, commit or a day"):
        parse_as_of("2021-02-30")


def test_old_releases_may_not_build_on_a_newer_python_so_the_next_cut_off_is_when_it_had_settled():
    from datetime import date

    from forager.envspec.as_of import for_interpreter

    day, why = for_interpreter(date(2019, 5, 1), "3.11")  # 3.11 came out 2022-10-24
    assert day == date(2023, 2, 1) and "Python 3.11 (released 2022-10-24)" in why
    assert for_interpreter(date(2023, 6, 1), "3.11") == (date(2023, 6, 1), None)
    assert for_interpreter(date(2021, 6, 1), "3.15") == (date(2021, 6, 1), None)  # unknown: nothing to say


def test_a_project_the_test_runner_depends_on_is_its_own_requirement_as_of_a_date():
    from datetime import date

    pluggy = {"setup.py": "from setuptools import setup\nsetup(name='pluggy', extras_require={'testing': ['pytest']})\n",
              **A_TEST}
    spec = detect(repo(pluggy, "src/pluggy/__init__.py"), ["3.9"], date(2020, 7, 1))
    assert spec.unconstrained == ["pluggy"] and has_note(spec, "requirements on pluggy are the repository itself")
    assert detect(repo(pluggy, "src/pluggy/__init__.py"), ["3.9"]).unconstrained == []  # pip: today's, no overrides
    other = {"setup.py": "from setuptools import setup\nsetup(name='tenacity')\n", **A_TEST}
    assert detect(repo(other, "tenacity/__init__.py"), ["3.9"], date(2020, 7, 1)).unconstrained == []
