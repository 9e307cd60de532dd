"""The instant model server over real HTTP with the tiny CWM tokenizer, and local token bookkeeping against it.

The server answers what `ChatClient` reads (token ids, logprobs, usage, /tokenize, /models); its scripted
conversation runs through `LLMPolicy`; 64 clients at once each get their own episode. Then the policy's
local chat tokens are checked against the server's /tokenize over a whole conversation, and a server whose
template differs makes the policy fall back to the server and say where they differed.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from forager.agent.formats import CwmFormat, OpenAIFormat, observation_text, parse_cwm, tool_schemas
from forager.agent.policy import LLMPolicy
from forager.dev.instant_model import URL_LINE, InstantModelServer, default_script
from forager.dev.tiny_model import make_tiny_tokenizer
from forager.llm.chat_tokens import LocalChatTokens, local_chat_tokens
from forager.llm.client import ChatClient
from forager.llm.types import ContextExceeded, Sampling

SAMPLING = Sampling(temperature=1.0, max_tokens=256)
OPENING = [{"role": "system", "content": "You are a software engineer.\n\nCall one tool per reply."},
           {"role": "user", "content": "The tests fail: fix `add` in calc.py.\n"}]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return make_tiny_tokenizer(tmp_path_factory.mktemp("instant") / "tiny-tokenizer")


@pytest.fixture(scope="module")
def server(tokenizer_dir):
    with InstantModelServer(tokenizer_dir, turns=12) as running:
        yield running


@pytest.fixture(scope="module")
def local(tokenizer_dir) -> LocalChatTokens:
    return LocalChatTokens.load(tokenizer_dir)


def _client(server) -> ChatClient:
    return ChatClient(server.url, server.model, max_wait=5)


def run_conversation(policy: LLMPolicy, turns: int, output: str = "ok") -> list:
    """Drive the policy like the loop does: its reply, then a tool observation; returns the decisions."""
    messages, decisions = list(OPENING), []
    for turn in range(turns):
        decision = policy.decide(messages, 100_000)
        decisions.append(decision)
        assert decision.call is not None, decision.format_error
        text = observation_text(f"{output} {turn}\n", turns - turn - 1, None)
        messages += [decision.assistant_message, policy.format.observation_message(decision.call, text, decision.tool_calls)]
    return decisions


def test_each_endpoint_answers_as_the_client_reads_it(server, tokenizer_dir, local):
    client = _client(server)
    info = client.model_info()
    assert info["id"] == server.model and info["root"] == str(tokenizer_dir.resolve()) and info["max_model_len"] > 0
    assert client.server_version() and client.supports_tokens()

    prompt = client.tokenize(OPENING, add_generation_prompt=True)
    assert prompt == local.prompt_ids(OPENING)
    chat = client.chat(OPENING, SAMPLING)
    assert chat.text == default_script(12)[0] and chat.finish_reason == "stop"
    assert chat.prompt_token_ids == prompt and chat.prompt_tokens == len(prompt)
    assert chat.completion_token_ids[-1] == local.tokenizer.eos_token_id
    assert len(chat.logprobs) == len(chat.completion_token_ids) == chat.completion_tokens
    assert all(value < 0 for value in chat.logprobs) and chat.cached_tokens is not None
    assert client.detokenize(chat.completion_token_ids) == chat.text + local.tokenizer.eos_token

    again = client.complete(prompt, SAMPLING)  # the same prompt as ids: the prefix cache has its blocks now
    assert again.completion_token_ids == chat.completion_token_ids and again.prompt_token_ids == prompt
    assert len(again.logprobs) == again.completion_tokens and again.cached_tokens == (len(prompt) - 1) // 16 * 16 > 0

    tools = client.chat(OPENING, SAMPLING, tools=tool_schemas(60))
    assert tools.finish_reason == "tool_calls" and tools.text == ""
    [call] = tools.tool_calls
    assert call["function"]["name"] == "bash" and call["function"]["arguments"] == '{"command": "ls"}'

    short = client.complete(prompt, Sampling(max_tokens=3))
    assert short.finish_reason == "length" and len(short.completion_token_ids) == 3
    with pytest.raises(ContextExceeded):
        client.complete(prompt, Sampling(max_tokens=10_000_000))
    raw = httpx.post(f"{client.root}/tokenize", json={"model": server.model, "prompt": "ls -la"}).json()
    assert raw["tokens"][0] == local.tokenizer.bos_token_id and raw["count"] == len(raw["tokens"])
    client.close()


def test_the_scripted_episode_runs_in_both_tool_formats(server):
    client = _client(server)
    script = default_script(12)
    cwm = run_conversation(LLMPolicy(client, CwmFormat(), SAMPLING, None, exact_tokens=True), len(script))
    assert [d.text for d in cwm] == script
    names = [d.call.name for d in cwm]
    assert names[-1] == "submit" and {"bash", "create", "edit"} <= set(names)
    assert all(d.completion.prompt_token_ids[: len(p.completion.prompt_token_ids)] == p.completion.prompt_token_ids
               for p, d in zip(cwm, cwm[1:], strict=False))  # append-only prompts
    openai = run_conversation(LLMPolicy(client, OpenAIFormat(), SAMPLING, tool_schemas(60)), len(script))
    assert [d.call for d in openai] == [parse_cwm(reply).call for reply in script]
    assert all(d.text == reply + "<|eot_id|>" for d, reply in zip(openai, script, strict=True))  # detokenised raw text
    client.close()


def test_64_concurrent_clients_each_get_their_own_episode(tokenizer_dir):
    turns, clients = 4, 64
    with InstantModelServer(tokenizer_dir, turns=turns, subprocess=True) as running:
        def episode(_index: int) -> list[float]:
            client = _client(running)
            try:  # the collector's way: exact tokens (/tokenize, then /v1/completions with ids)
                policy = LLMPolicy(client, CwmFormat(), SAMPLING, None, exact_tokens=True)
                decisions = run_conversation(policy, turns, output="x" * 200)
            finally:
                client.close()
            assert [d.text for d in decisions] == default_script(turns)
            return [d.completion.seconds for d in decisions]

        started = time.monotonic()
        with ThreadPoolExecutor(clients) as pool:
            latencies = [value for result in pool.map(episode, range(clients)) for value in result]
        wall = time.monotonic() - started
    assert len(latencies) == clients * turns
    # loose bounds (a 2-CPU runner, the 64 clients in this process): every call answered, none stuck
    median = statistics.median(latencies)
    assert median < 2.0 and max(latencies) < 10, (median, max(latencies), wall)
    print(f"\n64 clients x {turns} calls in {wall:.2f} s; latency median {median * 1000:.1f} ms, "
          f"p95 {statistics.quantiles(latencies, n=20)[-1] * 1000:.1f} ms")


def test_the_command_line_prints_its_url_and_serves(tokenizer_dir):
    proc = subprocess.Popen([sys.executable, "-m", "forager.dev.instant_model", "--tokenizer", str(tokenizer_dir),
                             "--port", "0", "--delay", "0.2", "--served-name", "cli-model"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = URL_LINE.search(line)
        if match is None:
            pytest.fail(f"no URL line: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}")
        client = ChatClient(match.group(1), "cli-model", max_wait=5)
        completion = client.chat(OPENING, SAMPLING)
        assert completion.text == default_script()[0] and completion.seconds >= 0.2  # the delay per call
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()


def test_local_chat_tokens_equal_the_servers_over_a_whole_conversation(server):
    client = _client(server)
    chat_tokens, reason = local_chat_tokens(client)
    assert chat_tokens is not None, reason
    turns = 12
    local_policy = LLMPolicy(client, CwmFormat(), SAMPLING, None, exact_tokens=True, chat_tokens=chat_tokens)
    server_policy = LLMPolicy(client, CwmFormat(), SAMPLING, None, exact_tokens=True)
    local_run = run_conversation(local_policy, turns, output="line\n" * 50)
    server_run = run_conversation(server_policy, turns, output="line\n" * 50)
    assert local_policy.token_source == "local" and server_policy.token_source == "server"
    assert [d.completion.prompt_token_ids for d in local_run] == [d.completion.prompt_token_ids for d in server_run]
    assert all(d.tokenize_seconds > 0 for d in local_run + server_run)

    missing, why = local_chat_tokens(ChatClient(server.url, "no-such-model", max_wait=5))
    assert missing is None and "root" in why
    client.close()


def _server_with_template(tokenizer_dir, tmp_path, old: str, new: str) -> InstantModelServer:
    changed = tmp_path / "changed-tokenizer"
    shutil.copytree(tokenizer_dir, changed)
    template = (changed / "chat_template.jinja").read_text()
    assert old in template
    (changed / "chat_template.jinja").write_text(template.replace(old, new, 1))
    return InstantModelServer(changed, turns=6)


@pytest.mark.parametrize(("old", "new", "at_call"), [
    ("{{- bos_token }}", "{{- bos_token }}{{- '<|start_header_id|>' }}", 1),  # differs in every prompt
    ("'tool: ' ~", "'tool:' ~", 2),  # only tool results differ: the opening prompt matches, the first suffix not
])
def test_a_server_whose_template_differs_makes_the_policy_fall_back(tokenizer_dir, local, tmp_path, old, new, at_call):
    with _server_with_template(tokenizer_dir, tmp_path, old, new) as other:
        client = _client(other)
        policy = LLMPolicy(client, CwmFormat(), SAMPLING, None, exact_tokens=True, chat_tokens=local)
        baseline = LLMPolicy(client, CwmFormat(), SAMPLING, None, exact_tokens=True)
        decisions = run_conversation(policy, 4)
        expected = run_conversation(baseline, 4)
        client.close()
    assert policy.token_source.startswith("server (local differed at token ")
    at = int(policy.token_source.removeprefix("server (local differed at token ").rstrip(")"))
    first = decisions[at_call - 1].completion.prompt_token_ids
    assert local.prompt_ids(OPENING)[:at] == first[:at] if at_call == 1 else 0 < at < len(first)
    # what went out is the server's tokens, exactly as without local bookkeeping
    assert [d.completion.prompt_token_ids for d in decisions] == [d.completion.prompt_token_ids for d in expected]
