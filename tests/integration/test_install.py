"""forager as users install it: a wheel in a fresh virtualenv, run outside the checkout with no FORAGER_* variables
and no Makefile, builds the example repository on whatever base this host has (here: only the bootstrapped one).
And the base choice against a real registry: a configured base the registry has is pulled, not stood in for."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

from forager.images import registry
from forager.images.bases import bootstrap_tag, stand_in_note
from forager.images.pipeline import ImageBuilder
from forager.config import Settings
from forager.models import RepoRef
from forager.store import Store

from .conftest import TEST_IMAGE_PREFIX

ROOT = Path(__file__).resolve().parents[2]
OFFICIAL = "python:{python}-slim"  # the default FORAGER_BASE_IMAGE


def _wheel(tmp: Path) -> Path:
    """A wheel of this checkout, built from a copy (an in-tree build would write build/ into the checkout) with
    the setuptools already installed (no build isolation: nothing is downloaded)."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "forager", src / "forager", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    [wheel] = (tmp / "dist").glob("forager-*.whl")
    return wheel


def _venv_with(wheel: Path, venv: Path) -> Path:
    """A fresh virtualenv where forager comes from the wheel. Its dependencies come from the test's own
    environment through a .pth line (installing them from PyPI would take minutes and prove nothing about
    forager); that environment's editable forager is not importable from there (its .pth is not read)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "forager-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    return venv / "bin" / "forager"


def test_a_wheel_installed_outside_the_checkout_builds_on_the_base_this_host_has(tmp_path, engine):
    forager = _venv_with(_wheel(tmp_path), tmp_path / "venv")
    where = subprocess.run([str(forager.with_name("python")), "-c",
                            "import forager.images.render as r; print(r.TEMPLATES_DIR)"],
                           check=True, capture_output=True, text=True, cwd=tmp_path).stdout.strip()
    assert where.startswith(str(tmp_path / "venv")), where  # templates are the wheel's, not the checkout's
    prompt = subprocess.run([str(forager.with_name("python")), "-c",
                             "from forager.agent.prompts import task_prompt; print(task_prompt('bug', '/testbed'))"],
                            check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    assert prompt.startswith("<issue_description>\nbug\n"), prompt  # the prompts ship in the wheel

    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    # the documented config file in the working folder: only the test prefix, which the session's cleanup removes
    prefix = f"{TEST_IMAGE_PREFIX}/install"
    (work / "forager.toml").write_text(f'image_prefix = "{prefix}"\n')
    drop = ("FORAGER_", "XDG_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(drop)}, "HOME": str(home), "COLUMNS": "200"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(forager), *args], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"forager {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    repo = work / "ledger"
    cli("example-repo", "--out", str(repo))
    built = cli("build-images", "--repo", str(repo), "--json")
    [result] = json.loads(built.stdout)
    assert result["status"] == "ready" and result["passed"] > 0 and result["tag"].startswith(prefix + "/")
    assert engine.image_exists(result["tag"])
    # after the build: the official base is here when this host had it or could pull it; else the stand-in
    python = result["python"]
    configured = OFFICIAL.replace("{python}", python)
    expected = configured if engine.image_exists(configured) else bootstrap_tag(python)
    assert result["base_image"] == expected
    status = json.loads(cli("status", "--json").stdout)  # the default store: trajectories/ in the working folder
    [image] = status["images"]
    note = stand_in_note(python, OFFICIAL, expected)
    if note:  # this host had no official base: the build says which base stood in, on stderr and in the spec
        assert note in built.stderr.replace("\n", "") and note in image["spec"]["notes"]

    # make exported FORAGER_BASE_IMAGE=forager/bootstrap-python:{python} before: an image built so keys the
    # same as the bare CLI's, so the store and images a user made either way are one cache
    as_make = Settings(db=f"sqlite:///{work / 'trajectories' / 'forager.db'}", cache_dir=home / ".cache" / "forager",
                       base_image="forager/bootstrap-python:{python}" if note else OFFICIAL, image_prefix=prefix)
    again = ImageBuilder(as_make, Store(as_make.db), engine).build(RepoRef(url=str(repo)))
    assert again.cached and again.tag == result["tag"], again


@pytest.fixture
def local_registry() -> str:
    proc = subprocess.run([str(ROOT / "scripts" / "ensure-registry.sh")], capture_output=True, text=True, timeout=600,
                          check=False)
    if proc.returncode != 0:
        pytest.fail(f"no registry: {proc.stderr.strip().splitlines()[-1:]}", pytrace=False)
    return proc.stdout.strip()


def test_a_configured_base_a_registry_has_is_pulled_and_one_it_lacks_is_stood_in_for(tmp_path, engine, local_registry):
    # a tiny stand-in for an official base, in the registry only
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        info = tarfile.TarInfo("etc/forager-test-base")
        archive.addfile(info, io.BytesIO(b""))
    local = f"{TEST_IMAGE_PREFIX}/registry-base"
    engine.client.api.import_image_from_data(data.getvalue(), repository=local, tag="3.11")
    registry.push(engine, local_registry, f"{local}:3.11", timeout=60)
    remote = registry.remote_ref(local_registry, local)
    engine.remove_image(f"{remote}:3.11")
    assert engine.image_exists(bootstrap_tag("3.11")) and not engine.image_exists(f"{remote}:3.11")

    db = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(db)

    def builder(template: str) -> ImageBuilder:
        settings = Settings(db=db, cache_dir=tmp_path / "cache", base_image=template, python_versions=["3.11", "3.10"],
                            image_prefix=TEST_IMAGE_PREFIX)
        return ImageBuilder(settings, store, engine)

    try:
        assert builder(f"{remote}:{{python}}").usable_bases() == {"3.11": f"{remote}:3.11"}  # 3.10 has neither
        assert engine.image_exists(f"{remote}:3.11")  # pulled, not stood in for
        lacks = f"{local_registry}/{TEST_IMAGE_PREFIX}/none:{{python}}"
        assert builder(lacks).usable_bases() == {"3.11": bootstrap_tag("3.11")}
    finally:
        engine.remove_image(f"{remote}:3.11")  # outside the test prefix: the session's cleanup would not see it
