"""Local chat tokenisation: the template's suffix ids in O(new tokens) equal the whole rendering's tail.

Real tokenizers throughout: the tiny CWM tokenizer (trained here in about a second, no weights), and a
SentencePiece-style one built with `tokenizers` whose pre-tokenizer makes a cut after a special token unsafe.
"""

from __future__ import annotations

import pytest
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from forager.dev.tiny_model import CHAT_TEMPLATE, EOT, make_tiny_tokenizer
from forager.llm.chat_tokens import (
    LocalChatTokens,
    NextTokens,
    boundary_tokens,
    first_difference,
    next_tokens,
    vllm_messages,
)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory) -> LocalChatTokens:
    return LocalChatTokens.load(make_tiny_tokenizer(tmp_path_factory.mktemp("tok") / "tiny"))


def conversation(turns: int) -> list[dict]:
    messages = [{"role": "system", "content": "You are an engineer.\n\nTools: bash, edit."},
                {"role": "user", "content": "Fix `add` in calc.py.\n"}]
    for turn in range(turns):
        messages.append({"role": "assistant", "content": f"Looking.\n<tool: bash>\ncat calc.py | head -{turn + 3}\n</tool>"})
        messages.append({"role": "tool", "name": "bash",
                         "content": f"<output>\ndef add(a, b):\n    return a - b  # {turn}\n\n</output>\n<budget>\n"
                                    f"* Remaining turns: {turns - turn}\n</budget>"})
    return messages


def whole(tokens: LocalChatTokens, messages: list[dict], seen: int) -> NextTokens:
    """The server's way: encode both renderings whole and compare."""
    before = tokens.render(messages[:seen], add_generation_prompt=False)
    full = tokens.render(messages, add_generation_prompt=True)
    return next_tokens(before, full, tokens.encode, ())


def test_first_difference():
    assert first_difference([1, 2, 3], [1, 2, 3]) is None
    assert first_difference([1, 2, 3], [1, 9, 3]) == 1
    assert first_difference([1, 2], [1, 2, 3]) == 2
    assert first_difference([], []) is None


def test_vllm_messages_parse_tool_arguments_and_fill_missing_content():
    history = [{"role": "assistant", "content": None, "extra": 1,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}},
                               {"id": "c2", "type": "function", "function": {"name": "bash", "arguments": "not json"}}]},
               {"role": "tool", "tool_call_id": "c1", "name": "bash", "content": [{"type": "text", "text": "a"},
                                                                                  {"type": "text", "text": "b"}]}]
    converted = vllm_messages(history)
    assert converted[0]["content"] == "" and "extra" not in converted[0]
    assert [c["function"]["arguments"] for c in converted[0]["tool_calls"]] == [{"command": "ls"}, {}]
    assert converted[1] == {"role": "tool", "content": "a\nb", "tool_call_id": "c1", "name": "bash"}
    assert history[0]["tool_calls"][0]["function"]["arguments"] == '{"command": "ls"}'  # the caller's is untouched


def test_boundary_tokens_leave_out_tokens_that_depend_on_what_follows():
    added = {0: AddedToken("<a>", special=True, normalized=False), 1: AddedToken("<b>", rstrip=True, normalized=False),
             2: AddedToken("<word>", single_word=True, normalized=False), 3: AddedToken("<norm>", normalized=True),
             4: AddedToken("<longer>", special=True, normalized=False)}
    assert boundary_tokens(added) == ("<longer>", "<a>")


def test_the_tiny_tokenizer_cuts_after_its_special_tokens(tokens):
    assert EOT in tokens.boundaries and tokens.self_check() is None
    assert tokens.tokenizer.chat_template == CHAT_TEMPLATE


def test_suffix_ids_equal_the_whole_renderings_tail_over_a_conversation(tokens):
    messages = conversation(12)
    for seen in range(3, len(messages), 2):  # after each assistant reply, as the policy asks
        fast = tokens.next_tokens(messages[: seen + 1], seen)
        assert fast.extends and fast == whole(tokens, messages[: seen + 1], seen)
        prompt = tokens.prompt_ids(messages[: seen + 1])
        assert prompt[len(prompt) - len(fast.ids):] == fast.ids
    # the cut is O(suffix): what is encoded starts at the new message's header
    assert tokens.render(messages, add_generation_prompt=True).startswith(
        tokens.render(messages[:-1], add_generation_prompt=False))


def test_the_cut_falls_back_to_whole_encodings_where_the_text_is_no_prefix(tokens):
    messages = conversation(2)
    changed = [*messages[:3], {**messages[3], "content": "rewritten " + messages[3]["content"]}]
    before = tokens.render(messages[:4], add_generation_prompt=False)
    full = tokens.render(changed + [{"role": "user", "content": "next"}], add_generation_prompt=True)
    result = next_tokens(before, full, tokens.encode, tokens.boundaries)
    assert not result.extends and result.ids == tokens.encode(full)


def test_the_cut_falls_back_where_the_earlier_text_does_not_end_in_an_added_token(tokens):
    before, full = "return a", "return ab"  # a cut inside a word: " a" and " ab" are different tokens
    assert tokens.encode(before) + tokens.encode(full[len(before):]) != tokens.encode(full)
    cut = next_tokens(before, full, tokens.encode, tokens.boundaries)
    assert cut == next_tokens(before, full, tokens.encode, ()) == NextTokens(tokens.encode(full), False)


def test_self_check_refuses_a_tokenizer_whose_first_piece_is_encoded_differently():
    """SentencePiece-style `prepend_scheme="first"`: text right after a special token is not a fresh start."""
    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    raw.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "[INST]", "[/INST]"],
                                  show_progress=False)
    raw.train_from_iterator(["hello world this is text", "user assistant system tool bash ls"] * 50, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tokenizer.chat_template = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'assistant' %}"
                               "{{ m['content'] }}</s>{% else %}[INST]{{ m['content'] }}[/INST]{% endif %}{% endfor %}")
    local = LocalChatTokens(tokenizer, source="memory")
    assert "</s>" in local.boundaries
    assert local.self_check() is not None  # so local_chat_tokens turns the cut off:
    local.boundaries = ()
    messages = [{"role": "system", "content": "hello world"}, {"role": "user", "content": "this is text"},
                {"role": "assistant", "content": "ls"}, {"role": "user", "content": "hello text"}]
    assert local.next_tokens(messages, 3) == whole(local, messages, 3) and local.self_check() is None


def test_a_generic_tokenizer_directory_loads_without_auto_tokenizer(tokens):
    import transformers

    assert type(tokens.tokenizer) is transformers.PreTrainedTokenizerFast
    assert tokens.source.endswith("tiny")
