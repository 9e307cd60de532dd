"""An instant OpenAI-compatible model server for measurement: real HTTP and real tokens, replies from a script.

To measure the collector alone, the model must cost nothing (or a set time, `--delay`). This answers the
endpoints forager uses the way vLLM does (chat and text completions with token ids, logprobs and usage,
/tokenize, /detokenize, /v1/models, /version), with ids from a real Hugging Face tokenizer directory and chat
prompts rendered by its chat template as vLLM renders them. The reply is the next entry of a script of tool
calls an agent would make (read, grep, test, edit, submit), chosen by the conversation itself: the number of
assistant turns already in it. So the server keeps no state per conversation and concurrent episodes are
independent. The one thing it remembers is an emulated prefix cache (blocks of 16 tokens), so that
`cached_tokens` reads as vLLM's would.

    python -m forager.dev.instant_model --tokenizer DIR [--port 0] [--delay S] [--turns N] [--script FILE]

prints `instant model server on http://HOST:PORT/v1 (model NAME)` and serves until interrupted. In tests
and benches, `InstantModelServer` runs it in a thread of the caller's process or (`subprocess=True`, better
for measuring: the server does not share the GIL with the collector) in a child process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess as sp
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import chain, cycle, islice
from pathlib import Path

from forager.agent.formats import parse_cwm, render_cwm
from forager.sandbox.models import ToolCall

SERVED_NAME = "instant"
MAX_MODEL_LEN = 131_072
BLOCK = 16  # vLLM's prefix-cache block size
VERSION = "instant-model"
URL_LINE = re.compile(r"instant model server on (\S+)")


def _bash(command: str) -> ToolCall:
    return ToolCall(name="bash", arguments={"command": command})


NOTES = "/tmp/forager-notes.txt"
# The default episode: a look around, a middle of reading, searching and testing (repeated by `turns`),
# then notes, a change in the repository (so the submitted patch is not empty), a last test run and submit.
OPENING = [_bash("ls"), _bash("git status --short")]
MIDDLE = [
    _bash('grep -rn "def " --include=*.py . | head -40'),
    _bash('f=$(git ls-files "*.py" | head -1); [ -n "$f" ] && head -80 "$f"'),
    _bash("python -m pytest -x -q 2>&1 | tail -15"),
]
CLOSING = [
    ToolCall(name="create", arguments={"path": NOTES, "content": "notes\n- read the code\n- ran the tests\n"}),
    ToolCall(name="edit", arguments={"path": NOTES, "search": "- ran the tests", "replace": "- ran the tests twice"}),
    ToolCall(name="create", arguments={"path": "forager_instant_note.txt", "content": "written by the instant model\n"}),
    _bash("python -m pytest -q 2>&1 | tail -5"),
    ToolCall(name="submit", arguments={"path": ""}),
]


def default_script(turns: int | None = None) -> list[str]:
    """The built-in replies as CWM text: `turns` calls (default 10), the middle repeated, submit last."""
    if turns is None:
        calls = [*OPENING, *MIDDLE, *CLOSING]
    elif turns < 1:
        raise ValueError("turns must be at least 1")
    elif turns <= len(CLOSING):
        calls = CLOSING[-turns:]
    else:
        calls = [*islice(chain(OPENING, cycle(MIDDLE)), turns - len(CLOSING)), *CLOSING]
    return [render_cwm(call) for call in calls]


def load_script(path: str | Path) -> list[str]:
    """A JSON list of replies: each the raw reply text, or a call `{"name": ..., "arguments": {...}}`."""
    entries = json.loads(Path(path).read_text())
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: a script is a non-empty JSON list of replies")
    return [entry if isinstance(entry, str) else render_cwm(ToolCall(**entry)) for entry in entries]


def count_sequence(ids: list[int], pattern: list[int]) -> int:
    """Non-overlapping occurrences of `pattern` in `ids` (pure; list.index does the scanning)."""
    count, at, first, width = 0, 0, pattern[0], len(pattern)
    while True:
        try:
            at = ids.index(first, at)
        except ValueError:
            return count
        if ids[at : at + width] == pattern:
            count, at = count + 1, at + width
        else:
            at += 1


class PrefixCache:
    """vLLM's prefix caching, as bookkeeping only: which 16-token blocks (by chained hash) it has seen."""

    def __init__(self, capacity: int = 1_000_000):
        self.blocks: OrderedDict[int, None] = OrderedDict()
        self.capacity = capacity
        self.lock = threading.Lock()

    def hit_and_add(self, prompt: list[int], completion: list[int]) -> int:
        """The prompt's leading tokens already cached; then the prompt's and the reply's full blocks are."""
        hashes, chained = [], 0
        tokens = prompt + completion
        for start in range(0, len(tokens) - BLOCK + 1, BLOCK):
            chained = hash((chained, *tokens[start : start + BLOCK]))
            hashes.append(chained)
        prompt_blocks = len(prompt) // BLOCK
        with self.lock:
            hit = 0
            for value in hashes[:prompt_blocks]:
                if value not in self.blocks:
                    break
                hit += 1
            for value in hashes:
                self.blocks[value] = None
                self.blocks.move_to_end(value)
            while len(self.blocks) > self.capacity:
                self.blocks.popitem(last=False)
        # why: like vLLM, the last prompt token is always computed, so a full hit leaves one block out
        return min(hit * BLOCK, max(0, (len(prompt) - 1) // BLOCK * BLOCK))


class BadRequest(Exception):
    """Answered as HTTP 400 with vLLM's error shape."""


class NotFound(BadRequest):
    """Answered as HTTP 404."""


class InstantModel:
    """The server's answers (no HTTP here): a tokenizer, a script, a delay per model call."""

    def __init__(self, tokenizer_dir: str | Path, *, script: list[str] | None = None, turns: int | None = None,
                 delay: float = 0.0, served_name: str = SERVED_NAME, max_model_len: int = MAX_MODEL_LEN,
                 prefix_cache: bool = True):
        from forager.llm.chat_tokens import LocalChatTokens

        self.tokens = LocalChatTokens.load(tokenizer_dir)
        self.tokenizer = self.tokens.tokenizer
        self.root = str(Path(tokenizer_dir).resolve())
        self.script = script or default_script(turns)
        self.parsed = [parse_cwm(reply).call for reply in self.script]
        self.reply_ids = [self.tokens.encode(reply) for reply in self.script]
        self.delay = delay
        self.served_name = served_name
        self.max_model_len = max_model_len
        self.cache = PrefixCache() if prefix_cache else None
        self.eos_id = self.tokenizer.eos_token_id
        self.counter = 0
        # the assistant header: what the generation prompt adds, cut after its last added token (so its ids do
        # not depend on what follows it); counted in a prompt, it says how many replies came before
        probe = [{"role": "user", "content": "x"}]
        with_prompt = self.tokens.render(probe, add_generation_prompt=True)
        generation = with_prompt[len(self.tokens.render(probe, add_generation_prompt=False)):]
        ends = [generation.rfind(token) + len(token) for token in self.tokens.boundaries if token in generation]
        self.header_text = generation[: max(ends)] if ends else generation
        self.header_ids = self.tokens.encode(self.header_text) if ends else None

    # -- which reply ---------------------------------------------------------------------------
    def reply_index(self, *, messages: list[dict] | None = None, ids: list[int] | None = None,
                    text: str | None = None) -> int:
        if messages is not None:
            done = sum(1 for message in messages if message.get("role") == "assistant")
        elif ids is not None and self.header_ids:
            done = count_sequence(ids, self.header_ids) - 1  # the last header is the one being answered
        else:
            text = text if text is not None else self.tokenizer.decode(ids or [], skip_special_tokens=False)
            done = text.count(self.header_text) - 1
        return min(max(done, 0), len(self.script) - 1)

    # -- endpoints -----------------------------------------------------------------------------
    def chat(self, body: dict) -> dict:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages must be a non-empty list")
        prompt = self.tokens.prompt_ids(messages)
        index = self.reply_index(messages=messages)
        ids, finish = self._sample(index, prompt, body)
        text = self.tokens.backend.decode([i for i in ids if i != self.eos_id], skip_special_tokens=False)
        message: dict = {"role": "assistant", "content": text, "reasoning_content": None, "tool_calls": []}
        call = self.parsed[index]
        if body.get("tools") and call is not None and finish == "stop":
            message["content"] = None
            message["tool_calls"] = [{"id": f"chatcmpl-tool-{self._next_id()}", "type": "function",
                                      "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}]
            finish = "tool_calls"
        logprobs = None
        if body.get("logprobs"):
            logprobs = {"content": [{"token": token, "logprob": lp, "bytes": list(token.encode()), "top_logprobs": []}
                                    for token, lp in zip(self._pieces(ids), self._logprobs(ids), strict=True)]}
        response = {
            "id": f"chatcmpl-{self._next_id()}", "object": "chat.completion", "created": int(time.time()),
            "model": self.served_name,
            "choices": [{"index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish,
                         "stop_reason": None, "token_ids": ids if body.get("return_token_ids") else None}],
            "usage": self._usage(prompt, ids),
        }
        if body.get("return_token_ids"):
            response["prompt_token_ids"] = prompt
        return response

    def completions(self, body: dict) -> dict:
        prompt_in = body.get("prompt")
        if isinstance(prompt_in, list) and prompt_in and isinstance(prompt_in[0], int):  # (ids are not all checked: cost)
            prompt, index = list(prompt_in), self.reply_index(ids=prompt_in)
        elif isinstance(prompt_in, str):
            prompt, index = self.tokens.backend.encode(prompt_in).ids, self.reply_index(text=prompt_in)
        else:
            raise BadRequest("prompt must be a string or a list of token ids")
        ids, finish = self._sample(index, prompt, body)
        text = self.tokens.backend.decode([i for i in ids if i != self.eos_id], skip_special_tokens=False)
        logprobs = None
        if body.get("logprobs") is not None:
            pieces, values = self._pieces(ids), self._logprobs(ids)
            offsets, at = [], 0
            for piece in pieces:
                offsets.append(at)
                at += len(piece)
            logprobs = {"text_offset": offsets, "token_logprobs": values, "tokens": pieces,
                        "top_logprobs": [{piece: value} for piece, value in zip(pieces, values, strict=True)]}
        return {
            "id": f"cmpl-{self._next_id()}", "object": "text_completion", "created": int(time.time()),
            "model": self.served_name,
            "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish, "stop_reason": None,
                         "token_ids": ids if body.get("return_token_ids") else None,
                         "prompt_token_ids": prompt if body.get("return_token_ids") else None}],
            "usage": self._usage(prompt, ids),
        }

    def tokenize(self, body: dict) -> dict:
        if "messages" in body:
            text = self.tokens.render(body["messages"], add_generation_prompt=bool(body.get("add_generation_prompt", True)))
            ids = self.tokens.backend.encode(text, add_special_tokens=bool(body.get("add_special_tokens", False))).ids
        elif isinstance(body.get("prompt"), str):
            ids = self.tokens.backend.encode(body["prompt"], add_special_tokens=bool(body.get("add_special_tokens", True))).ids
        else:
            raise BadRequest("tokenize needs messages or a prompt string")
        return {"count": len(ids), "max_model_len": self.max_model_len, "tokens": ids, "token_strs": None}

    def detokenize(self, body: dict) -> dict:
        tokens = body.get("tokens")
        if not isinstance(tokens, list):
            raise BadRequest("tokens must be a list of token ids")
        return {"prompt": self.tokens.backend.decode(tokens, skip_special_tokens=False)}

    def models(self) -> dict:
        return {"object": "list", "data": [{
            "id": self.served_name, "object": "model", "created": int(time.time()), "owned_by": "forager",
            "root": self.root, "parent": None, "max_model_len": self.max_model_len, "permission": [],
        }]}

    # -- helpers -------------------------------------------------------------------------------
    def _sample(self, index: int, prompt: list[int], body: dict) -> tuple[list[int], str]:
        if body.get("model") not in (None, self.served_name):
            raise NotFound(f"The model `{body.get('model')}` does not exist.")
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 4096
        if len(prompt) + max_tokens > self.max_model_len:
            raise BadRequest(f"This model's maximum context length is {self.max_model_len} tokens. However, you "
                             f"requested {len(prompt) + max_tokens} tokens ({len(prompt)} in the messages, "
                             f"{max_tokens} in the completion). Please reduce the length of the messages or completion.")
        if self.delay:
            time.sleep(self.delay)
        ids = [*self.reply_ids[index], self.eos_id]
        if len(ids) > max_tokens:
            return ids[:max_tokens], "length"
        return ids, "stop"

    def _usage(self, prompt: list[int], ids: list[int]) -> dict:
        cached = self.cache.hit_and_add(prompt, ids) if self.cache is not None else 0
        return {"prompt_tokens": len(prompt), "completion_tokens": len(ids), "total_tokens": len(prompt) + len(ids),
                "prompt_tokens_details": {"cached_tokens": cached}}

    def _pieces(self, ids: list[int]) -> list[str]:
        return [self.tokens.backend.decode([i], skip_special_tokens=False) for i in ids]

    @staticmethod
    def _logprobs(ids: list[int]) -> list[float]:
        return [-0.05 - (token % 7) * 0.1 for token in ids]  # deterministic, plausible, never 0

    def _next_id(self) -> str:
        self.counter += 1  # why: ids only need to differ; a race that repeats one harms nothing
        return f"{os.getpid():x}{self.counter:08x}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse their connection
    disable_nagle_algorithm = True  # why: headers and body go out as two writes; Nagle would hold the second
    model: InstantModel  # set on the subclass the server makes

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path == "/v1/models":
            self._reply(200, self.model.models())
        elif path == "/version":
            self._reply(200, {"version": VERSION})
        elif path in ("/health", "/ping"):
            self._reply(200, None)
        else:
            self._reply(404, {"error": {"message": f"no route {self.path}", "type": "NotFoundError", "code": 404}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        routes = {"/v1/chat/completions": self.model.chat, "/v1/completions": self.model.completions,
                  "/tokenize": self.model.tokenize, "/detokenize": self.model.detokenize}
        handler = routes.get(self.path.split("?")[0].rstrip("/"))
        if handler is None:
            self._reply(404, {"error": {"message": f"no route {self.path}", "type": "NotFoundError", "code": 404}})
            return
        try:
            body = json.loads(raw or b"{}")
            self._reply(200, handler(body))
        except NotFound as exc:
            self._reply(404, {"error": {"message": str(exc), "type": "NotFoundError", "param": "model", "code": 404}})
        except (BadRequest, ValueError, KeyError, TypeError) as exc:
            self._reply(400, {"error": {"message": str(exc), "type": "BadRequestError", "param": None, "code": 400}})
        except Exception as exc:  # why: an answer, not a dropped connection (the client would retry it blindly)
            self._reply(500, {"error": {"message": f"{exc.__class__.__name__}: {exc}", "type": "InternalServerError",
                                        "param": None, "code": 500}})

    def _reply(self, status: int, payload) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass  # why: a line per request would cost more than the answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # why: 64 clients connecting at once overflow the default backlog of 5


def make_server(model: InstantModel, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    handler = type("InstantHandler", (_Handler,), {"model": model})
    return _Server((host, port), handler)


class InstantModelServer:
    """The instant model server, started in a background thread or (`subprocess=True`) a child process.

    `url` is the OpenAI base URL (ending in /v1), as `VllmServer.url`; `model` the served name.
    """

    def __init__(self, tokenizer_dir: str | Path, *, script: list[str] | None = None, turns: int | None = None,
                 delay: float = 0.0, served_name: str = SERVED_NAME, max_model_len: int = MAX_MODEL_LEN,
                 host: str = "127.0.0.1", port: int = 0, subprocess: bool = False, startup_timeout: float = 60.0):
        self.tokenizer_dir = Path(tokenizer_dir)
        self.script, self.turns, self.delay = script, turns, delay
        self.model, self.max_model_len = served_name, max_model_len
        self.host, self.port = host, port
        self.use_subprocess = subprocess
        self.startup_timeout = startup_timeout
        self.url: str | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._proc: sp.Popen | None = None
        self._log: Path | None = None
        self._script_file: Path | None = None

    def start(self) -> InstantModelServer:
        if self.use_subprocess:
            self._start_process()
        else:
            model = InstantModel(self.tokenizer_dir, script=self.script, turns=self.turns, delay=self.delay,
                                 served_name=self.model, max_model_len=self.max_model_len)
            self._server = make_server(model, self.host, self.port)
            self._thread = threading.Thread(target=self._server.serve_forever, name="instant-model", daemon=True)
            self._thread.start()
            self.url = f"http://{self.host}:{self._server.server_address[1]}/v1"
        return self

    def _start_process(self) -> None:
        command = [sys.executable, "-u", "-m", "forager.dev.instant_model", "--tokenizer", str(self.tokenizer_dir),
                   "--host", self.host, "--port", str(self.port), "--delay", str(self.delay),
                   "--served-name", self.model, "--max-model-len", str(self.max_model_len)]
        if self.turns is not None:
            command += ["--turns", str(self.turns)]
        if self.script is not None:
            handle, name = tempfile.mkstemp(prefix="instant-script-", suffix=".json")
            with os.fdopen(handle, "w") as file:
                json.dump(self.script, file)
            self._script_file = Path(name)
            command += ["--script", name]
        handle, log = tempfile.mkstemp(prefix="instant-model-", suffix=".log")
        self._log = Path(log)
        with os.fdopen(handle, "w") as stderr:  # why: a file, not a pipe nobody reads (a full pipe would block it)
            self._proc = sp.Popen(command, stdout=sp.PIPE, stderr=stderr, text=True)
        found: list[str] = []
        reader = threading.Thread(target=self._read_url, args=(self._proc, found), daemon=True)
        reader.start()
        reader.join(self.startup_timeout)
        if not found:
            tail = self._log.read_text(errors="replace")[-2000:]
            self.stop()
            raise RuntimeError(f"the instant model server did not start within {self.startup_timeout:.0f} s: {tail}")
        self.url = found[0]

    @staticmethod
    def _read_url(proc: sp.Popen, found: list[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            match = URL_LINE.search(line)
            if match:
                found.append(match.group(1))
                return

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except sp.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
        for path in (self._script_file, self._log):
            if path is not None:
                path.unlink(missing_ok=True)
        self._script_file = self._log = None

    def kill(self) -> None:
        """SIGKILL the server process, as a crash would: connections in flight are cut (for fault tests;
        `subprocess=True` only)."""
        if self._proc is None:
            raise RuntimeError("kill() needs the server in its own process (subprocess=True)")
        self._proc.kill()
        self._proc.wait()

    def restart(self) -> InstantModelServer:
        """Stop (if running) and start again on the same port, so clients keep their URL."""
        if self.url is not None:
            self.port = int(self.url.rsplit(":", 1)[1].split("/", 1)[0])
        self.stop()
        return self.start()

    def __enter__(self) -> InstantModelServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m forager.dev.instant_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", required=True, help="a Hugging Face tokenizer directory with a chat template")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each model call takes")
    parser.add_argument("--turns", type=int, default=None, help="calls per episode of the built-in script (submit last)")
    parser.add_argument("--script", default=None, help="a JSON list of replies (text, or {name, arguments})")
    parser.add_argument("--served-name", default=SERVED_NAME)
    parser.add_argument("--max-model-len", type=int, default=MAX_MODEL_LEN)
    args = parser.parse_args(argv)
    script = load_script(args.script) if args.script else None
    model = InstantModel(args.tokenizer, script=script, turns=args.turns, delay=args.delay,
                         served_name=args.served_name, max_model_len=args.max_model_len)
    server = make_server(model, args.host, args.port)
    print(f"instant model server on http://{args.host}:{server.server_address[1]}/v1 (model {args.served_name})",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
