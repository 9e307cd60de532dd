"""`forager collect` for real: the example repository's image, its tasks, sandboxes in a real Docker engine,
the oracle policy and a tiny CWM model served by vLLM on the CPU, every step in a real SQLite store.

The tiny model has random weights; vLLM's structured outputs (a regex) make its replies the tool calls a
test needs, so these tests assert on mechanics (steps stored, token ids, prefix check, exit reasons,
cleanup, faults) and the oracle asserts success.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from forager.agent.formats import render_cwm
from forager.agent.loop import EpisodeLimits
from forager.engine.docker_engine import LABEL
from forager.collect import CollectConfig, Collector
from forager.llm.types import Sampling
from forager.llm.tokens import full_prompts
from forager.sandbox.models import SandboxLimits, ToolCall
from forager.store import Run

from .conftest import FORAGER, cli_env, example_tasks, run_cli, wait_for_steps

QUICK = EpisodeLimits(max_turns=3, max_context_tokens=4096, time_limit=120)


@pytest.fixture(scope="module")
def env(tmp_path_factory, engine):
    """The example repository with two mutate-fix tasks and its mined issue-fix task, in one store."""
    settings, store, _builder, repo, tasks = example_tasks(tmp_path_factory.mktemp("collect-env"), engine,
                                                           mutate=2, mine=True)
    assert {t.kind for t in tasks} == {"mutate-fix", "issue-fix"}
    return settings, store, engine, repo, tasks


def _collector(env, **config) -> Collector:
    settings, store, engine, _repo, _tasks = env
    return Collector(settings, store, engine, CollectConfig(**config))


def _leftovers(engine, run_id: int) -> list:
    # why the low-level list: the high-level one inspects each container it lists, and one that ends meanwhile
    # (an auto-removed sandbox whose collector is gone) is a 404
    return engine.client.api.containers(all=True, filters={"label": [LABEL, f"forager.run={run_id}"]})


def _containers_end_with_their_collector(engine, run_id: int, timeout: float = 60) -> None:
    """A killed collector's sandboxes stop by themselves (their shell's stdin was the collector's) and, auto-removed,
    disappear: no sweep, no rerun needed."""
    deadline = time.monotonic() + timeout
    while _leftovers(engine, run_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _leftovers(engine, run_id) == [], "a killed collector's containers outlived it"


def _llm(server, regex: str, **config) -> dict:
    return dict(policy="llm", llm_url=server.url, model=server.model, limits=QUICK,
                sampling=Sampling(temperature=1.0, max_tokens=64, seed=0,
                                  extra_body={"structured_outputs": {"regex": regex}}), **config)


def test_oracle_resolves_every_task_through_the_tools(env):
    settings, store, engine, _repo, tasks = env
    collector = _collector(env, policy="oracle", concurrency=2)
    run = collector.open_run(tasks)
    summary = collector.collect(run, tasks)

    assert summary.finished == len(tasks) and summary.resolved == len(tasks), summary
    for episode in store.episodes(run.id):
        steps = store.steps(episode.id)
        assert episode.exit_reason == "submitted" and episode.resolved and episode.reward == 1.0
        assert [s.index for s in steps] == list(range(len(steps)))
        assert steps[-1].tool == "submit" and steps[-1].done and steps[-1].reward == 1.0
        assert all(s.reward == 0.0 and not s.done for s in steps[:-1])
        assert {s.tool for s in steps[:-1]} <= {"edit", "create", "bash"} and steps[0].tool == "edit"
        assert "<output>" in steps[0].observation and "Remaining turns" in steps[0].observation
        assert episode.patch.startswith("diff --git") and episode.grade["resolved"]
        assert episode.messages[0]["role"] == "system" and len(episode.tools) == 4
    assert _leftovers(engine, run.id) == []
    # run again: everything is finished, nothing runs twice
    again = _collector(env, policy="oracle", concurrency=2)
    assert again.open_run(tasks).id == run.id
    assert again.collect(run, tasks).steps == summary.steps


def test_tiny_model_episodes_capture_tokens_and_check_prefixes(env, vllm_server):
    settings, store, engine, _repo, tasks = env
    collector = _collector(env, **_llm(vllm_server, r"<tool: bash>\n(ls|pwd|git status --short)\n</tool>"),
                           concurrency=2, episodes_per_task=2)
    run = collector.open_run(tasks[:2])
    summary = collector.collect(run, tasks[:2])

    assert summary.finished == 4 and summary.exit_reasons == {"max_turns": 4}
    assert summary.completion_tokens > 0 and summary.llm_seconds > 0 and summary.env_seconds > 0
    for episode in store.episodes(run.id):
        steps = store.steps(episode.id)
        assert len(steps) == 3 and episode.reward == -1.0 and steps[-1].reward == -1.0
        for step in steps:
            assert re.fullmatch(r"<tool: bash>\n(ls|pwd|git status --short)\n</tool>", step.model_text)
            assert step.tool == "bash" and step.exit_code == 0
            assert step.prompt_delta_ids and step.completion_token_ids
            assert len(step.logprobs) == len(step.completion_token_ids)
            assert step.prompt_tokens == step.prompt_offset + len(step.prompt_delta_ids)
        # tokens in, tokens out: each prompt is the previous prompt + the completion as sampled + new tokens
        # (so each step stores only the tokens its prompt adds: the store grows linearly, not quadratically)
        assert steps[0].prefix_ok is None and [s.prefix_ok for s in steps[1:]] == [True, True]
        prompts = full_prompts(steps)
        for index in (1, 2):
            assert steps[index].prompt_offset == len(prompts[index - 1]) + len(steps[index - 1].completion_token_ids)
    stored = store.run_by_name(run.name)
    assert stored.config["exact_tokens"] and stored.versions["llm_server"]
    assert summary.prefix_breaks == 0 and summary.cached_tokens > 0  # append-only prompts hit the prefix cache
    # (hits also come from the opening prompt the episodes share, so they may exceed the within-episode share)
    assert summary.prefix_cache_hit_rate > 0 and 0 < summary.reusable_rate < 1 and summary.cache_warning is None
    assert _leftovers(engine, run.id) == []


def test_server_rendered_prompts_record_where_tokens_drift(env, vllm_server):
    """With the server rendering the chat each turn, the model's reply is re-tokenised: the loop says where."""
    settings, store, engine, _repo, tasks = env
    collector = _collector(env, **_llm(vllm_server, r"<tool: bash>\n(ls|git status --short)\n</tool>"),
                           prompt_mode="messages")
    run = collector.open_run(tasks[:1])
    summary = collector.collect(run, tasks[:1])
    [episode] = store.episodes(run.id)
    steps = store.steps(episode.id)
    assert not store.run_by_name(run.name).config["exact_tokens"]
    assert all(s.prefix_ok is not None for s in steps[1:])
    broken = [s for s in steps if s.prefix_ok is False]
    assert summary.prefix_breaks == len(broken) > 0  # measured on vLLM 0.32 with this tokenizer: every turn drifts
    prompts = full_prompts(steps)
    for step in broken:  # stored whole, and the divergence is where the re-rendered prompt differs
        previous = steps[step.index - 1]
        at = step.prefix_divergence
        assert step.prompt_offset == 0 and len(step.prompt_delta_ids) == step.prompt_tokens
        assert (prompts[step.index - 1] + previous.completion_token_ids)[at] != prompts[step.index][at]


@pytest.mark.parametrize(
    ("regex", "config", "reason"),
    [
        (r"I (will|shall) look", {}, "format_errors"),
        (r"<tool: bash>\nsleep 2\n</tool>", {"limits": EpisodeLimits(max_turns=9, max_context_tokens=4096, time_limit=3)},
         "time_limit"),
        (r"<tool: bash>\nls\n</tool>", {"limits": EpisodeLimits(max_turns=5, max_context_tokens=300, time_limit=60)},
         "context_exceeded"),
        (r"<tool: submit>\n\n</tool>", {}, "max_turns"),
    ],
)
def test_exit_reasons(env, vllm_server, regex, config, reason):
    settings, store, engine, _repo, tasks = env
    collector = _collector(env, **{**_llm(vllm_server, regex), **config})
    run = collector.open_run(tasks[:1])
    collector.collect(run, tasks[:1])
    [episode] = store.episodes(run.id)
    assert episode.exit_reason == reason, episode.error
    if reason == "format_errors":
        steps = store.steps(episode.id)
        assert len(steps) == 3 and all(s.tool is None and "No tool call" in s.format_error for s in steps)
        assert [m["role"] for m in steps[0].observation_messages] == ["user"]
    if regex.startswith("<tool: submit>"):  # nothing changed: submit refuses an empty diff and the episode goes on
        steps = store.steps(episode.id)
        assert len(steps) == 3 and all(s.tool == "submit" and s.tool_error for s in steps)
    if reason == "context_exceeded":
        assert len(store.steps(episode.id)) == 1
    assert _leftovers(engine, run.id) == []


def test_dead_server_is_an_llm_error_after_waiting(env):
    settings, store, engine, _repo, tasks = env
    collector = _collector(env, policy="llm", llm_url="http://127.0.0.1:9/v1", model="none", llm_max_wait=2, limits=QUICK)
    run = collector.open_run(tasks[:1])
    started = time.monotonic()
    collector.collect(run, tasks[:1])
    [episode] = store.episodes(run.id)
    assert episode.exit_reason == "llm_error" and "unavailable" in episode.error
    assert time.monotonic() - started >= 2


FAULTS = {
    "hang": ("sleep 1000", lambda s: s.timed_out and "timed out" in s.observation),
    # 5 MB, far past what is kept, in each of 32 episodes at once (the engine's streams carry all of it)
    "flood": ("yes forager | head -c 5000000", lambda s: s.output_bytes >= 5_000_000 and s.truncated
              and len(s.observation) < 3000 and "cut" in s.observation),
    # the shell answered (an exit code, or a timeout it recovered from): the pids limit held
    "fork bomb": ("bomb() { bomb | bomb & }; bomb", lambda s: s.exit_code is not None or s.timed_out),
    "memory hog": ("python3 -c 'x = bytearray(2 << 30)'", lambda s: s.exit_code != 0),
    "binary": ("printf 'ok \\377\\000 end'", lambda s: "\\xff" in s.observation and "\x00" not in s.raw_output),
    "delete repo": ("rm -rf /testbed", lambda s: s.exit_code == 0),
    "network": ("python3 -c 'import urllib.request; urllib.request.urlopen(\"http://1.1.1.1\", timeout=5)'",
                lambda s: s.exit_code != 0),
}


def test_faults_inside_episodes_leave_the_collector_standing(env, vllm_server):
    """32 episodes at once, each the model's every fault in turn (the instant model's script): the collector records
    each one and goes on, every episode runs to its last turn, and no container is left."""
    from forager.dev.instant_model import InstantModelServer

    settings, store, engine, _repo, tasks = env
    # the fork bomb last: its processes outlive its command (the pids limit holds them) and would starve the next
    names = ["hang", "flood", "memory hog", "binary", "network", "delete repo", "fork bomb"]
    assert sorted(names) == sorted(FAULTS)
    script = [render_cwm(ToolCall(name="bash", arguments={"command": FAULTS[name][0]})) for name in names]
    with InstantModelServer(vllm_server.model_path, script=script) as server:
        collector = _collector(env, policy="llm", llm_url=server.url, model=server.model, concurrency=32,
                               episodes_per_task=16, limits=EpisodeLimits(max_turns=len(script), time_limit=300),
                               sandbox=SandboxLimits(command_timeout=10, memory="256m", pids=64, shown_chars=2000))
        run = collector.open_run(tasks[:2])
        collector.collect(run, tasks[:2])
    episodes = store.episodes(run.id)
    assert len(episodes) == 32
    for episode in episodes:
        assert episode.status == "finished" and episode.exit_reason == "max_turns", (episode.id, episode.error)
        steps = store.steps(episode.id)
        assert [s.index for s in steps] == list(range(len(script))), episode.id
        for name, step in zip(names, steps, strict=True):
            assert FAULTS[name][1](step), (name, step.observation[:500])
    assert _leftovers(engine, run.id) == []


def test_server_killed_and_restarted_at_concurrency_32(env, vllm_server):
    """32 episodes at once; the model server is SIGKILLed mid-run (calls in flight are cut) and comes back 3 s later
    on the same port: every episode waits for it and finishes with all its steps, none twice, no container left.
    (The instant model stands in for vLLM here, at 32 episodes; vLLM's own kill and restart is test_vllm_server's.)"""
    from forager.dev.instant_model import InstantModelServer

    settings, store, engine, _repo, tasks = env
    script = [render_cwm(ToolCall(name="bash", arguments={"command": f"sleep 0.3; echo turn {n}"})) for n in range(5)]
    with InstantModelServer(vllm_server.model_path, script=script, delay=0.1, subprocess=True) as server:
        collector = _collector(env, policy="llm", llm_url=server.url, model=server.model, llm_max_wait=120,
                               concurrency=32, episodes_per_task=16,
                               limits=EpisodeLimits(max_turns=len(script), time_limit=300))
        run = collector.open_run(tasks[:2])
        failure: list[BaseException] = []
        worker = threading.Thread(target=lambda: _record_failure(failure, collector.collect, run, tasks[:2]))
        worker.start()
        deadline = time.monotonic() + 120
        while sum(len(store.steps(e.id)) for e in store.episodes(run.id)) < 32 and time.monotonic() < deadline:
            time.sleep(0.2)
        server.kill()
        cut_at = {e.id: len(store.steps(e.id)) for e in store.episodes(run.id)}
        time.sleep(3)
        server.restart()
        worker.join(timeout=300)
    assert not worker.is_alive() and not failure, failure
    episodes = store.episodes(run.id)
    assert len(episodes) == 32 and any(n < len(script) for n in cut_at.values()), cut_at
    assert [e.exit_reason for e in episodes] == ["max_turns"] * 32, [e.error for e in episodes if e.error]
    for episode in episodes:
        assert [s.index for s in store.steps(episode.id)] == list(range(len(script))), episode.id
        assert episode.restarts == 0
    assert _leftovers(engine, run.id) == []


def _record_failure(failure: list, function, *args) -> None:
    try:
        function(*args)
    except BaseException as exc:  # noqa: BLE001 - the test thread reports it
        failure.append(exc)


def test_collector_killed_then_rerun_resumes_without_loss_or_duplicates(env, vllm_server):
    settings, store, engine, repo, tasks = env
    args = ["collect", "--repo", str(repo), "--tasks", "2", "--episodes-per-task", "2", "--concurrency", "2",
            "--llm", vllm_server.url, "--model", vllm_server.model, "--max-turns", "5", "--max-tokens", "32",
            "--regex", r"<tool: bash>\nsleep 1\n</tool>", "--name", "killed-run"]
    proc = subprocess.Popen([FORAGER, *args], env=cli_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    run = wait_for_steps(store, "killed-run", 3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert run is not None
    interrupted = [e.id for e in store.episodes(run.id) if e.status == "running"]
    assert interrupted
    _containers_end_with_their_collector(engine, run.id)

    result = run_cli(*args, "--json", settings=settings, check=True)
    assert '"finished": 4' in result.stdout
    assert _leftovers(engine, run.id) == []  # swept at start, the new ones removed when done
    for episode in store.episodes(run.id):
        steps = store.steps(episode.id)
        assert episode.status == "finished" and [s.index for s in steps] == list(range(5))
        assert episode.restarts == (1 if episode.id in interrupted else 0)


def test_cli_oracle_run_table_json_and_bad_input(env):
    settings, store, engine, repo, tasks = env
    result = run_cli("collect", "--repo", str(repo), "--tasks", "1", "--policy", "oracle", settings=settings, check=True)
    assert "collect: run" in result.stdout and "1 (100%)" in result.stdout
    again = run_cli("collect", "--repo", str(repo), "--tasks", "1", "--policy", "oracle", "--json", settings=settings,
                    check=True)
    assert '"resolved": 1' in again.stdout and "0 of 1 episodes to run" in again.stderr
    bad = run_cli("collect", "--repo", str(repo), settings=settings)
    assert bad.returncode == 2 and "--policy llm needs --llm URL and --model NAME" in bad.stderr
    status = run_cli("status", settings=settings, check=True)
    assert "episodes" in status.stdout


def test_cli_run_resumes_a_named_run_explicitly_and_refuses_an_unknown_one(env):
    """A run made before prompts were hashed has no `prompt_sha256` and another name than today's: the same
    command would start anew, `--run NAME` resumes it (and says its prompts differ)."""
    settings, store, engine, repo, tasks = env
    old, created = store.get_or_create_run(Run(name="made-before-prompt-hashes", policy="oracle", config={}))
    assert created
    args = ["collect", "--repo", str(repo), "--tasks", "1", "--policy", "oracle", "--json"]
    resumed = run_cli(*args, "--run", old.name, settings=settings, check=True)
    summary = json.loads(resumed.stdout)
    assert summary["run"] == old.name and summary["run_id"] == old.id and summary["resolved"] == 1, summary
    assert "1 of 1 episodes to run" in resumed.stderr and "made with other prompts" in resumed.stderr
    again = run_cli(*args, "--run", old.name, settings=settings, check=True)
    assert "0 of 1 episodes to run" in again.stderr and json.loads(again.stdout)["run_id"] == old.id

    unknown = run_cli(*args, "--run", "no-such-run", settings=settings)
    assert unknown.returncode == 2 and "--run 'no-such-run': no such run" in unknown.stderr
    assert "`forager status` lists the runs" in unknown.stderr and store.run_by_name("no-such-run") is None
    both = run_cli(*args, "--run", old.name, "--name", "other", settings=settings)
    assert both.returncode == 2 and "give one of them" in both.stderr


def test_cli_a_job_written_as_a_file_runs_again_and_a_stored_run_writes_its_own(env, tmp_path):
    """`--write-config` writes the job the options describe and runs nothing; `--config` runs it (options given
    beside it win); `--run NAME --write-config` writes the stored run's job, and `--run NAME` alone resumes it."""
    settings, store, engine, repo, tasks = env
    job = tmp_path / "run.toml"
    written = run_cli("collect", "--repo", str(repo), "--tasks", "1", "--policy", "oracle", "--max-turns", "9",
                      "--name", "from-a-file", "--write-config", str(job), settings=settings, check=True)
    assert "wrote the job to" in written.stderr and store.run_by_name("from-a-file") is None
    text = job.read_text()
    assert 'policy = "oracle"' in text and "max_turns = 9" in text and 'name = "from-a-file"' in text

    ran = json.loads(run_cli("collect", "--config", str(job), "--json", settings=settings, check=True).stdout)
    run = store.run_by_name("from-a-file")
    assert ran["run"] == "from-a-file" and ran["resolved"] == 1 and run.config["limits"]["max_turns"] == 9

    stored = tmp_path / "stored.toml"
    run_cli("collect", "--run", "from-a-file", "--write-config", str(stored), settings=settings, check=True)
    back = stored.read_text()
    assert "max_turns = 9" in back and 'run = "from-a-file"' in back and str(repo) in back
    again = run_cli("collect", "--run", "from-a-file", "--json", settings=settings, check=True)
    assert "0 of 1 episodes to run" in again.stderr and json.loads(again.stdout)["run_id"] == run.id

    bad = run_cli("collect", "--config", str(job), "--policy", "nope", settings=settings)
    assert bad.returncode == 2 and "--policy: Input should be 'llm' or 'oracle'" in bad.stderr


# why a script of cheap commands: the test is about the collector at concurrency 32, not the commands
KILL_SCRIPT = [render_cwm(ToolCall(name=name, arguments=arguments)) for name, arguments in (
    ("bash", {"command": "ls"}),
    ("bash", {"command": "sleep 0.3; git status --short"}),
    ("create", {"path": "forager_note.txt", "content": "a note\n"}),
    ("bash", {"command": "sleep 0.3; head -5 README.md"}),
)]  # no submit: the episodes end at --max-turns, ungraded (grading is tested elsewhere)


def test_collector_killed_at_concurrency_32_then_rerun_loses_nothing(env, tmp_path, vllm_server):
    """32 episodes at once on the instant model: SIGKILL mid-run, then the same command again. Every episode that
    had finished keeps its steps as they were, the interrupted ones restart and finish, no step is duplicated or
    missing, no container is left; and every step stored its time split, which the summary reports."""
    from forager.dev.instant_model import InstantModelServer

    settings, store, engine, repo, _tasks = env
    # the tiny model's own directory holds its tokenizer: the module's vLLM fixture made it already
    with InstantModelServer(vllm_server.model_path, script=KILL_SCRIPT, delay=0.2) as server:
        args = ["collect", "--repo", str(repo), "--tasks", "2", "--episodes-per-task", "16", "--concurrency", "32",
                "--llm", server.url, "--model", server.model, "--max-turns", str(len(KILL_SCRIPT)),
                "--name", "killed-at-32"]
        log = tmp_path / "collect.log"
        with log.open("w") as stderr:
            proc = subprocess.Popen([FORAGER, *args], env=cli_env(settings), stdout=subprocess.DEVNULL,
                                    stderr=stderr, start_new_session=True)
        deadline = time.monotonic() + 300
        finished_before: dict[int, list[tuple[int, int]]] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            run = store.run_by_name("killed-at-32")
            episodes = store.episodes(run.id) if run else []
            if any(e.status == "finished" for e in episodes):
                break
            time.sleep(0.3)
        if proc.poll() is not None:
            pytest.fail(f"the collector ended before it was killed: {log.read_text()[-3000:]}")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        run = store.run_by_name("killed-at-32")
        assert run is not None, "the collector never started the run"
        episodes = store.episodes(run.id)
        interrupted = [e.id for e in episodes if e.status == "running"]
        assert interrupted and len(episodes) == 32, [e.status for e in episodes]
        for episode in episodes:
            steps = store.steps(episode.id)
            # group commit never leaves a gap: what a killed episode has is its first steps, in order
            assert [s.index for s in steps] == list(range(len(steps))), episode.id
            if episode.status == "finished":
                finished_before[episode.id] = [(s.id, s.index) for s in steps]
        assert finished_before
        _containers_end_with_their_collector(engine, run.id)

        result = run_cli(*args, "--json", settings=settings, check=True)
    summary = json.loads(result.stdout)
    assert summary["finished"] == 32 and summary["collector_share"] is not None
    assert {"model", "tokenize", "command", "store", "other", "sandbox_wait", "outside_steps"} <= set(summary["time_split"])
    # the prompts' ids were built here and matched the server's on every episode's checked calls
    assert summary["token_sources"] == {"local": 32}
    assert _leftovers(engine, run.id) == []
    for episode in store.episodes(run.id):
        steps = store.steps(episode.id)
        assert episode.status == "finished" and episode.exit_reason == "max_turns", (episode.id, episode.error)
        assert [s.index for s in steps] == list(range(len(KILL_SCRIPT)))
        assert all(s.timings.get("total", 0) > 0 for s in steps)
        if episode.id in finished_before:  # untouched: the same rows
            assert [(s.id, s.index) for s in steps] == finished_before[episode.id] and episode.restarts == 0
        else:
            assert episode.restarts == (1 if episode.id in interrupted else 0)
