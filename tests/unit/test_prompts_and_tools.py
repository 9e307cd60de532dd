"""The tool registry, the prompts as data files, and the run identity that includes them (no Docker, no server)."""

from __future__ import annotations

import json
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from types import SimpleNamespace

import pytest

import forager.collect.config as collect_config
from forager.agent.formats import parse_cwm, parse_openai, tool_schemas
from forager.agent.prompts import TEMPLATE_NAMES, opening_messages, prompt_sha256, templates
from forager.collect import CollectConfig
from forager.sandbox.container import TOOLS_LINE, Sandbox
from forager.sandbox.tools import TOOLS, TOOLS_BY_NAME

ROOT = Path(__file__).resolve().parents[2]
# What the prompts, schemas and format errors were before they became data files: the same inputs must give
# the same bytes, or the model is shown something else than the runs before it were.
GOLDEN = json.loads((Path(__file__).parent / "golden" / "prompts.json").read_text())
TASKS = [SimpleNamespace(instance_id="ledger-1", repo_name="ledger"), SimpleNamespace(instance_id="ledger-2", repo_name="ledger")]


@pytest.mark.parametrize("case", GOLDEN["opening"], ids=lambda c: "-".join(str(v) for v in c["args"].values()))
def test_opening_messages_are_byte_identical_to_the_code_they_replaced(case):
    assert opening_messages(case["statement"], **case["args"]) == case["messages"]


def test_schemas_format_errors_and_tool_lists_are_unchanged():
    assert {str(t): tool_schemas(t) for t in (1, 60, 120)} == GOLDEN["schemas"]
    for text, error in GOLDEN["errors"].items():
        if text.startswith(("[", "null")):
            assert parse_openai(json.loads(text)).error == error
        else:
            assert parse_cwm(text).error == error
    assert TOOLS_LINE == GOLDEN["tools_line"]


def test_each_tool_is_one_value_that_every_layer_reads():
    assert [t.name for t in TOOLS] == ["bash", "edit", "create", "submit"]
    for tool in TOOLS:
        assert set(tool.required) <= set(tool.arguments)
        assert callable(getattr(Sandbox, tool.method)), tool.name  # the implementation it dispatches to
        assert tool.cwm_syntax.startswith(f"<tool: {tool.name}>\n") and tool.cwm_syntax.endswith("\n</tool>")
        expected_arguments = {"text": 1, "line": 1, "line+text": 2, "line+block": 3}[tool.cwm_layout]
        assert len(tool.arguments) == expected_arguments, tool.name
    schema = {s["function"]["name"]: s["function"] for s in tool_schemas(30)}
    assert schema["bash"]["description"] == TOOLS_BY_NAME["bash"].describe(30) and "30 seconds" in schema["bash"]["description"]


def test_the_templates_are_package_data():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["forager"]
    shipped = sorted(p.relative_to(ROOT / "forager").as_posix() for p in (ROOT / "forager/agent/templates").iterdir())
    assert shipped == sorted(f"agent/templates/{name}.txt" for name in TEMPLATE_NAMES)
    assert all(any(fnmatch(path, glob) for glob in globs) for path in shipped), shipped


def test_the_prompt_hash_follows_every_template_and_tool_doc():
    base = prompt_sha256()
    assert prompt_sha256(templates()) == base
    for name in TEMPLATE_NAMES:
        assert prompt_sha256({**templates(), name: templates()[name] + " "}) != base, name
    changed = [t.model_copy(update={"doc": t.doc + "!"}) if t.name == "edit" else t for t in TOOLS]
    assert prompt_sha256(tools=tuple(changed)) != base
    # which method runs a tool is not something the model sees
    moved = [t.model_copy(update={"method": "_other"}) for t in TOOLS]
    assert prompt_sha256(tools=tuple(moved)) == base


def test_a_changed_prompt_names_another_run(monkeypatch):
    config = CollectConfig(policy="oracle")
    name = config.run_name(TASKS)
    assert name.startswith("ledger-oracle-") and config.run_name(list(reversed(TASKS))) == name
    # runtime settings do not change what an episode is
    assert config.model_copy(update={"concurrency": 9, "warm": 0}).run_name(TASKS) == name
    assert config.identity(TASKS)["prompt_sha256"] == prompt_sha256()
    monkeypatch.setattr(collect_config, "prompt_sha256", lambda: "another prompt")
    assert config.run_name(TASKS) != name
