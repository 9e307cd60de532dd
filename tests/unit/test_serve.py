"""vllm_command and the server wrapper's pure parts (no vLLM needed)."""

from __future__ import annotations

import socket
import sys

import pytest

from forager import serve
from forager.serve import CPU_KV_CACHE_BYTES, VllmError, VllmServer, free_port, vllm_command


def flag(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def test_cpu_command_has_the_settings_that_matter():
    command = vllm_command("/models/tiny", port=8123, served_name="tiny", max_model_len=4096, cpu=True)
    assert command[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert flag(command, "--model") == "/models/tiny"
    assert flag(command, "--served-model-name") == "tiny"
    assert flag(command, "--host") == "127.0.0.1"
    assert flag(command, "--port") == "8123"
    assert flag(command, "--seed") == "0"
    assert flag(command, "--generation-config") == "vllm"
    assert flag(command, "--max-model-len") == "4096"
    assert flag(command, "--kv-cache-memory-bytes") == str(CPU_KV_CACHE_BYTES) == "268435456"
    assert "--enable-prefix-caching" in command
    assert "--enable-prompt-tokens-details" in command
    assert "--enforce-eager" not in command


def test_gpu_command_leaves_memory_to_vllm_unless_asked():
    command = vllm_command("facebook/cwm", host="0.0.0.0", port=8000, cpu=False)
    assert "--kv-cache-memory-bytes" not in command
    assert "--max-model-len" not in command
    assert flag(command, "--served-model-name") == "facebook/cwm"
    assert flag(command, "--host") == "0.0.0.0"
    sized = vllm_command("facebook/cwm", port=8000, cpu=False, kv_cache_bytes=10**9)
    assert flag(sized, "--kv-cache-memory-bytes") == str(10**9)


def test_extra_arguments_come_last_and_eager_is_optional():
    command = vllm_command("m", port=1, cpu=True, enforce_eager=True, extra=["--max-num-seqs", "4"], python="/py")
    assert command[0] == "/py"
    assert "--enforce-eager" in command
    assert command[-2:] == ["--max-num-seqs", "4"]


def test_free_port_can_be_bound():
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_server_urls_and_missing_vllm(monkeypatch, tmp_path):
    server = VllmServer(tmp_path / "model", port=9001, served_name="tiny", cpu=True, log_path=tmp_path / "log")
    assert server.url == "http://127.0.0.1:9001/v1"
    assert server.base_url == "http://127.0.0.1:9001"
    assert server.model == "tiny"
    assert not server.running
    monkeypatch.setattr(serve, "is_vllm_installed", lambda: False)
    with pytest.raises(VllmError, match=r"pip install -e '\.\[serve-cpu\]'"):
        server.start()


def test_start_reports_an_early_exit_with_the_log_tail(monkeypatch, tmp_path):
    monkeypatch.setattr(serve, "is_vllm_installed", lambda: True)
    server = VllmServer("m", cpu=True, log_path=tmp_path / "log", startup_timeout=30)
    # a stand-in for vLLM that fails at once, as a bad flag or model would
    server.command = [sys.executable, "-c", "import sys; print('ValueError: bad model'); sys.exit(3)"]
    with pytest.raises(VllmError, match="exited with code 3.*ValueError: bad model"):
        server.start()
    assert not server.running


def test_a_model_written_as_a_path_is_checked_before_vllm_starts(tmp_path):
    from forager.serve import local_model_problem

    assert "no such directory" in local_model_problem(str(tmp_path / "nothing"))
    (tmp_path / "weights.bin").write_bytes(b"")
    assert "is a file" in local_model_problem(str(tmp_path / "weights.bin"))
    assert "has no config.json" in local_model_problem(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    assert local_model_problem(str(tmp_path)) is None
    assert local_model_problem("facebook/cwm") is None and local_model_problem("models/not-here") is None
