"""One episode, start to finish: its sandbox (started here or ahead by the scheduler), its policy and opening
messages, the agent loop recording each step, the grade of a submitted patch in a fresh container, the reward.

An episode that cannot get a sandbox, or whose patch cannot be graded, ends `env_error` with no reward; a stop
request leaves it `running`, so the next collect restarts it cleanly.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

from forager.agent.formats import format_named, tool_schemas
from forager.agent.loop import EpisodeLimits, EpisodeOutcome, ExitReason, StepRecord, run_episode
from forager.agent.policy import LLMPolicy, OraclePolicy, Policy
from forager.agent.prompts import opening_messages
from forager.collect.config import CollectConfig
from forager.collect.reward import episode_reward, graded_exit
from forager.collect.steps import step_row, step_timings
from forager.config import Settings
from forager.engine.docker_engine import Engine
from forager.llm.chat_tokens import LocalChatTokens
from forager.llm.client import ChatClient
from forager.sandbox.container import Sandbox
from forager.sandbox.errors import SandboxError
from forager.store import Episode, Image, Run, Store, Task
from forager.integrity.flags import episode_flags
from forager.tasks.evaluate import Grade, evaluate_in_image
from forager.text import error_line, first_line

EventCallback = Callable[[int, str], None]


# why two: a step goes to the store while the next model call runs, and is waited for only when the step after
# that is recorded. In a real episode it is durable long before (the model and the command take milliseconds at
# least); where the store itself is the limit (bench/store.py: episodes that do nothing between steps), one step
# in flight made every step a wait and a wake-up of its thread, two halve them (the collector's GIL was the limit)
STEPS_IN_FLIGHT = 2


class StepRecorder:
    """An episode's steps handed to the store's group-commit writer, at most STEPS_IN_FLIGHT of them not yet
    acknowledged: a step first waits for the one that many before it (usually long done, while the model and
    the command ran). A step the store refuses raises once it is the oldest in flight (at the record after next,
    or at the flush), so the episode stops there and never finishes with a gap; a running episode left with one
    is restarted from nothing, as any other."""

    def __init__(self, store: Store, episode_id: int, on_turn: Callable[[int], None]):
        self.store, self.episode_id, self.on_turn = store, episode_id, on_turn
        self.pending: deque[Future] = deque()
        self.commands: list[tuple[str, str]] = []  # (bash command, its output): what the flags are read from

    def record(self, step: StepRecord) -> None:
        waited = self._wait(STEPS_IN_FLIGHT - 1)
        started = time.perf_counter()
        row = step_row(self.episode_id, step)
        if row.tool == "bash":
            self.commands.append((str(row.arguments.get("command", "")), row.raw_output))
        self.on_turn(step.index)
        row.timings = step_timings(step, store_wait=waited, bookkeeping=time.perf_counter() - started)
        self.pending.append(self.store.submit_step(row, turns=step.index + 1))

    def flush(self) -> float:
        """Wait for every step in flight to be durable (raises what a write raised); the seconds waited."""
        return self._wait(0)

    def _wait(self, keep: int) -> float:
        """Wait until at most `keep` steps are in flight, oldest first; the seconds waited."""
        started = time.perf_counter()
        while len(self.pending) > keep:
            self.pending.popleft().result()
        return time.perf_counter() - started

    def abandon(self) -> None:
        """The episode stops here: let its last writes land, whatever they say (a restart replaces them)."""
        while self.pending:
            try:
                self.pending.popleft().result()
            except Exception:  # noqa: BLE001 - LeaseLost or a store error: the episode is left as it is
                pass


class EpisodeRunner:
    """What every episode of a run shares (store, engine, client, limits), and the running of one."""

    def __init__(self, settings: Settings, store: Store, engine: Engine, config: CollectConfig, *,
                 limits: EpisodeLimits, client: ChatClient | None, exact_tokens: bool, on_event: EventCallback,
                 chat_tokens: LocalChatTokens | None = None,
                 stop: threading.Event, close_aside: Callable[[Callable[[], None]], object]):
        self.settings, self.store, self.engine, self.config = settings, store, engine, config
        self.limits = limits  # the configured limits, capped by the server's context length
        self.client, self.exact_tokens, self.chat_tokens = client, exact_tokens, chat_tokens
        self.on_event, self.stop, self.close_aside = on_event, stop, close_aside
        self.format = format_named(config.tool_format)

    def start_sandbox(self, run: Run, episode: Episode, task: Task, image: Image) -> Sandbox:
        limits = self.config.sandbox.model_copy(update={
            # why: the container must outlive a warm wait and the episode, then die on its own
            "deadline": int(max(self.config.sandbox.deadline, 2 * self.config.limits.time_limit + 600)),
        })
        # reuse_start_state: the first episode of a task saves its prepared start state as an image; the others
        # start from it and skip the prepare (sandbox/container.py)
        sandbox = Sandbox(self.engine, image.tag, repo_path=self.settings.repo_path, limits=limits,
                          labels={"forager.run": str(run.id), "forager.episode": str(episode.id)},
                          reuse_start_state=True)
        try:
            sandbox.start(task.bug_patch)
        except BaseException:
            sandbox.close()
            raise
        return sandbox

    def policy(self, task: Task) -> Policy:
        if self.config.policy == "oracle":
            return OraclePolicy(task.gold_patch)
        tools = self.format.request_tools(self.config.sandbox.command_timeout)
        return LLMPolicy(self.client, self.format, self.config.sampling, tools, exact_tokens=self.exact_tokens,
                         chat_tokens=self.chat_tokens if self.exact_tokens else None)

    def run(self, run: Run, episode: Episode, task: Task, image: Image, sandbox_future: Future | None) -> None:
        started = time.monotonic()
        self.on_event(episode.id, "starting sandbox")
        policy = self.policy(task)
        messages = opening_messages(
            task.problem_statement, tool_format=policy.format.name, repo_path=self.settings.repo_path,
            max_turns=self.config.limits.max_turns, command_timeout=self.config.sandbox.command_timeout,
            reasoning=self.config.reasoning,
        )
        tools = tool_schemas(self.config.sandbox.command_timeout)
        sandbox = None
        try:
            try:
                sandbox = sandbox_future.result() if sandbox_future else self.start_sandbox(run, episode, task, image)
            except Exception as exc:  # noqa: BLE001 - a sandbox that cannot start fails this episode only
                # a SandboxError's message says it all; another's class says what broke
                error = (first_line(str(exc), None) if isinstance(exc, SandboxError) else "") or error_line(exc, None)
                self._finish(episode, EpisodeOutcome(exit_reason=ExitReason.env_error, error=error),
                             None, started, start_seconds=time.monotonic() - started)
                return
            start_seconds = time.monotonic() - started
            self.store.update_episode(episode.id, container=sandbox.container.name if sandbox.container else None,
                                      messages=messages, tools=tools, start_seconds=round(start_seconds, 3))

            steps = StepRecorder(self.store, episode.id, lambda index: self.on_event(
                episode.id, f"turn {index + 1}/{self.limits.max_turns}"))
            try:
                outcome = run_episode(policy, sandbox, messages, self.limits, steps.record,
                                      should_stop=self.stop.is_set)
                steps.flush()  # every step durable before the episode may finish
            except InterruptedError:
                steps.abandon()
                return  # left `running` (or another worker's now): the next collect restarts it cleanly
        finally:
            if sandbox is not None:
                self.close_aside(sandbox.close)
        grade = None
        if outcome.exit_reason == ExitReason.submitted and outcome.patch:
            grade = self._grade(episode, task, image, outcome)
        self._finish(episode, outcome, grade, started, start_seconds=start_seconds, commands=steps.commands,
                     token_source=getattr(policy, "token_source", None) if self.exact_tokens else None)

    def _grade(self, episode: Episode, task: Task, image: Image, outcome: EpisodeOutcome) -> Grade | None:
        """The submitted patch graded in a fresh container; the outcome's exit reason and error follow the grade."""
        self.on_event(episode.id, "grading")
        self.store.update_episode(episode.id)  # extends the lease across a long test run
        try:
            grade = evaluate_in_image(self.engine, self.settings, image, task, outcome.patch)
        except Exception as exc:  # noqa: BLE001 - Docker failing to grade is the environment's fault, not the agent's
            outcome.exit_reason = ExitReason.env_error
            outcome.error = f"grading failed: {error_line(exc)}"
            return None
        outcome.exit_reason, outcome.error = graded_exit(grade, outcome.patch_from_file, outcome.error)
        return grade

    def _finish(self, episode: Episode, outcome: EpisodeOutcome, grade: Grade | None, started: float, *,
                start_seconds: float, commands: list[tuple[str, str]] = (), token_source: str | None = None) -> None:
        resolved = bool(grade and grade.resolved)
        reward = episode_reward(outcome.exit_reason, resolved, self.config.fail_reward)
        row = self.store.finish_episode(
            episode.id, last_step_reward=reward,
            exit_reason=outcome.exit_reason.value, error=outcome.error, reward=reward, resolved=resolved,
            patch=outcome.patch, grade=grade.model_dump(mode="json") if grade else {}, turns=outcome.turns,
            # what the agent's commands reached for (git past HEAD, outside the repository, the network)
            flags=[*(grade.flags() if grade else []), *episode_flags(list(commands), self.settings.repo_path)],
            prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens,
            cached_tokens=outcome.cached_tokens, llm_seconds=round(outcome.llm_seconds, 3),
            env_seconds=round(outcome.env_seconds, 3), start_seconds=round(start_seconds, 3), token_source=token_source,
            grade_seconds=round(grade.seconds, 3) if grade else 0.0, wall_seconds=round(time.monotonic() - started, 3),
        )
        mark = "resolved" if row.resolved else outcome.exit_reason.value
        self.on_event(episode.id, f"done: {mark}")
