"""Chat prompts as token ids without a /tokenize round trip: the served model's tokenizer, loaded locally.

With exact tokens the policy sends `previous ids + the template's tokens for the new messages`. The server
way to get those tokens is two /tokenize calls per step (the conversation with and without the new
messages), each O(conversation) and a round trip. Here the same ids come from the model's own tokenizer
and chat template, rendered as vLLM renders them (`apply_chat_template`, then the ids without added special
tokens), in O(new tokens): both message lists are rendered to text (cheap), and when the earlier text is a
prefix of the new one ending right after an added token, only the rest is encoded. Tokenizers split on
added tokens before anything else, so the text on either side of one is encoded on its own: the suffix's
ids are exactly the tail of the whole rendering's ids. Anywhere else the whole rendering is encoded.

Whether the local rendering is the server's is not assumed: the policy compares them on the first calls
of every episode and falls back to the server where they differ (see `LLMPolicy`). Nothing here talks HTTP
except `local_chat_tokens`, which asks the client where the served model lives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forager.llm.client import ChatClient

# A conversation in the shape the agent's is, to test a tokenizer's suffix encoding once at load time.
_PROBE = [
    {"role": "system", "content": "You are a careful engineer.\n\nUse the tools."},
    {"role": "user", "content": "Fix the failing test in `pkg/mod.py`.\n"},
    {"role": "assistant", "content": "<tool: bash>\nls -la\n</tool>"},
    {"role": "tool", "name": "bash", "content": "<output>\n  README.md\n\tpkg/\n</output>\n"},
    {"role": "assistant", "content": " Let me look.\n\n<tool: bash>\ncat pkg/mod.py\n</tool>"},
    {"role": "user", "content": "\n<format_error>\nNo tool call found.\n</format_error>"},
]


GENERIC_CLASSES = ("PreTrainedTokenizerFast", "TokenizersBackend")  # one class in transformers 5


@dataclass(frozen=True)
class NextTokens:
    """The template's tokens for a conversation after `seen` messages, as the server's two /tokenize give them.

    `extends` is True when the rendering of all messages starts with that of the first `seen` (then `ids`
    are only what follows); False when it does not (then `ids` are the whole prompt: a prefix break).
    """

    ids: list[int]
    extends: bool


def first_difference(a: list[int], b: list[int]) -> int | None:
    """The first index where two id lists differ (the shorter length when one is a prefix); None if equal."""
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


def vllm_messages(messages: list[dict]) -> list[dict]:
    """Messages as vLLM hands them to a string-content chat template (pure).

    Text-part lists are joined with newlines, a missing content is "", tool-call arguments are parsed from
    JSON into objects (invalid or non-object JSON becomes {}); only the fields vLLM keeps go through.
    """
    out = []
    for message in messages:
        content = message.get("content")
        if content is None:
            content = ""
        elif not isinstance(content, str):
            content = "\n".join(part.get("text", "") for part in content if isinstance(part, dict)
                                and part.get("type", "text") == "text")
        converted: dict[str, Any] = {"role": message["role"], "content": content}
        if message["role"] == "assistant" and message.get("tool_calls"):
            converted["tool_calls"] = [_parsed_call(call) for call in message["tool_calls"]]
        if message["role"] == "tool" and "tool_call_id" in message:
            converted["tool_call_id"] = message["tool_call_id"]
        if isinstance(message.get("name"), str):
            converted["name"] = message["name"]
        out.append(converted)
    return out


def _parsed_call(call: dict) -> dict:
    call = json.loads(json.dumps(call))  # a copy: the caller's history is not touched
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments else {}
        except json.JSONDecodeError:
            arguments = {}
    function["arguments"] = arguments if isinstance(arguments, dict) else {}
    return call


def _tokenizer_class(directory: Path) -> str | None:
    try:
        return json.loads((directory / "tokenizer_config.json").read_text()).get("tokenizer_class")
    except (OSError, ValueError, AttributeError):
        return None


def boundary_tokens(added_tokens: dict) -> tuple[str, ...]:
    """Added tokens after which text can be cut and each side encoded alone (pure; longest first).

    An added token that strips whitespace to its right, matches only as a single word, or is matched after
    normalisation would make the cut depend on what follows it, so it is no boundary.
    """
    safe = {token.content for token in added_tokens.values()
            if token.content and not token.rstrip and not token.single_word and not token.normalized}
    return tuple(sorted(safe, key=len, reverse=True))


def next_tokens(before_text: str, full_text: str, encode, boundaries: tuple[str, ...]) -> NextTokens:
    """The server's suffix logic on rendered text (pure given `encode`): O(suffix) when the cut is safe."""
    if full_text.startswith(before_text) and before_text.endswith(boundaries):
        return NextTokens(encode(full_text[len(before_text):]), True)
    full, before = encode(full_text), encode(before_text)
    if full[: len(before)] != before:
        return NextTokens(full, False)
    return NextTokens(full[len(before):], True)


class LocalChatTokens:
    """A chat tokenizer that gives the ids vLLM's /tokenize would, from the model's tokenizer directory."""

    def __init__(self, tokenizer, *, source: str):
        self.tokenizer = tokenizer
        self.source = source
        self.backend = tokenizer.backend_tokenizer
        self.boundaries = boundary_tokens(self.backend.get_added_tokens_decoder())

    @classmethod
    def load(cls, directory: str | Path, *, auto: bool | None = None) -> LocalChatTokens:
        """Load a tokenizer directory offline (raises what transformers raises).

        `auto`: through AutoTokenizer, the class the directory names, as vLLM loads it (its import pulls in
        torch: ~5 s). False: the generic fast tokenizer (~1 s). None (default): the generic one where the
        directory names it (a tokenizer.json with `tokenizer_class` PreTrainedTokenizerFast/TokenizersBackend,
        which is the class AutoTokenizer would pick), else AutoTokenizer.
        """
        directory = Path(directory)
        if auto is None:
            auto = _tokenizer_class(directory) not in GENERIC_CLASSES or not (directory / "tokenizer.json").is_file()
        if auto:
            from transformers import AutoTokenizer as loader
        else:
            from transformers import PreTrainedTokenizerFast as loader
        tokenizer = loader.from_pretrained(str(directory), local_files_only=True)
        return cls(tokenizer, source=str(directory))

    def render(self, messages: list[dict], *, add_generation_prompt: bool) -> str:
        # stateless (a cached compiled template): one instance serves every episode thread of a run
        return self.tokenizer.apply_chat_template(vllm_messages(messages), tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        """Text to ids as vLLM encodes a rendered chat: no added BOS/EOS (the template has its own)."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """The whole prompt for `messages` (what /tokenize with add_generation_prompt=True answers)."""
        return self.encode(self.render(messages, add_generation_prompt=True))

    def next_tokens(self, messages: list[dict], seen: int) -> NextTokens:
        """What follows the first `seen` messages (rendered without a generation prompt) in the prompt."""
        before = self.render(messages[:seen], add_generation_prompt=False)
        full = self.render(messages, add_generation_prompt=True)
        return next_tokens(before, full, self.encode, self.boundaries)

    def self_check(self, messages: list[dict] = _PROBE) -> str | None:
        """None when the O(suffix) cut gives the whole encoding's ids on a sample conversation; else why not."""
        for seen in range(1, len(messages)):
            fast = self.next_tokens(messages, seen)
            before = self.render(messages[:seen], add_generation_prompt=False)
            full = self.render(messages, add_generation_prompt=True)
            slow = next_tokens(before, full, self.encode, ())
            if fast != slow:
                return f"encoding the template's suffix alone differs from the whole encoding (after {seen} messages)"
        return None


def local_chat_tokens(client: ChatClient) -> tuple[LocalChatTokens | None, str]:
    """The served model's chat tokenizer, loaded here (once per run), or None; and a one-line reason.

    Found where the server's /v1/models `root` is a local directory, or a model id in the local Hugging Face
    cache, that transformers loads offline with a chat template. A tokenizer whose O(new tokens) cut fails
    the self-check still serves, encoding whole prompts. The policy checks it against the server on every
    episode's first calls either way.
    """
    root = (client.model_info() or {}).get("root")
    if not root:
        return None, "the server does not say where its model lives (/v1/models has no root)"
    try:
        tokens = LocalChatTokens.load(root)
    except Exception as exc:  # why: any loading failure only means the server tokenises, as before
        where = "a local directory" if Path(root).is_dir() else "no local directory nor in the Hugging Face cache"
        return None, f"the served model {root!r} is {where}: its tokenizer does not load offline " \
                     f"({exc.__class__.__name__}: {str(exc)[:200]})"
    if not getattr(tokens.tokenizer, "chat_template", None):
        return None, f"the tokenizer of {root} has no chat template"
    try:
        problem = tokens.self_check()
    except Exception as exc:
        problem = f"a sample conversation does not render ({exc.__class__.__name__}: {str(exc)[:200]})"
    if problem:
        tokens.boundaries = ()  # correct, O(conversation): every prompt encoded whole
        return tokens, f"local tokenizer from {root}, encoding whole prompts ({problem}); checked against the server " \
                       f"on each episode's first calls"
    return tokens, f"local tokenizer from {root} (checked against the server on each episode's first calls)"
