"""Export formatters, dedup and writers on hand-built episodes (no Docker, no server)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlmodel import select

from forager.export import rl
from forager.export import run as run_module
from forager.export.cwm import CwmOptions, cwm_row
from forager.export.dedup import NearDuplicates
from forager.export.preds import prediction_row
from forager.export.rl import rl_row
from forager.export.splice import count_items, list_items
from forager.export.run import ExportRequest, export
from forager.export.sft import SCHEMA as SFT_SCHEMA
from forager.export.sft import SftOptions, sft_row
from forager.export import steps as steps_format
from forager.export.steps import step_rows
from forager.export.writer import open_writer
from forager.llm.tokens import full_prompts
from forager.store import Episode, Repo, Run, Step, Store, Task
from forager.store.stream import EpisodeBundle, EpisodeFilters, stream_bundles

OPENING = [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": "Fix the bug."}]
TOOLS = [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object", "properties": {"command": {}}}}}]


def _step(index: int, command: str, *, prompt: list[int], completion: list[int], prefix_ok=None, reward=0.0,
          format_error=None, offset: int = 0) -> Step:
    """`prompt` is the call's whole prompt; the step stores it as the store does: tokens after `offset`."""
    text = f"Looking.\n<tool: bash>\n{command}\n</tool>"
    return Step(
        episode_id=1, index=index, model_text=text, assistant_message={"role": "assistant", "content": text},
        tool=None if format_error else "bash", arguments={} if format_error else {"command": command},
        format_error=format_error, prompt_offset=offset, prompt_delta_ids=prompt[offset:], completion_token_ids=completion,
        logprobs=[-0.5] * len(completion), prefix_ok=prefix_ok, completion_tokens=len(completion),
        observation_messages=[{"role": "user", "content": "<format_error>\nbad\n</format_error>"} if format_error
                              else {"role": "tool", "name": "bash", "content": f"<output>\nran {command}\n</output>"}],
        observation=f"ran {command}", reward=reward, done=reward != 0.0,
    )


def _bundle(steps: list[Step], *, policy="llm", episode_id=1, repo="ledger", reward=-1.0, exit_reason="max_turns",
            tool_format="cwm") -> EpisodeBundle:
    run = Run(id=1, name="r1", policy=policy, model="tiny" if policy == "llm" else None, model_revision="rev",
              tool_format=tool_format, sampling={"temperature": 1.0}, versions={"forager": "0.1.0"})
    episode = Episode(id=episode_id, run_id=1, task_id=1, status="finished", exit_reason=exit_reason, reward=reward,
                      resolved=reward > 0, patch="diff --git a/x b/x\n", messages=OPENING, tools=TOOLS,
                      turns=len(steps), prompt_tokens=len(full_prompts(steps)[-1]) if steps else 0)
    task = Task(id=1, instance_id="ledger__mutate-abc", kind="mutate-fix", repo_id=1, family="operators")
    return EpisodeBundle(run=run, episode=episode, task=task, repo=repo, image_tag="forager-env/ledger:1", steps=steps)


# prompt 0 = [1,2,3]; reply [10,11]; environment adds [20,21,22]; reply [12]; environment adds [23]; reply [13,14]
CONSISTENT = [
    _step(0, "ls", prompt=[1, 2, 3], completion=[10, 11]),
    _step(1, "pwd", prompt=[1, 2, 3, 10, 11, 20, 21, 22], completion=[12], prefix_ok=True, offset=5),
    _step(2, "git status", prompt=[1, 2, 3, 10, 11, 20, 21, 22, 12, 23], completion=[13, 14], prefix_ok=True, reward=-1.0,
          offset=9),
]


def test_rl_response_is_completions_and_environment_tokens_with_aligned_masks():
    row = rl_row(_bundle(CONSISTENT))
    assert row["prompt_ids"] == [1, 2, 3]
    assert row["response_ids"] == [10, 11, 20, 21, 22, 12, 23, 13, 14]
    assert row["prompt_ids"] + row["response_ids"] == full_prompts(CONSISTENT)[-1] + CONSISTENT[-1].completion_token_ids
    assert row["loss_mask"] == [1, 1, 0, 0, 0, 1, 0, 1, 1]
    assert row["logprobs"] == [-0.5, -0.5, 0.0, 0.0, 0.0, -0.5, 0.0, -0.5, -0.5]
    assert row["rewards"] == [0.0] * 8 + [-1.0]
    assert row["excluded"] and row["prefix_consistent"] and row["prefix_breaks"] == []
    assert len(row["response_ids"]) == len(row["loss_mask"]) == len(row["logprobs"]) == len(row["rewards"])


def test_rl_row_after_a_prefix_break_is_built_from_the_per_call_ids_and_says_so():
    broken = [CONSISTENT[0], _step(1, "pwd", prompt=[1, 2, 3, 10, 99, 20, 21], completion=[12], prefix_ok=False, reward=1.0)]
    row = rl_row(_bundle(broken, reward=1.0, exit_reason="submitted"))
    assert row["response_ids"] == [10, 11, 20, 21, 12] and row["loss_mask"] == [1, 1, 0, 0, 1]
    assert not row["prefix_consistent"] and row["prefix_breaks"] == [1]
    assert not row["excluded"] and row["rewards"][-1] == 1.0


def test_rl_has_no_row_without_token_ids():
    oracle = [_step(0, "ls", prompt=[], completion=[])]
    assert rl_row(_bundle(oracle, policy="oracle")) is None
    assert step_rows(_bundle(oracle, policy="oracle")) == []


def test_step_rows_one_per_call_with_reward_on_the_last():
    rows = step_rows(_bundle(CONSISTENT))
    assert [r["step"] for r in rows] == [0, 1, 2] and [r["is_last"] for r in rows] == [False, False, True]
    assert rows[1]["prompt_ids"] == [1, 2, 3, 10, 11, 20, 21, 22] and rows[2]["reward"] == -1.0
    assert json.loads(rows[0]["arguments"]) == {"command": "ls"}


def test_sft_messages_are_the_history_with_train_flags_and_provenance():
    row = sft_row(_bundle(CONSISTENT))
    roles = [m["role"] for m in row["messages"]]
    assert roles == ["system", "user"] + ["assistant", "tool"] * 3
    assert [m["train"] for m in row["messages"]] == [False, False] + [True, False] * 3
    assert row["messages"][2]["content"] == CONSISTENT[0].model_text
    assert json.loads(row["tools"]) == TOOLS
    assert row["provenance"]["model"] == "tiny" and row["provenance"]["task_family"] == "operators"
    assert row["provenance"]["image"] == "forager-env/ledger:1" and json.loads(row["provenance"]["sampling"]) == {"temperature": 1.0}
    assert row["trajectory_id"] == "r1/ledger__mutate-abc/0" and row["reward"] == -1.0


def test_sft_openai_tool_calls_from_cwm_text_and_format_errors_untrained_on_request():
    steps = [_step(0, "ls", prompt=[], completion=[]), _step(1, "x", prompt=[], completion=[], format_error="No tool call")]
    row = sft_row(_bundle(steps, policy="oracle"), SftOptions(openai_tool_calls=True, train_format_errors=False))
    assistant, tool, bad, error = row["messages"][2:]
    assert assistant["content"] == "Looking." and assistant["tool_calls"][0]["function"] == {"name": "bash", "arguments": '{"command":"ls"}'}
    assert tool["tool_call_id"] == assistant["tool_calls"][0]["id"] and tool["role"] == "tool"
    assert bad["train"] is False and "tool_calls" not in bad and error["role"] == "user"
    assert row["n_format_errors"] == 1


def test_cwm_text_is_the_cwm_serialisation_and_segments_tile_it():
    row = cwm_row(_bundle(CONSISTENT[:1]))
    assert row["text"] == (
        "<|begin_of_text|>"
        "<|start_header_id|>system<|end_header_id|>\n\nYou are an agent.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nFix the bug.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nLooking.\n<tool: bash>\nls\n</tool><|eot_id|>"
        "<|start_header_id|>tool: bash<|end_header_id|>\n\n<output>\nran ls\n</output><|eot_id|>"
    )
    row = cwm_row(_bundle(CONSISTENT))
    segments = row["segments"]
    assert segments[0]["start"] == len("<|begin_of_text|>") and segments[-1]["end"] == len(row["text"])
    assert all(a["end"] == b["start"] for a, b in zip(segments, segments[1:], strict=False))
    assert [s["loss"] for s in segments] == [False, False] + [True, True] * 3


def test_cwm_openai_tool_calls_render_as_cwm_tool_text():
    step = _step(0, "ls", prompt=[], completion=[])
    call = {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}
    step.assistant_message = {"role": "assistant", "content": None, "tool_calls": [call]}
    text = cwm_row(_bundle([step], tool_format="openai"))["text"]
    assert '<|start_header_id|>assistant<|end_header_id|>\n\n<tool: bash>\n{"command": "ls"}\n</tool><|eot_id|>' in text


def test_cwm_observation_mask_is_seeded_and_close_to_its_share():
    steps = [_step(i, f"echo {i}", prompt=[], completion=[]) for i in range(400)]
    first = cwm_row(_bundle(steps), CwmOptions(mask_observations=0.5, seed=0))
    again = cwm_row(_bundle(steps), CwmOptions(mask_observations=0.5, seed=0))
    other = cwm_row(_bundle(steps), CwmOptions(mask_observations=0.5, seed=1))
    observed = [s["loss"] for s in first["segments"] if s["role"] == "tool: bash"]
    assert first["segments"] == again["segments"] and first["segments"] != other["segments"]
    assert 150 < sum(observed) < 250
    assert all(s["loss"] for s in first["segments"] if s["role"] == "assistant")


def test_dedup_drops_a_near_duplicate_per_repo_and_keeps_distinct_ones():
    def actions(words: list[str], episode_id: int, repo: str = "ledger") -> EpisodeBundle:
        return _bundle([_step(i, w, prompt=[], completion=[]) for i, w in enumerate(words)], episode_id=episode_id, repo=repo)

    base = [f"grep -n name{i} src/ledger/accounts.py" for i in range(30)]
    near = base[:29] + ["grep -n other src/ledger/money.py"]
    distinct = [f"python -m pytest tests/test_money.py -k case{i} -x" for i in range(30)]
    seen = NearDuplicates()
    assert [seen.seen(actions(base, 1)), seen.seen(actions(near, 2)), seen.seen(actions(distinct, 3)),
            seen.seen(actions(base, 4, repo="other"))] == [False, True, False, False]


def test_preds_use_the_model_name_or_the_policy():
    assert prediction_row(_bundle(CONSISTENT)) == {"instance_id": "ledger__mutate-abc", "model_name_or_path": "tiny",
                                                  "model_patch": "diff --git a/x b/x\n"}
    assert prediction_row(_bundle(CONSISTENT, policy="oracle"))["model_name_or_path"] == "oracle"


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_writers_write_atomically_and_read_back(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    writer = open_writer(path, SFT_SCHEMA)
    writer.write([sft_row(_bundle(CONSISTENT))])
    assert not path.exists()  # only the temporary file until commit
    writer.commit()
    frame = pd.read_json(path, lines=True) if suffix == ".jsonl" else pd.read_parquet(path)
    assert list(frame["trajectory_id"]) == ["r1/ledger__mutate-abc/0"] and len(frame["messages"][0]) == 8
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_writer_refuses_other_suffixes_and_abort_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="must end in .jsonl or .parquet"):
        open_writer(tmp_path / "out.csv", SFT_SCHEMA)
    writer = open_writer(tmp_path / "out.parquet", SFT_SCHEMA)
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def _store_with_episodes(path, episodes: int) -> Store:
    """A SQLite store of finished episodes of CONSISTENT's steps (the oracle's every third: no token ids)."""
    store = Store(f"sqlite:///{path}")
    with store.session() as s:
        repo = Repo(url="test://ledger", name="ledger")
        s.add(repo)
        s.flush()
        run = Run(name="r1", policy="llm", model="tiny", sampling={"temperature": 1.0}, versions={"forager": "0.1.0"})
        task = Task(instance_id="ledger__mutate-abc", kind="mutate-fix", repo_id=repo.id, family="operators")
        s.add_all([run, task])
        s.flush()
        for number in range(episodes):
            episode = Episode(run_id=run.id, task_id=task.id, attempt=number, status="finished", reward=float(number % 2),
                              resolved=bool(number % 2), exit_reason="submitted", messages=OPENING, tools=TOOLS, turns=3)
            s.add(episode)
            s.flush()
            for step in CONSISTENT:
                row = step.model_dump(exclude={"id", "episode_id"})
                if number % 3 == 0:
                    row.update(prompt_offset=0, prompt_delta_ids=[], completion_token_ids=[])
                s.add(Step(**row, episode_id=episode.id))
        s.commit()
    return store


@pytest.mark.parametrize(("fmt", "workers"), [("sft", 2), ("rl", 2), ("cwm", 2), ("steps", 3), ("rl", 5)])
def test_parallel_jsonl_export_is_the_sequential_file_byte_for_byte(tmp_path, monkeypatch, fmt, workers):
    store = _store_with_episodes(tmp_path / "store.db", 25)
    monkeypatch.setattr(run_module, "PARALLEL_MIN_EPISODES", 4)
    ranges = run_module._parallel_ranges(store, ExportRequest(format=fmt, out=tmp_path / "x.jsonl", workers=workers),
                                         matching=25)
    assert len(ranges) == workers
    one = export(store, ExportRequest(format=fmt, out=tmp_path / "one.jsonl", workers=1))
    two = export(store, ExportRequest(format=fmt, out=tmp_path / "two.jsonl", workers=workers))
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    assert one.rows > 0 and one.model_dump(exclude={"out", "seconds", "steps_per_second"}) == \
        two.model_dump(exclude={"out", "seconds", "steps_per_second"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.jsonl", "store.db", "store.db-shm", "store.db-wal", "two.jsonl"]  # no parts left


def test_streamed_steps_keep_their_column_types(tmp_path):
    store = _store_with_episodes(tmp_path / "store.db", 2)
    bundle = list(stream_bundles(store, EpisodeFilters(), rl.STEP_COLUMNS + ("done", "assistant_message")))[1]  # has ids
    assert [step.prefix_ok for step in bundle.steps] == [None, True, True] and bundle.steps[1].prefix_ok is True
    assert bundle.steps[0].done is False and bundle.steps[0].assistant_message == CONSISTENT[0].assistant_message
    assert bundle.steps[1].prompt_delta_ids == CONSISTENT[1].prompt_delta_ids


@pytest.mark.parametrize(("text", "items"), [
    ("[1,2,3]", "1,2,3"), ("[]", ""), ("[ 7, -0.25, 1e-05 ]", "7, -0.25, 1e-05"),
    ("[1,[2]]", None), ('[1,"2"]', None), ("[NaN,1]", None), ("[-Infinity]", None), ("{}", None), ("1", None),
])
def test_list_items_splices_only_flat_lists_of_numbers(text, items):
    assert list_items(text) == items
    if items is not None:
        assert count_items(items) == len(json.loads(text))


def _store_of_episodes(path, episodes: list[list[Step]]) -> Store:
    store = _store_with_episodes(path, 0)
    with store.session() as s:
        run, task = s.exec(select(Run)).one(), s.exec(select(Task)).one()
        for number, steps in enumerate(episodes):
            episode = Episode(run_id=run.id, task_id=task.id, attempt=number, status="finished", reward=-1.0 + number,
                              exit_reason="submitted", messages=OPENING, tools=TOOLS, turns=len(steps))
            s.add(episode)
            s.flush()
            s.add_all([Step(**step.model_dump(exclude={"id", "episode_id"}), episode_id=episode.id) for step in steps])
        s.commit()
    return store


def test_rl_and_step_rows_joined_from_stored_text_load_as_the_decoded_rows(tmp_path):
    short_logprobs = [CONSISTENT[0], CONSISTENT[1].model_copy(update={"logprobs": []})]
    nan_logprob = [CONSISTENT[0].model_copy(update={"logprobs": [float("nan"), -0.5]})]
    broken = [CONSISTENT[0], _step(1, "pwd", prompt=[1, 2, 3, 10, 99, 20, 21], completion=[12], prefix_ok=False)]
    oracle = [_step(0, "ls", prompt=[], completion=[])]
    store = _store_of_episodes(tmp_path / "store.db", [CONSISTENT, short_logprobs, nan_logprob, broken, oracle, CONSISTENT])
    with store.engine.begin() as connection:  # an older store's spacing: json.dumps' default separators
        connection.exec_driver_sql("UPDATE steps SET prompt_delta_ids = '[1, 2,  3 ]' WHERE episode_id = 6 AND \"index\" = 0")
    raw = list(stream_bundles(store, EpisodeFilters(), steps_format.STEP_COLUMNS, raw_columns=rl.RAW_COLUMNS))
    # the others fall back to decoding; a prefix break is joined per call (each prompt is stored whole)
    assert [rl.spliced_token_lists(b.steps, 1.0) is not None for b in raw] == [True, False, False, False, False, True]
    assert [steps_format.spliced_calls(b.steps) is not None for b in raw] == [True, False, False, True, False, True]

    loaded, tokens = {}, {}
    for fmt in ("rl", "steps"):
        for splice in (True, False):
            stats = export(store, ExportRequest(format=fmt, out=tmp_path / "out.jsonl", workers=1, splice_json=splice))
            loaded[fmt, splice] = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
            tokens[fmt, splice] = stats.tokens
            for row in loaded[fmt, splice]:  # the counts are the lists' lengths, joined or decoded
                assert row["n_prompt_tokens"] == len(row["prompt_ids"])
                assert row.get("n_response_tokens", row.get("n_completion_tokens")) == \
                    len(row.get("response_ids", row.get("completion_ids")))
        assert loaded[fmt, True] == loaded[fmt, False] and tokens[fmt, True] == tokens[fmt, False]
    rows = loaded["rl", True]
    assert len(rows) == 5 and rows[0]["response_ids"] == [10, 11, 20, 21, 22, 12, 23, 13, 14]
    assert rows[0]["rewards"] == [0.0] * 8 + [-1.0]
    assert rows[1]["logprobs"] == [-0.5, -0.5, 0.0, 0.0, 0.0, 0.0]  # the missing one reads 0.0
    assert rows[2]["logprobs"] == [None, -0.5]  # NaN is no JSON: null, as orjson writes it
    assert rows[4]["prompt_ids"] == [1, 2, 3] and rows[4]["n_response_tokens"] == 9
    calls = loaded["steps", True]
    assert [c["prompt_ids"] for c in calls[-3:]] == full_prompts(CONSISTENT)
    assert [c["n_prompt_tokens"] for c in calls[-3:]] == [3, 8, 10]


def test_a_write_holds_at_most_batch_tokens_so_long_episodes_do_not_pile_up(tmp_path):
    import pyarrow.parquet as pq

    store = _store_with_episodes(tmp_path / "store.db", 12)  # 8 with token ids, 12 tokens each in rl
    whole = export(store, ExportRequest(format="rl", out=tmp_path / "whole.parquet"))
    split = export(store, ExportRequest(format="rl", out=tmp_path / "split.parquet", batch_tokens=30))
    assert whole.rows == split.rows == 8 and whole.tokens == split.tokens == 96
    assert pq.ParquetFile(tmp_path / "whole.parquet").num_row_groups == 1
    assert pq.ParquetFile(tmp_path / "split.parquet").num_row_groups == 3  # 3 rows reach 36 tokens: 3 + 3 + 2
    assert pd.read_parquet(tmp_path / "split.parquet").equals(pd.read_parquet(tmp_path / "whole.parquet"))
