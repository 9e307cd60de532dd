"""`forager export` on episodes collected for real: the example repository's tasks solved by the oracle
(two attempts each: the second is a planted duplicate) and episodes of the tiny CWM model on vLLM.
Every format goes to JSONL and Parquet and is read back with Hugging Face `datasets` and pandas.
"""

from __future__ import annotations

import json
import os
import subprocess

import datasets
import pandas as pd
import pytest
from sqlmodel import SQLModel
from transformers import AutoTokenizer

from forager.agent.loop import EpisodeLimits
from forager.collect import CollectConfig, Collector
from forager.config import Settings
from forager.export import rl
from forager.export.common import history
from forager.export.run import ExportRequest, export
from forager.llm.types import Sampling
from forager.llm.tokens import full_prompts
from forager.store import Store
from forager.store.stream import EpisodeFilters, stream_bundles

from .conftest import FORAGER, example_tasks

FORMATS = ("sft", "rl", "cwm", "steps", "swebench-preds")


@pytest.fixture(scope="module")
def collected(tmp_path_factory, engine, vllm_server):  # noqa: F811
    """One store: an oracle run (2 attempts per task) and a tiny-model run (2 tasks, 3 turns each)."""
    settings, store, _builder, _repo, tasks = example_tasks(tmp_path_factory.mktemp("export-env"), engine,
                                                            mutate=2, mine=True)

    def collect(chosen, **config):
        collector = Collector(settings, store, engine, CollectConfig(**config))
        run = collector.open_run(chosen)
        collector.collect(run, chosen)
        collector.close()
        return run

    oracle = collect(tasks, policy="oracle", concurrency=2, episodes_per_task=2)
    llm = collect(tasks[:2], policy="llm", llm_url=vllm_server.url, model=vllm_server.model, concurrency=2,
                  limits=EpisodeLimits(max_turns=3, max_context_tokens=2048, time_limit=120),
                  sampling=Sampling(temperature=1.0, max_tokens=48, seed=0,
                                    extra_body={"structured_outputs": {"regex": r"<tool: bash>\n(ls|pwd)\n</tool>"}}))
    return settings, store, tasks, oracle, llm, vllm_server.model_path


def _load(path) -> tuple[list[dict], pd.DataFrame]:
    kind = "json" if path.suffix == ".jsonl" else "parquet"
    rows = datasets.load_dataset(kind, data_files=str(path), split="train").to_list()
    frame = pd.read_json(path, lines=True) if kind == "json" else pd.read_parquet(path)
    assert len(frame) == len(rows)
    return rows, frame


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_round_trips_through_datasets_and_pandas(collected, tmp_path, fmt, suffix):
    settings, store, tasks, oracle, llm, _model = collected
    out = tmp_path / f"{fmt}{suffix}"
    stats = export(store, ExportRequest(format=fmt, out=out))
    rows, frame = _load(out)
    finished = len(store.episodes(oracle.id)) + len(store.episodes(llm.id))
    assert stats.finished == finished and stats.rows == len(rows) > 0
    by_episode = {e.id: e for e in store.episodes(oracle.id) + store.episodes(llm.id)}
    if fmt in ("rl", "steps"):  # only the model's episodes have token ids
        assert stats.dropped["no_tokens"] == len(store.episodes(oracle.id))
        assert {r["episode_id"] for r in rows} == {e.id for e in store.episodes(llm.id)}
    if fmt == "swebench-preds":
        assert set(frame.columns) == {"instance_id", "model_name_or_path", "model_patch"}
        assert sorted(r["model_patch"] for r in rows) == sorted(e.patch or "" for e in by_episode.values())
        return
    for row in rows:
        episode = by_episode[row["episode_id"]]
        assert row["provenance"]["run"] in (oracle.name, llm.name) and row["provenance"]["forager_version"]
        if fmt == "sft":
            steps = store.steps(episode.id)
            assert row["messages"][0]["content"] == episode.messages[0]["content"]
            assert len(row["messages"]) == 2 + sum(1 + len(s.observation_messages) for s in steps)
            assert json.loads(row["tools"]) == episode.tools and row["patch"] == (episode.patch or "")
            assert row["resolved"] == episode.resolved and row["reward"] == episode.reward
    resolved = sum(bool(by_episode[episode_id].resolved) for episode_id in {r["episode_id"] for r in rows})
    assert stats.episodes == len({r["episode_id"] for r in rows}) and stats.resolved == resolved


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_rl_token_ids_are_the_ones_the_server_returned(collected, tmp_path, suffix):
    settings, store, tasks, oracle, llm, _model = collected
    out = tmp_path / f"rl{suffix}"
    export(store, ExportRequest(format="rl", out=out, filters=EpisodeFilters(run=llm.name)))
    rows, _frame = _load(out)
    assert len(rows) == len(store.episodes(llm.id)) == 2
    for row in rows:
        steps = store.steps(row["episode_id"])
        prompts = full_prompts(steps)
        assert row["prompt_ids"] == prompts[0]
        mask, response = row["loss_mask"], row["response_ids"]
        assert len(response) == len(mask) == len(row["logprobs"]) == len(row["rewards"])
        assert [t for t, m in zip(response, mask, strict=True) if m] == [t for s in steps for t in s.completion_token_ids]
        sampled = [lp for lp, m in zip(row["logprobs"], mask, strict=True) if m]
        assert sampled == pytest.approx([lp for s in steps for lp in s.logprobs], abs=1e-5)
        assert all(lp == 0.0 for lp, m in zip(row["logprobs"], mask, strict=True) if not m)
        assert row["rewards"][-1] == row["reward"] == -1.0 and sum(row["rewards"]) == -1.0
        assert row["excluded"] and row["exit_reason"] == "max_turns"
        assert row["prefix_consistent"] == all(s.prefix_ok is not False for s in steps)
        if row["prefix_consistent"]:  # the whole trajectory is exactly the last call's context
            assert row["prompt_ids"] + response == prompts[-1] + steps[-1].completion_token_ids


@pytest.fixture(scope="module")
def postgres_copy(collected, pg_url) -> Store:
    """Every row of the collected store in a PostgreSQL store, ids kept."""
    source, target = collected[1], Store(pg_url)
    with source.engine.connect() as read, target.engine.begin() as write:
        for table in SQLModel.metadata.sorted_tables:
            rows = [dict(row) for row in read.execute(table.select()).mappings()]
            if rows:
                write.execute(table.insert(), rows)
    return target


@pytest.mark.parametrize("fmt", ["rl", "steps", "sft"])
def test_jsonl_from_stored_text_equals_the_decoded_rows_on_sqlite_and_postgresql(collected, postgres_copy, tmp_path, fmt):
    settings, store, tasks, oracle, llm, _model = collected
    postgres = postgres_copy
    consistent = 0
    for bundle in stream_bundles(postgres, EpisodeFilters(run=llm.name), rl.STEP_COLUMNS, raw_columns=rl.RAW_COLUMNS):
        joined = rl.spliced_token_lists(bundle.steps, 0.0)  # PostgreSQL sends the json column's text as written
        consistent += all(step.prefix_ok is not False for step in bundle.steps)
        assert (joined is not None) == all(step.prefix_ok is not False for step in bundle.steps)
    assert consistent > 0  # the tiny model's episodes in tokens mode take the joined path
    loaded = {}
    for name, chosen in (("sqlite", store), ("postgresql", postgres)):
        for splice in (True, False):
            out = tmp_path / f"{name}-{splice}.jsonl"
            export(chosen, ExportRequest(format=fmt, out=out, splice_json=splice))
            loaded[name, splice] = [json.loads(line) for line in out.read_text().splitlines()]
    first = loaded["sqlite", False]
    assert len(first) > 0 and all(rows == first for rows in loaded.values())


def test_steps_rows_carry_each_calls_ids(collected, tmp_path):
    settings, store, tasks, oracle, llm, _model = collected
    out = tmp_path / "steps.parquet"
    export(store, ExportRequest(format="steps", out=out, filters=EpisodeFilters(run=llm.name)))
    rows, _frame = _load(out)
    for row in rows:
        steps = store.steps(row["episode_id"])
        step = steps[row["step"]]
        assert row["prompt_ids"] == full_prompts(steps)[row["step"]] and row["completion_ids"] == step.completion_token_ids
        assert row["tool"] == "bash" and row["observation"] == step.observation and row["done"] == step.done


def test_cwm_text_is_what_the_models_chat_template_renders(collected, tmp_path):
    settings, store, tasks, oracle, llm, model_path = collected
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    out = tmp_path / "cwm.jsonl"
    export(store, ExportRequest(format="cwm", out=out, filters=EpisodeFilters(run=llm.name)))
    rows = {r["episode_id"]: r for r in _load(out)[0]}
    bundles = list(stream_bundles(store, EpisodeFilters(run=llm.name), ("assistant_message", "observation_messages")))
    for bundle in bundles:
        expected = tokenizer.apply_chat_template(history(bundle), tokenize=False)
        assert rows[bundle.episode.id]["text"] == expected


def test_filters_limit_and_their_counts(collected, tmp_path):
    settings, store, tasks, oracle, llm, _model = collected
    out = tmp_path / "sft.jsonl"
    stats = export(store, ExportRequest(format="sft", out=out, filters=EpisodeFilters(resolved_only=True)))
    assert stats.rows == len(tasks) * 2 and stats.dropped["resolved_only"] == 2 and stats.resolved_share == 1.0
    stats = export(store, ExportRequest(format="sft", out=out, filters=EpisodeFilters(
        run=oracle.name, kind="issue-fix", exit_reasons=["submitted"], min_reward=1.0)))
    issue_fix = sum(t.kind == "issue-fix" for t in tasks)
    assert stats.rows == 2 * issue_fix and stats.dropped["run"] == 2 and stats.dropped["kind"] == 2 * (len(tasks) - issue_fix)
    assert stats.dropped["exit_reason"] == stats.dropped["min_reward"] == 0
    stats = export(store, ExportRequest(format="sft", out=out, filters=EpisodeFilters(repo="ledger"), limit=3))
    assert stats.rows == 3 and len(pd.read_json(out, lines=True)) == 3
    stats = export(store, ExportRequest(format="sft", out=out, filters=EpisodeFilters(repo="no-such-repo")))
    assert stats.rows == 0 and stats.dropped["repo"] == stats.finished and out.read_text() == ""


def test_dedup_drops_the_planted_duplicates_and_keeps_distinct_episodes(collected, tmp_path):
    settings, store, tasks, oracle, llm, _model = collected
    stats = export(store, ExportRequest(format="sft", out=tmp_path / "sft.parquet", dedup=True,
                                        filters=EpisodeFilters(run=oracle.name)))
    rows, _frame = _load(tmp_path / "sft.parquet")
    # each task's second attempt repeats the first one's actions; different tasks' fixes differ
    assert stats.dropped["dedup"] == len(tasks) and sorted(r["instance_id"] for r in rows) == sorted(t.instance_id for t in tasks)
    assert all(r["attempt"] == 0 for r in rows)


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FORAGER_DB": settings.db, "COLUMNS": "200"}
    return subprocess.run([FORAGER, "export", *args], env=env, capture_output=True, text=True, timeout=300)


def test_cli_exports_and_prints_stats(collected, tmp_path):
    settings, store, tasks, oracle, llm, _model = collected
    out = tmp_path / "cwm.parquet"
    proc = _cli(settings, "--format", "cwm", "--out", str(out), "--run", oracle.name, "--mask-observations", "0.5", "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["rows"] == len(_load(out)[0]) == 2 * len(tasks) and stats["dropped"]["run"] == 2
    proc = _cli(settings, "--format", "rl", "--out", str(tmp_path / "rl.jsonl"))
    assert proc.returncode == 0 and "no_tokens:" in proc.stdout and "export rl" in proc.stdout, proc.stderr
    for args, message in [
        (("--format", "xml", "--out", "x.jsonl"), "--format 'xml': choose sft, rl, cwm, steps, swebench-preds"),
        (("--format", "sft", "--out", "x.csv"), "must end in .jsonl or .parquet"),
        (("--format", "sft", "--out", "x.jsonl", "--run", "nope"), "--run 'nope': no such run"),
    ]:
        proc = _cli(settings, *args)
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
