"""The scheduler of a collect run: the run row, then claiming episodes and keeping `concurrency` of them
running, with the sandboxes of the next ones started ahead (three pools: episodes, warm starts, closes).

Episodes are claimed one by one from the store (a claim restarts an episode whose worker died), so several
collectors on one store share a run; each claimed episode is run by the EpisodeRunner (episode.py).
"""

from __future__ import annotations

import platform
import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from forager import __version__
from forager.collect.config import CollectConfig
from forager.collect.episode import EpisodeRunner, EventCallback
from forager.collect.runs import run_row
from forager.collect.summary import CollectSummary, summarize
from forager.config import Settings
from forager.engine.docker_engine import Engine
from forager.llm.chat_tokens import local_chat_tokens
from forager.llm.client import ChatClient
from forager.store import Episode, Image, Run, Store, Task
from forager.store.episodes import LeaseLost


class Collector:
    def __init__(self, settings: Settings, store: Store, engine: Engine, config: CollectConfig,
                 on_event: EventCallback = lambda _episode, _text: None):
        self.settings = settings
        self.store = store
        self.engine = engine
        self.config = config
        self.on_event = on_event
        self.stop = threading.Event()
        self.limits = config.limits
        self.client: ChatClient | None = None
        if config.policy == "llm":
            if not config.llm_url or not config.model:
                raise ValueError("--policy llm needs --llm URL and --model NAME (or use --policy oracle)")
            self.client = ChatClient(config.llm_url, config.model, api_key=config.api_key, max_wait=config.llm_max_wait,
                                     on_wait=lambda message: self.on_event(0, message))
        self.exact_tokens = self._exact_tokens()
        self.chat_tokens = None  # the served model's tokenizer, loaded here when it can be (open_run)
        self.token_bookkeeping = "server (/tokenize)" if self.exact_tokens else None

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
        """The run for this configuration and these tasks (or named `name`): created, or found again to resume it."""
        config = self.config
        versions = {"forager": __version__, "python": platform.python_version(), "docker": self._docker_version()}
        model_info: dict = {}
        if self.client is not None:
            versions["llm_server"] = self.client.server_version()
            model_info = self.client.model_info()
        if self.exact_tokens and self.chat_tokens is None:
            # why: a prompt's ids built here cost ~2 ms, two /tokenize round trips ~30-80 ms a step
            self.chat_tokens, reason = local_chat_tokens(self.client)
            self.token_bookkeeping = reason if self.chat_tokens else f"server (/tokenize): {reason}"
            self.on_event(0, f"token bookkeeping: {self.token_bookkeeping}")
        row = run_row(config, tasks, name=name, exact_tokens=self.exact_tokens, model_info=model_info,
                      versions=versions)
        row.config["token_bookkeeping"] = self.token_bookkeeping
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
        # why now: a writer process takes a second or so to start; it does so while the first sandboxes start
        self.store.step_writer.start()
        try:
            self._collect(run, by_id, images)
        finally:
            self.store.step_writer.close()  # every step written; a writer process ends here, not at exit
        if not self.store.episodes(run.id, status="running") and not self.store.episodes(run.id, status="pending"):
            self.store.finish_run(run.id)
        return summarize(self.store, run)

    def _collect(self, run: Run, by_id: dict[int, Task], images: dict[int, Image]) -> None:
        warm = self.config.concurrency if self.config.warm is None else self.config.warm
        prepared: deque[tuple[Episode, Future | None]] = deque()
        running: dict[Future, Episode] = {}
        exhausted = False

        # why: removing a container takes ~0.5 s; done aside, it neither holds a worker nor counts in the episode
        # (it is the outermost pool, so it is shut down last, after every episode handed it a sandbox)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="close") as closer, \
                ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="episode") as workers, \
                ThreadPoolExecutor(max_workers=max(warm, 1), thread_name_prefix="warm") as starters:
            runner = EpisodeRunner(self.settings, self.store, self.engine, self.config, limits=self.limits,
                                   client=self.client, exact_tokens=self.exact_tokens, chat_tokens=self.chat_tokens,
                                   on_event=self.on_event,
                                   stop=self.stop, close_aside=closer.submit)

            def claim() -> bool:
                nonlocal exhausted
                if exhausted or self.stop.is_set():
                    return False
                episode = self.store.claim_episode(run.id, list(by_id))
                if episode is None:
                    exhausted = True
                    return False
                task = by_id[episode.task_id]
                future = starters.submit(runner.start_sandbox, run, episode, task, images[task.image_id]) if warm else None
                prepared.append((episode, future))
                return True

            try:
                while True:
                    while len(prepared) < warm and claim():
                        pass
                    while len(running) < self.config.concurrency and (prepared or claim()):
                        episode, sandbox = prepared.popleft()
                        task = by_id[episode.task_id]
                        running[workers.submit(runner.run, run, episode, task, images[task.image_id], sandbox)] = episode
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
