"""`--registry`: a build pushes its image; a host without it pulls it instead of building (a real registry:
Debian's docker-registry on loopback, started by scripts/ensure-registry.sh)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from forager.images import registry
from forager.images.pipeline import ImageBuilder
from forager.config import Settings
from forager.example_repo import materialise
from forager.models import RepoRef
from forager.store import Store

from .conftest import BASE_IMAGE, TEST_IMAGE_PREFIX, run_cli

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ensure-registry.sh"


@pytest.fixture(scope="module")
def local_registry() -> str:
    proc = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        pytest.fail(f"no registry: {proc.stderr.strip().splitlines()[-1:]}", pytrace=False)
    return proc.stdout.strip()


def _settings(root: Path, cache_dir: Path, name: str, address: str) -> Settings:
    return Settings(
        db=f"sqlite:///{root / name}.db", cache_dir=cache_dir, base_image=BASE_IMAGE, python_versions=["3.11"],
        test_timeout=300, overrides_dir=root / "overrides", image_prefix=f"{TEST_IMAGE_PREFIX}/registry",
        registry=address,
    )


def test_built_image_is_pushed_then_pulled_instead_of_rebuilt(tmp_path, cache_dir, engine, local_registry, monkeypatch):
    repo = materialise(tmp_path / "ledger")
    first = _settings(tmp_path, cache_dir, "a", local_registry)
    proc = run_cli("build-images", "--repo", str(repo), "--registry", local_registry, "--json", settings=first, check=True)
    [built] = json.loads(proc.stdout)
    assert built["status"] == "ready" and built["pushed"] and not built["pulled"] and built["registry_error"] is None
    image_id = engine.image_attrs(built["tag"])["Id"]
    engine.remove_image(built["tag"])
    assert not engine.image_exists(built["tag"])
    assert not engine.image_exists(registry.remote_ref(local_registry, built["tag"]))  # the transit name is gone

    # a fresh store on a host without the image: pulled, validated, never built
    def no_build(*_args, **_kwargs):
        raise AssertionError("docker build ran although the registry has the image")

    monkeypatch.setattr(engine, "build", no_build)
    second = _settings(tmp_path, cache_dir, "b", local_registry)
    stages: list[str] = []
    result = ImageBuilder(second, Store(second.db), engine).build(RepoRef(url=str(repo)), stages.append)
    assert result.status == "ready" and result.pulled and not result.pushed, result
    assert "pull" in stages and "build" not in stages and "tests 1/2" in stages
    assert result.tag == built["tag"] and engine.image_attrs(result.tag)["Id"] == image_id
    assert (result.passed, result.failed) == (built["passed"], built["failed"])


def test_missing_image_is_false_and_an_unreachable_registry_one_line_naming_it(engine, local_registry):
    assert registry.pull(engine, local_registry, f"{TEST_IMAGE_PREFIX}/none:missing", timeout=30) is False
    dead = "127.0.0.1:9"
    with pytest.raises(registry.RegistryError) as caught:
        registry.pull(engine, dead, BASE_IMAGE.replace("{python}", "3.11"), timeout=30)
    message = str(caught.value)
    assert "\n" not in message and f"registry {dead}" in message and "ensure-registry.sh" in message
    with pytest.raises(registry.RegistryError, match="cannot push"):
        registry.push(engine, dead, BASE_IMAGE.replace("{python}", "3.11"), timeout=30)
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        registry.parse_registry("not a registry/")
