"""`forager collect --format openai` for real: tools sent with tool_choice "auto", vLLM's hermes tool parser
turning the tiny model's text into OpenAI `tool_calls`, forager reading them, results going back as role
"tool" messages with the matching `tool_call_id`.

The tiny model has random weights; a structured-output regex makes it write hermes tool-call syntax
(`<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`). With tool_choice "auto" and tools
that are not `strict`, vLLM 0.32 builds no structural tag of its own, so the regex is the only
constraint and the parser sees exactly what it forced.
"""

from __future__ import annotations

import re

import pytest

from forager.agent.loop import EpisodeLimits
from forager.engine.docker_engine import LABEL
from forager.collect import CollectConfig, Collector
from forager.llm.types import Sampling
from forager.llm.tokens import full_prompts

from .conftest import TEST_IMAGE_PREFIX, example_tasks
from .vllm_server import TOOL_PARSER

# why: its own prefix, removed when the module is done (the session removes the rest when it ends)
IMAGE_PREFIX = f"{TEST_IMAGE_PREFIX}-openai"
QUICK = EpisodeLimits(max_turns=3, max_context_tokens=4096, time_limit=120)


def hermes(name: str, arguments: str) -> str:
    """A regex for one hermes tool call (`arguments` is a regex already)."""
    return r"<tool_call>\n\{" + re.escape(f'"name": "{name}", "arguments": ') + arguments + r"\}\n</tool_call>"


BASH_LS = hermes("bash", r'\{"command": "(ls|pwd|git status --short)"\}')


@pytest.fixture(scope="module")
def env(tmp_path_factory, engine):
    """The example repository's image with one mutate-fix task, in its own store."""
    settings, store, _builder, _repo, tasks = example_tasks(tmp_path_factory.mktemp("collect-openai-env"), engine,
                                                            mutate=1, mine=False, image_prefix=IMAGE_PREFIX)
    yield settings, store, engine, tasks
    for image in engine.client.api.images():  # (no per-image inspect: see conftest's remove_test_images)
        for tag in image.get("RepoTags") or []:
            if tag.startswith(IMAGE_PREFIX + "/"):
                engine.remove_image(tag)


def _collect(env, server, regex: str, **config):
    settings, store, engine, tasks = env
    config = {"limits": QUICK, **config}
    collector = Collector(settings, store, engine, CollectConfig(
        policy="llm", llm_url=server.url, model=server.model, tool_format="openai",
        sampling=Sampling(temperature=1.0, max_tokens=160, seed=0, extra_body={"structured_outputs": {"regex": regex}}),
        **config))
    try:
        run = collector.open_run(tasks)
        summary = collector.collect(run, tasks)
    finally:
        collector.close()
    return run, summary


def _leftovers(engine, run_id: int) -> list:
    return engine.client.containers.list(all=True, filters={"label": [LABEL, f"forager.run={run_id}"]})


def test_server_runs_the_tool_parser(vllm_server):  # noqa: F811
    assert ["--tool-call-parser", TOOL_PARSER] == vllm_server.command[vllm_server.command.index("--tool-call-parser"):][:2]
    assert "--enable-auto-tool-choice" in vllm_server.command


def test_openai_tool_calls_round_trip(env, vllm_server):  # noqa: F811
    settings, store, engine, tasks = env
    run, summary = _collect(env, vllm_server, BASH_LS, concurrency=2, episodes_per_task=2)

    assert store.run_by_name(run.name).tool_format == "openai"
    assert summary.finished == 2 and summary.exit_reasons == {"max_turns": 2}, summary
    assert summary.completion_tokens > 0 and summary.llm_seconds > 0 and summary.env_seconds > 0
    for episode in store.episodes(run.id):
        assert len(episode.tools) == 4 and episode.reward == -1.0
        steps = store.steps(episode.id)
        assert [s.index for s in steps] == [0, 1, 2]
        for step in steps:
            assert step.tool == "bash" and step.format_error is None and step.exit_code == 0
            assert step.arguments["command"] in ("ls", "pwd", "git status --short")
            message = step.assistant_message
            assert message["role"] == "assistant" and not message["content"]  # the call is all there is
            [call] = message["tool_calls"]
            assert call["type"] == "function" and call["id"]
            assert call["function"]["name"] == "bash"
            assert call["function"]["arguments"] == f'{{"command": "{step.arguments["command"]}"}}'
            [observation] = step.observation_messages
            assert observation["role"] == "tool" and observation["tool_call_id"] == call["id"]
            assert observation["name"] == "bash" and observation["content"] == step.observation
            assert "<output>" in step.observation and "Remaining turns" in step.observation
            assert step.finish_reason == "tool_calls"
            assert "<tool_call>" in step.model_text  # the raw text the server parsed the call from
            assert step.prompt_delta_ids and step.completion_token_ids
            assert len(step.logprobs) == len(step.completion_token_ids)
            assert step.prompt_tokens == step.prompt_offset + len(step.prompt_delta_ids)
        # why: OpenAI tool calls are parsed by the server, so the prompt is always rendered by the server from
        # messages; the tiny model's (CWM) template renders an assistant tool call as `<tool: bash>\n{json}\n</tool>`,
        # not as the hermes text it was sampled as, so every later prompt breaks the prefix and is stored whole
        assert steps[0].prefix_ok is None and all(s.prefix_ok is False for s in steps[1:])
        assert all(s.prompt_offset == 0 and len(s.prompt_delta_ids) == s.prompt_tokens for s in steps)
        prompts = full_prompts(steps)
        assert all(prompt[: len(prompts[0])] == prompts[0] for prompt in prompts[1:])  # system + user stay a prefix
        assert store.run_by_name(run.name).config["exact_tokens"] is False
        # distinct calls get distinct ids
        assert len({s.assistant_message["tool_calls"][0]["id"] for s in steps}) == 3
    assert _leftovers(engine, run.id) == []


MALFORMED = [
    # the hermes parser passes an unknown name through as a tool call; forager refuses it
    ("unknown tool", hermes("rm_rf", r'\{"command": "ls"\}'), "Unknown tool 'rm_rf'"),
    # arguments that are JSON but not an object of strings
    ("arguments not an object", hermes("bash", r'"ls"'), "must be a JSON object of strings"),
    ("missing argument", hermes("bash", r'\{"cmd": "ls"\}'), "bash needs the arguments command; missing command"),
    ("two calls", hermes("bash", r'\{"command": "ls"\}') + r"\n" + hermes("bash", r'\{"command": "pwd"\}'),
     "Found 2 tool calls"),
    # the parser cannot load invalid JSON: it returns the text as content with no tool_calls
    ("bad JSON", hermes("bash", r'\{"command": \}'), "No tool call found"),
    ("plain text", r"I (will|shall) look", "No tool call found"),
]


@pytest.mark.parametrize(("regex", "error"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_calls_are_format_errors(env, vllm_server, regex, error):  # noqa: F811
    settings, store, engine, tasks = env
    run, summary = _collect(env, vllm_server, regex)
    [episode] = store.episodes(run.id)
    assert episode.exit_reason == "format_errors", episode.error
    steps = store.steps(episode.id)
    assert len(steps) == 3
    for step in steps:
        assert step.tool is None and error in step.format_error, step.format_error
        calls = step.assistant_message.get("tool_calls") or []
        # every call the reply made is answered with the error; a reply with no call gets a user message
        assert [m["role"] for m in step.observation_messages] == (["tool"] * len(calls) or ["user"])
        assert [m.get("tool_call_id") for m in step.observation_messages] == ([c["id"] for c in calls] or [None])
        assert all(error in m["content"] for m in step.observation_messages)
        assert step.completion_token_ids and step.exit_code is None
        if error == "No tool call found":
            assert "tool_calls" not in step.assistant_message and step.assistant_message["content"] == step.model_text
            assert step.finish_reason == "stop"
        else:  # the server did return tool_calls; forager keeps them in the history as they came
            assert step.assistant_message["tool_calls"] and step.finish_reason == "tool_calls"
    assert _leftovers(engine, run.id) == []
