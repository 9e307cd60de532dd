"""Policies: who decides the next tool call. An LLM behind an OpenAI-compatible server, or the scripted oracle.

A policy sees the message history and answers with a Decision; it hears what its call did through
`observe`. The loop does not care which kind it talks to, so the oracle exercises exactly the code
path a model does (tools, store, reward), and validates a task and its environment end to end.
"""

from __future__ import annotations

import shlex
import time
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from forager.agent.formats import CwmFormat, ToolFormat, render_cwm
from forager.llm.chat_tokens import first_difference
from forager.llm.types import Completion, Sampling
from forager.sandbox.models import ToolCall, ToolResult
from forager.tasks.patches import file_changes

if TYPE_CHECKING:  # the client is handed in: the loop and its policies load no HTTP code
    from forager.llm.chat_tokens import LocalChatTokens
    from forager.llm.client import ChatClient

ORACLE_PATCH = "/tmp/forager-oracle.patch"


class Decision(BaseModel):
    """A policy's reply: its raw text, the message it adds to the history, the call (or why there is none)."""

    text: str
    assistant_message: dict
    call: ToolCall | None = None
    format_error: str | None = None
    tool_calls: list[dict] | None = None
    completion: Completion | None = None  # what the model call returned (None for scripted policies)
    tokenize_seconds: float = 0.0  # exact tokens: time spent building this call's prompt ids (local or server)


class Policy(Protocol):
    format: ToolFormat

    def decide(self, messages: list[dict], max_tokens: int) -> Decision: ...
    def observe(self, call: ToolCall, result: ToolResult) -> None: ...


class LLMPolicy:
    """A model on an OpenAI-compatible server; the reply's tool call is read by the tool format.

    With `exact_tokens` (vLLM, CWM text format) the prompt goes out as token ids: the previous prompt,
    the completion exactly as sampled, then the chat template's tokens for the new messages. The model
    is never shown a re-tokenisation of its own reply, so every call's prompt extends the last one and
    the stored ids are one consistent trajectory. Without it the server renders the messages each
    turn, and the loop records where its tokens stop extending the previous call's.

    The template's tokens come from the server's /tokenize (two calls a step), or, given `chat_tokens`
    (the served model's tokenizer loaded here, `forager.llm.chat_tokens.local_chat_tokens`), from local
    bookkeeping in O(new tokens). Local ids are trusted only once they matched the server's in this
    episode: the opening prompt on the first call, the first suffix on the second. Where they differ the
    episode uses the server from then on, and `token_source` says why.
    """

    def __init__(self, client: ChatClient, tool_format: ToolFormat, sampling: Sampling, tools: list[dict] | None,
                 *, exact_tokens: bool = False, chat_tokens: LocalChatTokens | None = None):
        self.client = client
        self.format = tool_format
        self.sampling = sampling
        self.tools = tools
        self.exact_tokens = exact_tokens
        self.chat_tokens = chat_tokens
        # "local", "server", or "server (local differed at token N)" / "server (local failed: ...)"
        self.token_source = "local" if chat_tokens is not None and exact_tokens else "server"
        self.ids: list[int] | None = None  # exact_tokens: the conversation so far, as the model saw and wrote it
        self.seen = 0  # messages already in `ids`
        self.calls = 0  # exact_tokens: prompts built so far (the first two are checked against the server)

    def decide(self, messages: list[dict], max_tokens: int) -> Decision:
        sampling = self.sampling.model_copy(update={"max_tokens": max(1, min(self.sampling.max_tokens, max_tokens))})
        tokenize_seconds = 0.0
        if self.exact_tokens:
            started = time.perf_counter()
            prompt = self._next_prompt(messages)
            tokenize_seconds = time.perf_counter() - started
            completion = self.client.complete(prompt, sampling)
            self.ids, self.seen = prompt + completion.completion_token_ids, len(messages) + 1
        else:
            completion = self.client.chat(messages, sampling, self.tools)
        parsed = self.format.parse(completion.text, completion.tool_calls)
        raw = completion.text
        if completion.tool_calls and completion.completion_token_ids:
            # why: the server parsed the calls out of the text; the store keeps what the model wrote
            raw = self.client.detokenize(completion.completion_token_ids) or raw
        return Decision(
            text=raw, assistant_message=self.format.assistant_message(completion.text, completion.tool_calls),
            call=parsed.call, format_error=parsed.error, tool_calls=completion.tool_calls, completion=completion,
            tokenize_seconds=tokenize_seconds,
        )

    def _next_prompt(self, messages: list[dict]) -> list[int]:
        self.calls += 1
        if self.token_source != "local":
            return self._server_prompt(messages)
        try:
            local = self._local_prompt(messages)
        except Exception as exc:  # why: a template that does not render here only means the server renders it
            self.token_source = f"server (local failed: {exc.__class__.__name__}: {str(exc)[:200]})"
            return self._server_prompt(messages)
        if self.calls > 2:
            return local
        server = self._server_prompt(messages)  # the check: this episode's opening prompt, then its first suffix
        at = first_difference(local, server)
        if at is not None:
            self.token_source = f"server (local differed at token {at})"
        return server

    def _local_prompt(self, messages: list[dict]) -> list[int]:
        assert self.chat_tokens is not None
        if self.ids is None:
            return self.chat_tokens.prompt_ids(messages)
        suffix = self.chat_tokens.next_tokens(messages, self.seen)
        return self.ids + suffix.ids if suffix.extends else suffix.ids

    def _server_prompt(self, messages: list[dict]) -> list[int]:
        rendered = self.client.tokenize(messages, add_generation_prompt=True)
        if self.ids is None:
            return rendered
        # the template's tokens for what came after our last reply: render with and without the new messages
        before = self.client.tokenize(messages[: self.seen], add_generation_prompt=False)
        if rendered[: len(before)] != before:
            return rendered  # a template that is not prefix-stable here: the loop records the break
        return self.ids + rendered[len(before) :]

    def observe(self, call: ToolCall, result: ToolResult) -> None:
        pass


def oracle_plan(gold_patch: str) -> list[ToolCall] | None:
    """The gold patch as tool calls: an edit per hunk, a create per new file, `rm` per deleted file.

    None when the patch needs more than text edits (renames, binary files, mode changes, a missing
    final newline): then only `git apply` reproduces it exactly.
    """
    calls: list[ToolCall] = []
    for change in file_changes(gold_patch):
        if not change.plain:
            return None
        if change.created:
            content = "\n".join(new for _old, new in change.hunks)
            calls.append(ToolCall(name="create", arguments={"path": change.path, "content": content + "\n"}))
        elif change.deleted:
            calls.append(ToolCall(name="bash", arguments={"command": f"rm -- {shlex.quote(change.path)}"}))
        else:
            for old, new in change.hunks:
                if not old.strip():  # nothing to anchor a search on
                    return None
                calls.append(ToolCall(name="edit", arguments={"path": change.path, "search": old, "replace": new}))
    return calls or None


def apply_plan(gold_patch: str) -> list[ToolCall]:
    """The fallback: undo any partial edits, write the patch with `create`, apply it with git."""
    return [
        ToolCall(name="bash", arguments={"command": "git checkout -q -- . && git clean -fdq"}),
        ToolCall(name="create", arguments={"path": ORACLE_PATCH, "content": gold_patch if gold_patch.endswith("\n") else gold_patch + "\n"}),
        # the 3-way fallback merges a patch made against the commit with the install's change to a file
        ToolCall(name="bash", arguments={"command": f"{{ git apply --whitespace=nowarn {ORACLE_PATCH} || "
                                         f"git apply --3way --whitespace=nowarn {ORACLE_PATCH}; }} && rm {ORACLE_PATCH}"}),
    ]


class OraclePolicy:
    """Solves a task with its gold patch through the agent's own tools, then submits the repository's diff."""

    def __init__(self, gold_patch: str):
        self.format = CwmFormat()
        self.gold_patch = gold_patch
        self.plan = oracle_plan(gold_patch) or apply_plan(gold_patch)
        self.plan.append(ToolCall(name="submit", arguments={"path": ""}))
        self.fell_back = False

    def decide(self, messages: list[dict], max_tokens: int) -> Decision:
        call = self.plan.pop(0) if self.plan else ToolCall(name="submit", arguments={"path": ""})
        text = render_cwm(call)
        return Decision(text=text, assistant_message=self.format.assistant_message(text, None), call=call)

    def observe(self, call: ToolCall, result: ToolResult) -> None:
        if result.error and call.name in ("edit", "create") and not self.fell_back:
            # why: a hunk whose text is not unique in the file (or already changed) cannot be an edit
            self.fell_back = True
            self.plan = [*apply_plan(self.gold_patch), ToolCall(name="submit", arguments={"path": ""})]
