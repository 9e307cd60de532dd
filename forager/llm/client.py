"""An OpenAI-compatible chat client (httpx + tenacity) that keeps the exact tokens of every call.

vLLM returns the prompt and completion token ids when asked (`return_token_ids`), so the stored
trajectory is what was sampled, not a re-tokenisation of its text. A server that is down or
restarting pauses the caller (retries with backoff, up to `max_wait` seconds); it does not fail
the episode. Errors that a retry cannot fix (a request the server rejects) raise at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_exponential

from forager.llm.types import Completion, ContextExceeded, LLMError, Sampling

_CONTEXT_WORDS = ("maximum context length", "context length", "max_model_len", "too long", "max_tokens")


class _Retryable(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def parse_completion(body: dict, seconds: float) -> Completion:
    """Read a chat-completion response (pure); token ids and logprobs where the server gave them."""
    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    usage = body.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    logprobs = choice.get("logprobs") or {}
    if "content" in logprobs:  # chat format: one entry per token
        sampled = [entry.get("logprob", 0.0) for entry in logprobs.get("content") or []]
    else:  # completions format: parallel lists
        sampled = [value if value is not None else 0.0 for value in logprobs.get("token_logprobs") or []]
    return Completion(
        text=message.get("content") or choice.get("text") or "",
        tool_calls=message.get("tool_calls") or None,
        finish_reason=choice.get("finish_reason"),
        prompt_token_ids=body.get("prompt_token_ids") or choice.get("prompt_token_ids") or [],
        completion_token_ids=choice.get("token_ids") or [],
        logprobs=sampled,
        prompt_tokens=usage.get("prompt_tokens") or 0,
        completion_tokens=usage.get("completion_tokens") or 0,
        cached_tokens=details.get("cached_tokens"),
        seconds=seconds,
    )


def is_context_error(status: int, text: str) -> bool:
    return status == 400 and any(word in text.lower() for word in _CONTEXT_WORDS)


class ChatClient:
    """POST /chat/completions on one server; `on_wait` hears about pauses (server down, retrying)."""

    def __init__(
        self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 600.0,
        max_wait: float = 600.0, on_wait: Callable[[str], None] | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.root = self.base_url.removesuffix("/v1")  # vLLM's own endpoints (/tokenize, /version) sit beside /v1
        self.model = model
        self.max_wait = max_wait
        self.on_wait = on_wait or (lambda _message: None)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(timeout, connect=10.0), headers=headers)

    def close(self) -> None:
        self.http.close()

    def request_body(self, sampling: Sampling, **fields) -> dict:
        """The request fields every call shares (sampling, token ids back), then the call's own `fields`."""
        body = {
            "model": self.model, "temperature": sampling.temperature, "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens, "return_token_ids": True, **fields,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.stop:
            body["stop"] = sampling.stop
        body.update(sampling.extra_body)
        return body

    def chat(self, messages: list[dict], sampling: Sampling, tools: list[dict] | None = None) -> Completion:
        """One chat completion: the server renders the messages with the model's chat template."""
        tool_fields = {"tools": tools, "tool_choice": "auto"} if tools else {}
        return self._post("/chat/completions", self.request_body(
            sampling, messages=messages, logprobs=True, top_logprobs=0, **tool_fields))

    def complete(self, prompt_ids: list[int], sampling: Sampling) -> Completion:
        """One completion of exact prompt tokens (tokens in, tokens out: nothing is re-tokenised)."""
        return self._post("/completions", self.request_body(sampling, prompt=prompt_ids, logprobs=0))

    def tokenize(self, messages: list[dict], *, add_generation_prompt: bool) -> list[int]:
        """The model's chat template applied to `messages`, as token ids (vLLM's /tokenize)."""
        body = {"model": self.model, "messages": messages, "add_generation_prompt": add_generation_prompt}
        return self._post("/tokenize", body, root=True, parse=lambda payload, _s: payload["tokens"])

    def detokenize(self, token_ids: list[int]) -> str | None:
        """Token ids back to text (vLLM's /detokenize); None where the server has no such endpoint."""
        try:
            response = self.http.post(f"{self.root}/detokenize", json={"model": self.model, "tokens": token_ids})
        except httpx.HTTPError:
            return None
        return response.json().get("prompt") if response.status_code == 200 else None

    def supports_tokens(self) -> bool:
        """Whether the server has vLLM's /tokenize (so prompts can be sent as exact token ids)."""
        try:
            response = self.http.post(f"{self.root}/tokenize", json={"model": self.model, "prompt": "x"})
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and "tokens" in response.text

    def _post(self, path: str, body: dict, *, root: bool = False, parse=None):
        parse = parse or parse_completion
        url = f"{self.root}{path}" if root else path

        def attempt():
            started = time.monotonic()
            try:
                response = self.http.post(url, json=body)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                raise _Retryable(f"{exc.__class__.__name__}: {exc}") from exc
            if response.status_code >= 500 or response.status_code == 429:
                raise _Retryable(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                text = response.text[:500]
                if is_context_error(response.status_code, text):
                    raise ContextExceeded(f"context exceeded: {text}")
                raise LLMError(f"{self.base_url} answered HTTP {response.status_code}: {text}")
            try:
                payload = response.json()
            except ValueError as exc:
                raise LLMError(f"{self.base_url} answered with something that is not JSON") from exc
            return parse(payload, time.monotonic() - started)

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            self.on_wait(f"LLM server {self.base_url} unavailable ({getattr(error, 'message', error)}); retrying")

        retrying = Retrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, _Retryable)),
            wait=wait_exponential(multiplier=0.5, max=15), stop=stop_after_delay(self.max_wait),
            before_sleep=before_sleep, reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retryable as exc:
            raise LLMError(f"LLM server {self.base_url} unavailable for {self.max_wait:.0f} s: {exc.message}") from None

    def served_models(self, timeout: float | None = None) -> list[dict]:
        """The server's /models entries (id, max_model_len, root); raises httpx.HTTPError, or ValueError when
        what answers is not an OpenAI-compatible server."""
        response = self.http.get("/models", **({"timeout": timeout} if timeout is not None else {}))
        response.raise_for_status()
        return list(response.json().get("data") or [])

    def model_info(self) -> dict:
        """The served model's entry from /models (its id, max_model_len, root), or {} when unknown."""
        try:
            entries = self.served_models()
        except (httpx.HTTPError, ValueError):
            return {}
        return next((entry for entry in entries if entry.get("id") == self.model), {})

    def server_version(self) -> str | None:
        try:
            response = self.http.get(f"{self.root}/version")
            return response.json().get("version") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
