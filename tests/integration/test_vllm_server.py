"""A real vLLM server with the tiny CWM model: token ids, logprobs, structured outputs, prefix cache, faults."""

from __future__ import annotations

import re

import httpx
import pytest

from .vllm_server import TINY_MAX_MODEL_LEN

TOOL_REGEX = "<tool: bash>\n(ls|pwd|git status)\n</tool>"
MESSAGES = [
    {"role": "system", "content": "You are a software engineering agent."},
    {"role": "user", "content": "List the files in the repository."},
]


def chat(server, **body) -> httpx.Response:
    body.setdefault("model", server.model)
    return httpx.post(f"{server.url}/chat/completions", json=body, timeout=120)


def prefix_cache_hits(server) -> float:
    text = httpx.get(f"{server.base_url}/metrics", timeout=30).text
    match = re.search(r"^vllm:prefix_cache_hits_total\{[^}]*\} (\S+)$", text, re.MULTILINE)
    assert match, "vllm:prefix_cache_hits_total missing from /metrics"
    return float(match.group(1))


def test_token_ids_and_logprobs_align(vllm_server):  # noqa: F811
    response = chat(vllm_server, messages=MESSAGES, max_tokens=16, temperature=1.0, seed=3,
                    return_token_ids=True, logprobs=True, top_logprobs=0)
    assert response.status_code == 200, response.text
    body = response.json()
    choice = body["choices"][0]
    assert body["prompt_token_ids"] and len(body["prompt_token_ids"]) == body["usage"]["prompt_tokens"]
    assert choice["token_ids"] and len(choice["token_ids"]) == body["usage"]["completion_tokens"]
    entries = choice["logprobs"]["content"]
    assert len(entries) == len(choice["token_ids"])
    assert all(isinstance(entry["logprob"], float) and entry["logprob"] <= 0 for entry in entries)
    assert all(entry["top_logprobs"] == [] for entry in entries)


def test_chat_template_renders_cwm_format(vllm_server):  # noqa: F811
    # OpenAI-style tool calls render as CWM tool-call text; vLLM parses `arguments` as JSON first
    # (a non-JSON string becomes {}), so they come out as the JSON object
    from transformers import AutoTokenizer

    messages = [
        *MESSAGES,
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "name": "bash", "content": "README.md"},
    ]
    response = chat(vllm_server, messages=messages, max_tokens=1, return_token_ids=True)
    assert response.status_code == 200, response.text
    tokenizer = AutoTokenizer.from_pretrained(vllm_server.model_path)
    assert tokenizer.decode(response.json()["prompt_token_ids"]) == (
        "<|begin_of_text|>"
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a software engineering agent.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nList the files in the repository.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n<tool: bash>\n{\"command\": \"ls\"}\n</tool><|eot_id|>"
        "<|start_header_id|>tool: bash<|end_header_id|>\n\nREADME.md<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_structured_output_is_a_well_formed_tool_call(vllm_server):  # noqa: F811
    response = chat(vllm_server, messages=MESSAGES, max_tokens=64, temperature=1.0, seed=0,
                    return_token_ids=True, structured_outputs={"regex": TOOL_REGEX})
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert re.fullmatch(TOOL_REGEX, choice["message"]["content"]), choice["message"]["content"]
    assert choice["finish_reason"] == "stop"


def test_prefix_cache_hits_on_a_repeated_prefix(vllm_server):  # noqa: F811
    # the CPU KV cache has 128-token blocks: only whole blocks are reused
    messages = [{"role": "user", "content": "def f(x):\n    return x + 1\n" * 60}]
    before = prefix_cache_hits(vllm_server)
    first = chat(vllm_server, messages=messages, max_tokens=2).json()
    second = chat(vllm_server, messages=messages + [{"role": "assistant", "content": "ok"}], max_tokens=2).json()
    assert first["usage"]["prompt_tokens"] > 256
    assert second["usage"]["prompt_tokens_details"]["cached_tokens"] >= 256
    assert prefix_cache_hits(vllm_server) >= before + 256


def test_context_overflow_is_a_400_naming_the_limit(vllm_server):  # noqa: F811
    response = chat(vllm_server, messages=[{"role": "user", "content": "word " * TINY_MAX_MODEL_LEN}], max_tokens=4)
    assert response.status_code == 400
    assert "maximum context length" in response.json()["error"]["message"]


def test_answers_again_after_kill_and_restart(vllm_server):  # noqa: F811
    port = vllm_server.port
    vllm_server.kill()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{vllm_server.base_url}/health", timeout=5)
    vllm_server.start()
    assert vllm_server.port == port
    response = chat(vllm_server, messages=MESSAGES, max_tokens=2)
    assert response.status_code == 200, response.text
