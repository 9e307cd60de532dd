"""`forager collect`: run a policy's episodes on tasks, one sandbox each, every step into the store.

Flow per run: plan an episode row per (task, attempt) -> claim them one by one (a claim restarts an
episode whose worker died) -> a warm pool starts the sandboxes of the next episodes while the
current ones run -> the loop (agent/loop.py) records each step as it happens -> a submitted patch is
graded in a fresh container from the same image (tasks/evaluate.py, the same grading as validation)
-> the reward goes on the last step. Running it again with the same configuration resumes the run.
"""

from __future__ import annotations

import hashlib
import json
import platform
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from forager import __version__
from forager.agent.formats import format_named, tool_schemas
from forager.agent.loop import EpisodeLimits, EpisodeOutcome, ExitReason, StepRecord, run_episode
from forager.agent.policy import LLMPolicy, OraclePolicy, Policy
from forager.agent.prompts import opening_messages
from forager.engine.docker_engine import Engine
from forager.config import Settings
from forager.llm.client import ChatClient
from forager.llm.types import Sampling
from forager.sandbox.container import Sandbox
from forager.sandbox.errors import SandboxError
from forager.sandbox.models import SandboxLimits
from forager.store import Episode, Image, Run, Step, Store, Task
from forager.store.episodes import LeaseLost
from forager.tasks.evaluate import Grade, evaluate_in_image

EventCallback = Callable[[int, str], None]


# settings that do not change what an episode is: a rerun with other values resumes the same run
RUNTIME_FIELDS = {"llm_url", "api_key", "concurrency", "warm", "llm_max_wait"}


class CollectConfig(BaseModel):
    """Everything that decides how episodes are collected; recorded with the run."""

    policy: Literal["llm", "oracle"] = "llm"
    llm_url: str | None = None
    model: str | None = None
    api_key: str | None = Field(default=None, exclude=True)  # never stored
    tool_format: Literal["cwm", "openai"] = "cwm"
    prompt_mode: Literal["auto", "tokens", "messages"] = Field(
        default="auto",
        description="tokens: prompts sent as exact token ids (vLLM); messages: the server renders the chat; "
        "auto: tokens when the server can (vLLM's /tokenize) and the format is cwm",
    )
    reasoning: bool = Field(default=False, description="start the system prompt with CWM's reasoning preamble")
    sampling: Sampling = Field(default_factory=Sampling)
    limits: EpisodeLimits = Field(default_factory=EpisodeLimits)
    sandbox: SandboxLimits = Field(default_factory=SandboxLimits)
    episodes_per_task: int = Field(default=1, ge=1)
    concurrency: int = Field(default=2, ge=1)
    warm: int | None = Field(default=None, ge=0, description="sandboxes started ahead (default: concurrency)")
    fail_reward: float = Field(default=-1.0, description="reward of an unresolved episode (CWM: -1; or 0)")
    llm_max_wait: float = Field(default=600.0, description="seconds to wait for a server that is down")

    def run_name(self, tasks: list[Task]) -> str:
        identity = self.model_dump(mode="json", exclude=RUNTIME_FIELDS)
        blob = json.dumps([identity, sorted(t.instance_id for t in tasks)], sort_keys=True)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
        who = self.policy if self.policy == "oracle" else (self.model or "model").rstrip("/").rsplit("/", 1)[-1]
        repos = sorted({t.repo_name or "repo" for t in tasks})
        return f"{'+'.join(repos)[:60]}-{who}-{digest}"


class CollectSummary(BaseModel):
    run: str
    run_id: int
    episodes: int = 0
    finished: int = 0
    resolved: int = 0
    resolved_rate: float = 0.0
    exit_reasons: dict[str, int] = Field(default_factory=dict)
    steps: int = 0
    mean_steps: float = 0.0
    completion_tokens: int = 0
    cached_tokens: int = 0
    llm_seconds: float = 0.0
    env_seconds: float = 0.0
    start_seconds: float = 0.0
    grade_seconds: float = 0.0
    wall_seconds: float = 0.0
    prefix_breaks: int = Field(default=0, description="model calls whose prompt did not extend the previous call")
    prompt_tokens: int = Field(default=0, description="prompt tokens over all model calls")
    prefix_cache_hit_rate: float | None = Field(default=None, description="cached / prompt tokens, as the server reported")
    reusable_rate: float | None = Field(
        default=None, description="share of prompt tokens that were the previous call's prompt + reply: the best "
        "hit rate an append-only history allows")

    @property
    def cache_warning(self) -> str | None:
        """A line when the server reused much less of the prompts than it could have."""
        if self.prefix_cache_hit_rate is None or not self.reusable_rate or self.steps < 10:
            return None
        if self.prefix_cache_hit_rate >= 0.5 * self.reusable_rate:
            return None
        return (f"prefix-cache hit rate {self.prefix_cache_hit_rate:.0%} of prompt tokens, though "
                f"{self.reusable_rate:.0%} repeated the previous call: check the server has prefix caching on "
                "(forager serve does), that sliding-window models keep --prefix-cache-retention-interval 0, "
                "and that prompts go as token ids (--prompt-mode tokens)")


def summarize(store: Store, run: Run) -> CollectSummary:
    episodes = store.episodes(run.id)
    done = [e for e in episodes if e.status == "finished"]
    summary = CollectSummary(run=run.name, run_id=run.id, episodes=len(episodes), finished=len(done))
    summary.resolved = sum(bool(e.resolved) for e in done)
    summary.resolved_rate = round(summary.resolved / len(done), 4) if done else 0.0
    summary.exit_reasons = dict(Counter(e.exit_reason for e in done))
    summary.steps = sum(e.turns for e in done)
    summary.mean_steps = round(summary.steps / len(done), 2) if done else 0.0
    for name in ("completion_tokens", "cached_tokens"):
        setattr(summary, name, sum(getattr(e, name) for e in done))
    for name in ("llm_seconds", "env_seconds", "start_seconds", "grade_seconds", "wall_seconds"):
        setattr(summary, name, round(sum(getattr(e, name) for e in done), 2))
    summary.prefix_breaks = store.prefix_breaks(run.id)
    prompt, cached, reusable, reported = store.cache_totals(run.id)
    summary.prompt_tokens = prompt
    if prompt:
        summary.prefix_cache_hit_rate = round(cached / prompt, 4) if reported else None
        summary.reusable_rate = round(reusable / prompt, 4)
    return summary


class Collector:
    def __init__(self, settings: Settings, store: Store, engine: Engine, config: CollectConfig,
                 on_event: EventCallback = lambda _episode, _text: None):
        self.settings = settings
        self.store = store
        self.engine = engine
        self.config = config
        self.on_event = on_event
        self.stop = threading.Event()
        self.format = format_named(config.tool_format)
        self.limits = config.limits
        self.client: ChatClient | None = None
        if config.policy == "llm":
            if not config.llm_url or not config.model:
                raise ValueError("--policy llm needs --llm URL and --model NAME (or use --policy oracle)")
            self.client = ChatClient(config.llm_url, config.model, api_key=config.api_key, max_wait=config.llm_max_wait,
                                     on_wait=lambda message: self.on_event(0, message))
        self.exact_tokens = self._exact_tokens()

    def _exact_tokens(self) -> bool:
        mode = self.config.prompt_mode
        if self.client is None or mode == "messages":
            return False
        if self.config.tool_format != "cwm":
            if mode == "tokens":
                raise ValueError("--prompt-mode tokens needs --format cwm (OpenAI tool calls are parsed by the server)")
            return False
        return mode == "tokens" or self.client.supports_tokens()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    # -- the run -------------------------------------------------------------------------------
    def open_run(self, tasks: list[Task], name: str | None = None) -> Run:
        """The run for this configuration and these tasks: created, or found again to resume it."""
        config = self.config
        versions = {"forager": __version__, "python": platform.python_version(), "docker": self._docker_version()}
        model_info: dict = {}
        if self.client is not None:
            versions["llm_server"] = self.client.server_version()
            model_info = self.client.model_info()
        row = Run(
            name=name or config.run_name(tasks), policy=config.policy, model=config.model,
            model_revision=model_info.get("root"), llm_url=config.llm_url, tool_format=config.tool_format,
            sampling=config.sampling.model_dump(mode="json"),
            config={**config.model_dump(mode="json"), "tasks": [t.instance_id for t in tasks],
                    "exact_tokens": self.exact_tokens,
                    "max_model_len": model_info.get("max_model_len")},
            versions=versions, chat_template_sha256=_chat_template_sha256(model_info.get("root")),
        )
        if model_info.get("max_model_len"):
            # why: the server's context is the real limit; the budget shown to the model must not promise more
            self.limits = config.limits.model_copy(update={
                "max_context_tokens": min(config.limits.max_context_tokens, model_info["max_model_len"])})
        run, _created = self.store.get_or_create_run(row)
        self.store.plan_episodes(run.id, [t.id for t in tasks], config.episodes_per_task)
        return run

    def _docker_version(self) -> str | None:
        try:
            return self.engine.client.version().get("Version")
        except Exception:  # noqa: BLE001 - provenance only; never worth failing a run
            return None

    def collect(self, run: Run, tasks: list[Task]) -> CollectSummary:
        """Run every unfinished episode of `run` on `tasks`, `concurrency` at a time, sandboxes started ahead."""
        by_id = {t.id: t for t in tasks}
        images = {t.image_id: self.store.image(t.image_id) for t in tasks}
        warm = self.config.concurrency if self.config.warm is None else self.config.warm
        prepared: deque[tuple[Episode, Future | None]] = deque()
        running: dict[Future, Episode] = {}
        exhausted = False

        # why: removing a container takes ~0.5 s; done aside, it neither holds a worker nor counts in the episode
        # (it is the outermost pool, so it is shut down last, after every episode handed it a sandbox)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="close") as self._closer, \
                ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="episode") as workers, \
                ThreadPoolExecutor(max_workers=max(warm, 1), thread_name_prefix="warm") as starters:

            def claim() -> bool:
                nonlocal exhausted
                if exhausted or self.stop.is_set():
                    return False
                episode = self.store.claim_episode(run.id, list(by_id))
                if episode is None:
                    exhausted = True
                    return False
                task = by_id[episode.task_id]
                future = starters.submit(self._start_sandbox, run, episode, task, images[task.image_id]) if warm else None
                prepared.append((episode, future))
                return True

            try:
                while True:
                    while len(prepared) < warm and claim():
                        pass
                    while len(running) < self.config.concurrency and (prepared or claim()):
                        episode, sandbox = prepared.popleft()
                        task = by_id[episode.task_id]
                        running[workers.submit(self._episode, run, episode, task, images[task.image_id], sandbox)] = episode
                        while len(prepared) < warm and claim():
                            pass
                    if not running:
                        wait_s = self.store.lease_wait(run.id, list(by_id))
                        if wait_s is None or self.stop.is_set():
                            break  # every episode is finished, or held by this worker
                        # other workers hold the rest: one that dies frees its episodes when its lease ends
                        self.stop.wait(min(max(wait_s, 1.0), 5.0))  # a short poll: a finished run ends idle workers soon
                        exhausted = False
                        continue
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        episode = running.pop(future)
                        try:
                            future.result()  # a bug in our own code should surface, not vanish
                        except LeaseLost as exc:  # its lease ran out and another worker took it: theirs now
                            self.on_event(episode.id, f"done: {exc}")
            finally:
                self.stop.set()
                for _episode, future in prepared:  # started ahead, never used: remove them
                    if future is not None:
                        future.add_done_callback(lambda f: f.exception() is None and f.result().close())
        if not self.store.episodes(run.id, status="running") and not self.store.episodes(run.id, status="pending"):
            self.store.finish_run(run.id)
        return summarize(self.store, run)

    # -- one episode ---------------------------------------------------------------------------
    def _start_sandbox(self, run: Run, episode: Episode, task: Task, image: Image) -> Sandbox:
        limits = self.config.sandbox.model_copy(update={
            # why: the container must outlive a warm wait and the episode, then die on its own
            "deadline": int(max(self.config.sandbox.deadline, 2 * self.config.limits.time_limit + 600)),
        })
        sandbox = Sandbox(self.engine, image.tag, repo_path=self.settings.repo_path, limits=limits,
                          labels={"forager.run": str(run.id), "forager.episode": str(episode.id)})
        try:
            sandbox.start(task.bug_patch)
        except BaseException:
            sandbox.close()
            raise
        return sandbox

    def _policy(self, task: Task) -> Policy:
        if self.config.policy == "oracle":
            return OraclePolicy(task.gold_patch)
        tools = self.format.request_tools(self.config.sandbox.command_timeout)
        return LLMPolicy(self.client, self.format, self.config.sampling, tools, exact_tokens=self.exact_tokens)

    def _episode(self, run: Run, episode: Episode, task: Task, image: Image, sandbox_future: Future | None) -> None:
        started = time.monotonic()
        self.on_event(episode.id, "starting sandbox")
        policy = self._policy(task)
        messages = opening_messages(
            task.problem_statement, tool_format=policy.format.name, repo_path=self.settings.repo_path,
            max_turns=self.config.limits.max_turns, command_timeout=self.config.sandbox.command_timeout,
            reasoning=self.config.reasoning,
        )
        tools = tool_schemas(self.config.sandbox.command_timeout)
        sandbox = None
        try:
            try:
                sandbox = sandbox_future.result() if sandbox_future else self._start_sandbox(run, episode, task, image)
            except Exception as exc:  # noqa: BLE001 - a sandbox that cannot start fails this episode only
                error = str(exc) if isinstance(exc, SandboxError) else f"{exc.__class__.__name__}: {exc}"
                self._finish(episode, EpisodeOutcome(exit_reason=ExitReason.env_error, error=error.splitlines()[0]),
                             None, started, start_seconds=time.monotonic() - started)
                return
            start_seconds = time.monotonic() - started
            self.store.update_episode(episode.id, container=sandbox.container.name if sandbox.container else None,
                                      messages=messages, tools=tools, start_seconds=round(start_seconds, 3))

            def record(step: StepRecord) -> None:
                self.store.record_step(_step_row(episode.id, step), turns=step.index + 1)
                self.on_event(episode.id, f"turn {step.index + 1}/{self.limits.max_turns}")

            try:
                outcome = run_episode(policy, sandbox, messages, self.limits, record,
                                      should_stop=self.stop.is_set)
            except InterruptedError:
                return  # left `running`: the next collect restarts it cleanly
        finally:
            if sandbox is not None:
                self._closer.submit(sandbox.close)
        grade = None
        if outcome.exit_reason == ExitReason.submitted and outcome.patch:
            self.on_event(episode.id, "grading")
            self.store.update_episode(episode.id)  # extends the lease across a long test run
            try:
                grade = evaluate_in_image(self.engine, self.settings, image, task, outcome.patch)
            except Exception as exc:  # noqa: BLE001 - Docker failing to grade is the environment's fault, not the agent's
                outcome.exit_reason = ExitReason.env_error
                outcome.error = f"grading failed: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            else:
                outcome.exit_reason, outcome.error = graded_exit(grade, outcome.patch_from_file, outcome.error)
        self._finish(episode, outcome, grade, started, start_seconds=start_seconds)

    def _finish(self, episode: Episode, outcome: EpisodeOutcome, grade, started: float, *, start_seconds: float) -> None:
        resolved = bool(grade and grade.resolved)
        reward = episode_reward(outcome.exit_reason, resolved, self.config.fail_reward)
        row = self.store.finish_episode(
            episode.id, last_step_reward=reward,
            exit_reason=outcome.exit_reason.value, error=outcome.error, reward=reward, resolved=resolved,
            patch=outcome.patch, grade=grade.model_dump(mode="json") if grade else {}, turns=outcome.turns,
            flags=grade.flags() if grade else [],
            prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens,
            cached_tokens=outcome.cached_tokens, llm_seconds=round(outcome.llm_seconds, 3),
            env_seconds=round(outcome.env_seconds, 3), start_seconds=round(start_seconds, 3),
            grade_seconds=round(grade.seconds, 3) if grade else 0.0, wall_seconds=round(time.monotonic() - started, 3),
        )
        mark = "resolved" if row.resolved else outcome.exit_reason.value
        self.on_event(episode.id, f"done: {mark}")


def graded_exit(grade: Grade, patch_from_file: bool, error: str | None = None) -> tuple[ExitReason, str | None]:
    """How a submitted episode ends once graded (pure): a diff forager computed itself that does not apply is
    forager's failure (env_error), not the agent's; a patch the agent handed over as a file stays the agent's."""
    if not grade.applied and not patch_from_file:
        return ExitReason.env_error, f"grading: forager's diff of the repository does not apply ({grade.error})"
    return ExitReason.submitted, error


def episode_reward(exit_reason: ExitReason, resolved: bool, fail_reward: float) -> float | None:
    """+1 resolved, else `fail_reward`; no reward at all when the environment failed (pure)."""
    if exit_reason == ExitReason.env_error:
        return None  # why: a broken sandbox or grader says nothing about the agent; exports exclude it
    return 1.0 if resolved else fail_reward


def _chat_template_sha256(model_root: str | None) -> str | None:
    """The served model's chat template, hashed, when the model is a local directory (provenance of prompts)."""
    if not model_root or not Path(model_root).is_dir():
        return None
    root = Path(model_root)
    template = root / "chat_template.jinja"
    if template.is_file():
        return hashlib.sha256(template.read_bytes()).hexdigest()
    config = root / "tokenizer_config.json"
    if config.is_file():
        text = json.loads(config.read_text()).get("chat_template")
        return hashlib.sha256(json.dumps(text).encode()).hexdigest() if text else None
    return None


def _step_row(episode_id: int, step: StepRecord) -> Step:
    decision, result, completion = step.decision, step.result, step.decision.completion
    row = Step(
        episode_id=episode_id, index=step.index, model_text=decision.text, assistant_message=decision.assistant_message,
        tool=decision.call.name if decision.call else None, arguments=decision.call.arguments if decision.call else {},
        format_error=decision.format_error, observation_messages=step.observation_messages, observation=step.observation,
        prefix_ok=step.prefix_ok, prefix_divergence=step.prefix_divergence,
    )
    if completion is not None:
        row.prompt_offset, row.prompt_delta_ids = step.prompt_offset, completion.prompt_token_ids[step.prompt_offset :]
        row.completion_token_ids = completion.completion_token_ids
        row.logprobs, row.finish_reason = completion.logprobs, completion.finish_reason
        row.prompt_tokens, row.completion_tokens = completion.prompt_tokens, completion.completion_tokens
        row.cached_tokens, row.llm_seconds = completion.cached_tokens, round(completion.seconds, 4)
    if result is not None:
        row.raw_output, row.output_bytes, row.truncated = result.raw_output, result.output_bytes, result.truncated
        row.exit_code, row.timed_out, row.tool_error = result.exit_code, result.timed_out, result.error
        row.env_seconds = round(result.seconds, 4)
    return row
