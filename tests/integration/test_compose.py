"""compose.yaml, checked by a real compose implementation (Debian's docker-compose 1.29, installed by
scripts/ensure-compose.sh) and against the settings `forager serve` gives vLLM."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from forager.serve import ModelShape, serving_args, vllm_command

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> list[str]:
    proc = subprocess.run([str(ROOT / "scripts" / "ensure-compose.sh")], capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        pytest.fail(f"no compose implementation: {proc.stderr.strip()}", pytrace=False)
    if subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    return [shutil.which("docker-compose")]


def _config(compose: list[str], **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FORAGER_", "POSTGRES_", "VLLM_"))}
    return subprocess.run([*compose, "-f", str(ROOT / "compose.yaml"), "config"], capture_output=True, text=True,
                          timeout=60, env={**clean, **env}, cwd=ROOT, check=False)


def test_compose_file_is_valid_and_wires_the_services(compose):
    proc = _config(compose, FORAGER_REPO="https://example.org/pkg.git@v1", FORAGER_TP="2")
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    assert set(services) == {"vllm", "postgres", "registry", "worker"}
    worker = services["worker"]
    assert worker["command"][:3] == ["forager", "collect", "--repo=https://example.org/pkg.git@v1"]
    assert worker["environment"]["FORAGER_DB"].startswith("postgresql+psycopg://forager:") and "@postgres:5432/" in \
        worker["environment"]["FORAGER_DB"]
    assert worker["environment"]["FORAGER_LLM_URL"] == "http://vllm:8000/v1"
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert worker["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert any(v.endswith("/var/run/docker.sock") or "docker.sock" in str(v) for v in worker["volumes"])
    assert int(worker["deploy"]["replicas"]) >= 1
    assert "healthcheck" in services["postgres"] and services["registry"]["image"].startswith("registry:2")
    [gpus] = services["vllm"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpus["capabilities"] == ["gpu"] and str(gpus["count"]) == "2"
    assert "--tensor-parallel-size=2" in services["vllm"]["command"]


def test_compose_serves_with_the_settings_forager_serve_uses(compose):
    proc = _config(compose, FORAGER_REPO="x")
    command = yaml.safe_load(proc.stdout)["services"]["vllm"]["command"]
    given = {arg.split("=", 1)[0] for arg in command}
    hybrid = ModelShape(full_layers=16, sliding_layers=48, sliding_window=8192)  # CWM's shape
    expected = vllm_command("facebook/cwm", port=8000, cpu=False) + serving_args(
        hybrid, tensor_parallel=2, has_retention_setting=True)
    flags = {arg for arg in expected if arg.startswith("--")}
    assert flags <= given, flags - given


def test_compose_refuses_to_start_workers_without_a_repository(compose):
    proc = _config(compose)
    assert proc.returncode != 0 and "FORAGER_REPO" in proc.stderr
