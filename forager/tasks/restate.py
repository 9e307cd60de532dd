"""A mined task's statement rewritten by a served model as the issue a user would file.

The statement forager writes from a validation run (:func:`forager.tasks.statement.issue_statement`) is a
report of failing tests: exact, but it reads like a CI log. A model can turn it into an issue (what the
user did, what they expected, what happened) without knowing the fix, since it is shown only the report.
A rewrite is still checked: one that names a file, module or function the fix changes would point at the
answer, so it is rejected and the report stays, with the reason kept beside it. So is an empty reply or a
failed call: a rewrite is an improvement, never a requirement.

The rules (prompt, reply cleaning, checks) are pure; :class:`Restater` is the one HTTP edge.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
from pydantic import BaseModel

from forager import repos
from forager.config import Settings
from forager.llm.client import ChatClient
from forager.llm.types import LLMError, Sampling
from forager.models import RepoRef
from forager.store import Store
from forager.store.tables import Repo, Task
from forager.tasks.patches import touched_files
from forager.tasks.statement import hidden_names, named_in
from forager.text import one_line

SYSTEM = (
    "You turn test failure reports into bug reports. Write the GitHub issue that a user of this project "
    "would file after running into the problem the report shows: what they did, what they expected and "
    "what happened instead, with the error message. Use only what the report says. Do not suggest a fix, "
    "do not guess which source file or function is at fault, and do not mention that tests exist unless "
    "the report's own tests are the clearest way to reproduce it. Reply with the issue text only: a title "
    "line, then the body."
)
# why: small reports leave the model room; long ones are cut at the same size the statement is
MAX_REPORT_CHARS = 6000
MIN_REWRITE_CHARS = 40

_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)
_FENCE = re.compile(r"^```[\w-]*\n(?P<body>.*?)\n```$", re.DOTALL)


def restate_messages(report: str) -> list[dict]:
    """The chat messages that ask for the rewrite of one report (pure)."""
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Test failure report:\n\n" + report[:MAX_REPORT_CHARS]},
    ]


def clean_reply(text: str) -> str:
    """The issue text of a reply: reasoning blocks and one enclosing code fence removed, ends stripped (pure)."""
    text = _THINK.sub("", text).strip()
    fenced = _FENCE.match(text)
    return (fenced.group("body") if fenced else text).strip()


def rejection(text: str, files: Sequence[str], functions: Sequence[str]) -> str | None:
    """Why a rewrite cannot be the statement, or None when it can (pure).

    Rejected: too short to be an issue, or naming a changed file, module or function (`files`, `functions`
    from :func:`forager.tasks.statement.hidden_names`).
    """
    if len(text) < MIN_REWRITE_CHARS:
        return f"the rewrite is {len(text)} characters, fewer than {MIN_REWRITE_CHARS}"
    names = named_in(text, files, functions)
    if names:
        return "the rewrite names what the fix changes: " + ", ".join(names[:5])
    return None


class Restatement(BaseModel):
    """The outcome of one rewrite: the text when accepted, else why not; and the model asked."""

    model: str
    text: str | None = None
    rejected: str | None = None

    def record(self, report: str) -> dict:
        """What the task keeps in `validation["statement"]`: who wrote its statement and what was set aside."""
        if self.text is not None:
            return {"by": "llm", "model": self.model, "report": report}
        return {"by": "tests", "model": self.model, "rejected": self.rejected}


class Restater:
    """Asks one served model for rewrites (an OpenAI-compatible server: vLLM or any other)."""

    def __init__(self, url: str, model: str, *, sampling: Sampling | None = None, max_wait: float = 30.0):
        # why: a dead server should cost a task its rewrite in seconds, not stall mining for the client's default
        self.client = ChatClient(url, model, timeout=300.0, max_wait=max_wait)
        self.model = model
        self.sampling = sampling or Sampling(temperature=0.0, max_tokens=768)

    def problem(self) -> str | None:
        """Why this server cannot do rewrites (unreachable, or not serving the model), or None: checked once, first."""
        url = self.client.base_url
        try:
            served = [entry.get("id") for entry in self.client.served_models(timeout=10.0)]
        except (httpx.HTTPError, ValueError) as exc:
            return (f"--llm {url}: no OpenAI-compatible server answers there ({exc.__class__.__name__}); start one "
                    "(`forager serve MODEL`) or pass its /v1 address")
        if self.model not in served:
            return f"--model {self.model}: {url} serves {', '.join(map(str, served)) or 'no model'}; pass one of those"
        return None

    def restate(self, report: str, files: Sequence[str], functions: Sequence[str]) -> Restatement:
        try:
            completion = self.client.chat(restate_messages(report), self.sampling)
        except LLMError as exc:
            return Restatement(model=self.model, rejected=f"the model call failed: {one_line(str(exc), 200)}")
        text = clean_reply(completion.text)
        reason = rejection(text, files, functions)
        if reason is None and completion.finish_reason == "length":
            reason = f"the rewrite was cut at {self.sampling.max_tokens} tokens"
        return Restatement(model=self.model, text=None if reason else text, rejected=reason)

    def close(self) -> None:
        self.client.close()


def report_of(task: Task) -> str:
    """The test report a task's statement was (or would be) rewritten from: kept aside once a model rewrote it."""
    return (task.validation or {}).get("statement", {}).get("report") or task.problem_statement


def apply_restatement(task: Task, outcome: Restatement, report: str) -> None:
    """The accepted rewrite becomes the statement (the report stays in `validation`); a rejected one leaves the
    report as the statement, with the reason beside it."""
    task.problem_statement = outcome.text if outcome.text is not None else report
    task.validation = {**(task.validation or {}), "statement": outcome.record(report)}  # new dict: JSON columns


def is_mined(task: Task) -> bool:
    """Tasks whose statement forager wrote from their tests (imported instances have their issue's own text)."""
    return task.kind == "issue-fix" and task.source.startswith("mine")


class RestateRow(BaseModel):
    instance_id: str
    by: str  # "llm" when the rewrite is the statement now, else "tests"
    rejected: str | None = None


def restate_stored(
    store: Store, settings: Settings, restater: Restater, *, repo_name: str | None = None, force: bool = False,
    on_task: Callable[[RestateRow], None] = lambda _row: None,
) -> list[RestateRow]:
    """Rewrite the statements of the store's valid mined tasks; `force` also rewrites those a model already did
    (from their report again, e.g. with another model). Each task is saved as soon as it is done."""
    rows: list[RestateRow] = []
    mirrors: dict[int, Path] = {}
    for task, repo in store.tasks(repo_name=repo_name, kind="issue-fix", valid=True):
        done = (task.validation or {}).get("statement", {}).get("by") == "llm"
        if not is_mined(task) or (done and not force):
            continue
        if repo.id not in mirrors:
            mirrors[repo.id] = _mirror(repo, settings)
        changed = [path for path in touched_files(task.gold_patch) if path.endswith(".py")]
        files, functions = hidden_names(task.gold_patch, repos.read_files_at(mirrors[repo.id], task.base_commit, changed))
        report = report_of(task)
        outcome = restater.restate(report, files, functions)
        apply_restatement(task, outcome, report)
        store.save_task(task)
        rows.append(RestateRow(instance_id=task.instance_id, by=task.validation["statement"]["by"],
                               rejected=outcome.rejected))
        on_task(rows[-1])
    return rows


def _mirror(repo: Repo, settings: Settings) -> Path:
    """The repository's mirror (fetched again when its folder is gone): the sources the hidden names come from."""
    mirror = Path(repo.mirror_path) if repo.mirror_path else None
    if mirror is not None and mirror.is_dir():
        return mirror
    return repos.fetch(RepoRef(url=repo.url), settings.cache_dir).mirror
