"""Integration fixtures: a real Docker engine, the offline base image, a store and settings in tmp dirs.

`make test` starts the engine and bootstraps the base image before pytest runs; run the tests
through it. Without them these tests fail with a line saying so (they are never skipped silently).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from forager.engine.docker_engine import Engine, EngineUnavailable

from forager.engine.processes import pid_alive
from forager.images.pipeline import ImageBuilder
from forager.config import Settings
from forager.store import Store

# why here and nowhere else: imported into a test module, this session fixture would be that module's own, and
# each module would start (and keep, to the session's end) a vLLM server of its own
from .vllm_server import vllm_server  # noqa: F401 - the session fixture

BASE_IMAGE = os.environ.get("FORAGER_BASE_IMAGE", "forager/bootstrap-python:{python}")
FORAGER = str(Path(sys.executable).with_name("forager"))


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def engine() -> Engine:
    try:
        engine = Engine(timeout=120)
    except EngineUnavailable as exc:
        pytest.fail(f"{exc}; run the tests with `make test`, which starts one")
    base = BASE_IMAGE.replace("{python}", "3.11")
    if not engine.image_exists(base):
        pytest.fail(f"base image {base} is missing; `make test` bootstraps it (forager bootstrap-base)")
    return engine


# why the pid: each pytest session removes its own images when it ends; two sessions on one engine (a
# developer's and CI's, or two helpers') must not pull images from under each other
TEST_IMAGE_PREFIX = f"forager-test-env-{os.getpid()}"
_SESSION_PREFIX = re.compile(r"forager-test-env-(\d+)[/-]")


@pytest.fixture(scope="session", autouse=True)
def remove_test_images(engine):
    """Images built by the tests carry their session's prefix and are removed afterwards (disks fill up), with
    those of sessions that died before they could remove theirs."""
    yield
    # why the low-level list: images.list() inspects each image, and one removed meanwhile (by another
    # session, or a prune) is a 404 that would fail the session at its very end
    for image in engine.client.api.images():
        for tag in image.get("RepoTags") or []:
            session = _SESSION_PREFIX.match(tag)
            if session and (session.group(1) == str(os.getpid()) or not pid_alive(session.group(1))):
                engine.remove_image(tag)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("forager-cache")


@pytest.fixture
def settings(tmp_path, cache_dir) -> Settings:
    return Settings(
        db=f"sqlite:///{tmp_path / 'store.db'}",
        cache_dir=cache_dir,
        base_image=BASE_IMAGE,
        python_versions=["3.11"],
        test_timeout=300,
        overrides_dir=tmp_path / "overrides",
        image_prefix=TEST_IMAGE_PREFIX,
    )


@pytest.fixture
def store(settings) -> Store:
    return Store(settings.db)


@pytest.fixture
def builder(settings, store, engine) -> ImageBuilder:
    return ImageBuilder(settings, store, engine)


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a `forager` subprocess use `settings`."""
    return {
        **os.environ,
        "FORAGER_DB": settings.db,
        "FORAGER_CACHE_DIR": str(settings.cache_dir),
        "FORAGER_BASE_IMAGE": settings.base_image,
        "FORAGER_PYTHON_VERSIONS": json.dumps(settings.python_versions),
        "FORAGER_TEST_TIMEOUT": str(settings.test_timeout),
        "FORAGER_OVERRIDES_DIR": str(settings.overrides_dir),
        "FORAGER_IMAGE_PREFIX": settings.image_prefix,
        "COLUMNS": "200",
        **extra,
    }


def run_cli(*args: str, settings: Settings, check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run([FORAGER, *args], env=cli_env(settings), capture_output=True, text=True, timeout=1800)
    if check and proc.returncode != 0:
        raise AssertionError(f"forager {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def module_settings(root: Path, image_prefix: str = TEST_IMAGE_PREFIX) -> Settings:
    """Settings of a test module's own store, cache and overrides under `root`."""
    return Settings(
        db=f"sqlite:///{root / 'store.db'}", cache_dir=root / "cache", base_image=BASE_IMAGE, python_versions=["3.11"],
        test_timeout=300, overrides_dir=root / "overrides", image_prefix=image_prefix, jobs=2,
    )


# (mutate, mine, image prefix) -> the folder where those tasks were made once this session
_EXAMPLE_TEMPLATES: dict[tuple[int, bool, str], Path] = {}


def example_tasks(root: Path, engine: Engine, *, mutate: int, mine: bool, image_prefix: str = TEST_IMAGE_PREFIX):
    """The bundled example repository with `mutate` mutate-fix tasks (seed 0) and, with `mine`, the issue-fix task
    mined from its fix commit, in a store of its own at `root`; returns (settings, store, builder, repo, valid tasks).

    Made once per session for each set of arguments, then copied: each module gets its own store (a copy of the
    database and the build cache) over the same task images and the same repository folder, which no test writes
    into. Making them again cost 20-40 s per module, and gave the same tasks: the same seed, the same commits."""
    key = (mutate, mine, image_prefix)
    template = _EXAMPLE_TEMPLATES.get(key)
    if template is None:
        template = root.parent / f"example-template-{len(_EXAMPLE_TEMPLATES)}"
        template.mkdir()
        _make_example_tasks(template, engine, mutate=mutate, mine=mine, image_prefix=image_prefix)
        _EXAMPLE_TEMPLATES[key] = template
    root.mkdir(parents=True, exist_ok=True)
    settings = module_settings(root, image_prefix)
    _copy_sqlite(template / "store.db", root / "store.db")
    shutil.copytree(template / "cache", root / "cache", symlinks=True, dirs_exist_ok=True)
    store = Store(settings.db)
    tasks = [task for task, _repo in store.tasks(valid=True)]
    return settings, store, ImageBuilder(settings, store, engine), template / "ledger", tasks


def _make_example_tasks(root: Path, engine: Engine, *, mutate: int, mine: bool, image_prefix: str) -> None:
    from forager.example_repo import materialise
    from forager.models import RepoRef
    from forager.tasks.issues import TaskValidator
    from forager.tasks.synthesize import MutateFixSynthesizer

    settings = module_settings(root, image_prefix)
    store = Store(settings.db)
    builder = ImageBuilder(settings, store, engine)
    ref = RepoRef(url=str(materialise(root / "ledger")))
    report = MutateFixSynthesizer(settings, store, engine, builder).synthesize(ref, count=mutate, seed=0)
    assert report.valid == mutate, report
    if mine:
        TaskValidator(settings, store, engine, builder).mine(ref, max_commits=5)
    store.engine.dispose()


def _copy_sqlite(source: Path, dest: Path) -> None:
    """A consistent copy of a SQLite database, what its WAL holds included (SQLite's online backup)."""
    import sqlite3

    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(dest)) as dst:
        src.backup(dst)


@pytest.fixture(scope="module")
def pg_url():
    """A fresh database on the test PostgreSQL server (`make test` starts it), dropped afterwards: every
    module starts from the current schema. Outside `make test` the test is skipped with the reason; in CI it fails."""
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    base = os.environ.get("FORAGER_TEST_POSTGRES")
    if not base:
        if os.environ.get("CI"):
            pytest.fail("FORAGER_TEST_POSTGRES is not set in CI; `make test` sets it and starts PostgreSQL")
        pytest.skip(reason="FORAGER_TEST_POSTGRES not set: run through `make test` to test the PostgreSQL store")
    url = make_url(base)
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"forager_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield url.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def wait_for_steps(store: Store, run_name: str, count: int, *, alive=lambda: True, timeout: float = 180):
    """The run once its episodes hold `count` steps in all (None if it never appeared), polling the store."""
    import time

    deadline = time.monotonic() + timeout
    run = None
    while time.monotonic() < deadline and alive():
        run = store.run_by_name(run_name)
        if run and sum(len(store.steps(e.id)) for e in store.episodes(run.id)) >= count:
            break
        time.sleep(0.2)
    return run


def small_repo(path: Path, package: str, source: str, tests: str) -> Path:
    """A committed one-package repository at `path`: src/PACKAGE/__init__.py, tests/test_PACKAGE.py, and a
    pyproject whose test extra is pytest (what the builder installs)."""
    (path / "src" / package).mkdir(parents=True)
    (path / "tests").mkdir()
    (path / "src" / package / "__init__.py").write_text(source)
    (path / "tests" / f"test_{package}.py").write_text(tests)
    (path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{package}"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n\n'
        '[project.optional-dependencies]\ntest = ["pytest>=7"]\n')
    identity = ["-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(path), *identity, "commit", "-q", "-m", package], check=True)
    return path
