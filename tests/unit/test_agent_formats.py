"""Tool-call formats, prompts, the oracle's plan and the client's pure parts (no Docker, no server)."""

from __future__ import annotations

import json

import pytest

from forager.agent.formats import (
    CwmFormat,
    OpenAIFormat,
    format_named,
    observation_text,
    parse_cwm,
    parse_openai,
    render_cwm,
    tool_schemas,
)
from forager.agent.policy import OraclePolicy, oracle_plan
from forager.agent.prompts import opening_messages
from forager.llm.client import is_context_error, parse_completion
from forager.llm.tokens import full_prompts, prefix_check
from forager.sandbox.models import ToolCall, ToolResult

EDIT = "I will fix it.\n<tool: edit>\nsrc/a.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n</tool>"


def test_cwm_bash_call_keeps_the_command_verbatim():
    parsed = parse_cwm("<think>look</think>\n<tool: bash>\ncd src && grep -n 'x  y' *.py\necho done\n</tool>")
    assert parsed.error is None
    assert parsed.call == ToolCall(name="bash", arguments={"command": "cd src && grep -n 'x  y' *.py\necho done"})


def test_cwm_edit_block_is_split_into_path_search_replace():
    call = parse_cwm(EDIT).call
    assert call.arguments == {"path": "src/a.py", "search": "    return a - b", "replace": "    return a + b"}


@pytest.mark.parametrize(
    "call",
    [
        ToolCall(name="bash", arguments={"command": "ls -la\n"}),
        ToolCall(name="edit", arguments={"path": "a.py", "search": "x = 1\ny = 2", "replace": ""}),
        ToolCall(name="create", arguments={"path": "new.py", "content": "print('hi')\n\n"}),
        ToolCall(name="submit", arguments={"path": ""}),
        ToolCall(name="submit", arguments={"path": "/tmp/fix.diff"}),
    ],
)
def test_render_and_parse_round_trip(call):
    assert parse_cwm(render_cwm(call)).call == call


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("I think the bug is in a.py", "No tool call found"),
        ("<tool: bash>\nls\n</tool>\n<tool: bash>\npwd\n</tool>", "Found 2 tool calls"),
        ("<tool: bash>\nls", "Malformed tool call"),
        ("<tool: python>\nprint(1)\n</tool>", "Unknown tool 'python'"),
        ("<tool: bash>\n\n</tool>", "is empty"),
        ("<tool: edit>\na.py\nold\nnew\n</tool>", "exactly one SEARCH/REPLACE block"),
        ("<tool: edit>\na.py\n=======\n<<<<<<< SEARCH\nx\n>>>>>>> REPLACE\n</tool>", "out of order"),
        ("<tool: create>\n\nbody\n</tool>", "file path on its first line"),
    ],
)
def test_cwm_format_errors_say_what_is_wrong(text, fragment):
    parsed = parse_cwm(text)
    assert parsed.call is None
    assert fragment in parsed.error


def _openai_call(name, arguments, call_id="call_1"):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_openai_tool_calls_are_checked_against_the_schema():
    ok = parse_openai([_openai_call("edit", json.dumps({"path": "a.py", "search": "a", "replace": "b"}))])
    assert ok.call == ToolCall(name="edit", arguments={"path": "a.py", "search": "a", "replace": "b"})
    assert "missing replace" in parse_openai([_openai_call("edit", json.dumps({"path": "a", "search": "a"}))]).error
    assert "not valid JSON" in parse_openai([_openai_call("bash", "{command: ls")]).error
    assert "Found 2" in parse_openai([_openai_call("bash", "{}"), _openai_call("bash", "{}")]).error
    assert "No tool call" in parse_openai(None).error
    assert "JSON object of strings" in parse_openai([_openai_call("bash", json.dumps({"command": 3}))]).error


def test_openai_observation_answers_the_call_id():
    fmt = OpenAIFormat()
    calls = [_openai_call("bash", '{"command": "ls"}', "call_42")]
    message = fmt.observation_message(ToolCall(name="bash", arguments={"command": "ls"}), "out", calls)
    assert message == {"role": "tool", "tool_call_id": "call_42", "name": "bash", "content": "out"}
    assert fmt.assistant_message("", calls) == {"role": "assistant", "content": None, "tool_calls": calls}
    assert [t["function"]["name"] for t in fmt.request_tools(120)] == ["bash", "edit", "create", "submit"]
    assert CwmFormat().request_tools(120) is None
    with pytest.raises(ValueError, match="unknown tool format 'xml'"):
        format_named("xml")


def test_tool_schemas_require_what_the_parser_requires():
    required = {t["function"]["name"]: t["function"]["parameters"]["required"] for t in tool_schemas(60)}
    assert required == {"bash": ["command"], "edit": ["path", "search", "replace"], "create": ["path", "content"], "submit": []}


def test_observation_is_wrapped_with_the_budget():
    text = observation_text("hello", turns_left=3, tokens_left=900)
    assert text == "<output>\nhello\n</output>\n<budget>\n* Remaining turns: 3\n* Remaining tokens: 900\n</budget>"
    assert "Remaining tokens" not in observation_text("x", 1, None)


def test_opening_messages_describe_tools_in_the_chosen_format():
    cwm = opening_messages("It breaks.", tool_format="cwm", repo_path="/testbed", max_turns=7, command_timeout=30)
    assert [m["role"] for m in cwm] == ["system", "user"]
    assert "<tool: edit>" in cwm[0]["content"] and "at most 7 turns" in cwm[0]["content"]
    assert "<issue_description>\nIt breaks.\n</issue_description>" in cwm[1]["content"]
    native = opening_messages("x", tool_format="openai", repo_path="/r", max_turns=1, command_timeout=1, reasoning=True)
    assert "<tool:" not in native[0]["content"] and native[0]["content"].startswith("You are a helpful AI assistant")


def test_prefix_check_finds_the_first_divergence():
    assert prefix_check([1, 2], [3, 4], [1, 2, 3, 4, 5, 6]) == (True, None)
    assert prefix_check([1, 2], [3, 4], [1, 2, 3, 9, 5]) == (False, 3)
    assert prefix_check([1, 2], [3, 4], [1, 2]) == (False, 2)


def test_full_prompts_rebuild_whole_prompts_from_deltas():
    from types import SimpleNamespace as Step

    steps = [Step(prompt_offset=0, prompt_delta_ids=[1, 2], completion_token_ids=[3]),
             Step(prompt_offset=3, prompt_delta_ids=[4], completion_token_ids=[5, 6]),
             Step(prompt_offset=0, prompt_delta_ids=[1, 2, 9, 4, 5], completion_token_ids=[7]),  # a break: stored whole
             Step(prompt_offset=6, prompt_delta_ids=[8], completion_token_ids=[])]
    assert full_prompts(steps) == [[1, 2], [1, 2, 3, 4], [1, 2, 9, 4, 5], [1, 2, 9, 4, 5, 7, 8]]


def test_parse_completion_reads_vllm_token_fields():
    body = {
        "prompt_token_ids": [1, 2, 3],
        "choices": [{"message": {"content": "<tool: bash>\nls\n</tool>"}, "finish_reason": "stop", "token_ids": [7, 8],
                     "logprobs": {"content": [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -1.25}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 2}},
    }
    completion = parse_completion(body, 0.1)
    assert completion.prompt_token_ids == [1, 2, 3] and completion.completion_token_ids == [7, 8]
    assert completion.logprobs == [-0.5, -1.25] and completion.cached_tokens == 2
    assert completion.finish_reason == "stop" and completion.text.startswith("<tool: bash>")
    assert is_context_error(400, "This model's maximum context length is 2048 tokens")
    assert not is_context_error(400, "unknown field") and not is_context_error(500, "maximum context length")


GOLD = """diff --git a/src/m.py b/src/m.py
--- a/src/m.py
+++ b/src/m.py
@@ -1,3 +1,3 @@
 def f(a, b):
-    return a - b
+    return a + b
 
@@ -10,2 +10,3 @@ def g():
     x = 1
+    y = 2
     return x
diff --git a/src/new.py b/src/new.py
new file mode 100644
--- /dev/null
+++ b/src/new.py
@@ -0,0 +1,2 @@
+A = 1
+B = 2
diff --git a/src/old.py b/src/old.py
deleted file mode 100644
--- a/src/old.py
+++ /dev/null
@@ -1 +0,0 @@
-gone = True
"""


def test_oracle_plan_turns_a_gold_patch_into_tool_calls():
    plan = oracle_plan(GOLD)
    assert [c.name for c in plan] == ["edit", "edit", "create", "bash"]
    assert plan[0].arguments == {"path": "src/m.py", "search": "def f(a, b):\n    return a - b\n",
                                 "replace": "def f(a, b):\n    return a + b\n"}
    assert plan[1].arguments["replace"] == "    x = 1\n    y = 2\n    return x"
    assert plan[2].arguments == {"path": "src/new.py", "content": "A = 1\nB = 2\n"}
    assert plan[3].arguments == {"command": "rm -- src/old.py"}


def test_oracle_falls_back_to_git_apply_when_an_edit_fails():
    no_newline = GOLD.replace("+    return a + b\n", "+    return a + b\n\\ No newline at end of file\n")
    assert oracle_plan(no_newline) is None
    oracle = OraclePolicy(GOLD)
    first = oracle.decide([], 100)
    assert first.call.name == "edit" and first.text == render_cwm(first.call)
    oracle.observe(first.call, ToolResult(output="no match", error=True))
    names = [oracle.decide([], 100).call.name for _ in range(4)]
    assert names == ["bash", "create", "bash", "submit"]
