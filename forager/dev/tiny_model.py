"""A tiny random-weight model with CWM's architecture, tokenizer conventions and chat format.

No model hub is reachable here, yet tests and `make demo` need a real vLLM server. This writes a model
directory that transformers loads and vLLM serves: a byte-level BPE tokenizer trained locally on a fixed
list of stdlib sources (Llama-3/CWM pre-tokenizer and special tokens), a chat template in CWM's format,
and a randomly initialised `CwmForCausalLM` (full and sliding-window attention layers). Its replies are
noise, but token ids, logprobs, prefix caching, structured outputs and context limits behave as with
the real `facebook/cwm`. The same seed gives the same files on the same Python version (the corpus is
read from the installed stdlib).
"""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

BOS = "<|begin_of_text|>"
EOS_TEXT = "<|end_of_text|>"
PAD = "<|pad|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOM = "<|eom_id|>"
EOT = "<|eot_id|>"
SPECIAL_TOKENS = [BOS, EOS_TEXT, PAD, START_HEADER, END_HEADER, EOM, EOT]

VOCAB_SIZE = 2048
# why: the Llama-3 pattern CWM uses; unlike GPT-2's it keeps "\n\n" in one piece before text, so a
# rendered header ends in the same tokens whether or not content follows (the prefix property)
PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Sorted, present in every CPython >= 3.11; read from the installed stdlib.
CORPUS_FILES = sorted(
    [
        "argparse.py",
        "ast.py",
        "collections/__init__.py",
        "dataclasses.py",
        "functools.py",
        "json/decoder.py",
        "json/encoder.py",
        "pathlib.py",
        "shutil.py",
        "subprocess.py",
        "textwrap.py",
        "unittest/case.py",
    ]
)
# Text in the shape of the conversations the model sees, so their pieces become tokens.
CHAT_SAMPLES = """\
system
user
assistant
tool: bash
tool: edit
<tool: bash>
ls -la
</tool>
<tool: bash>
git status
</tool>
<tool: bash>
python -m pytest -x -q tests/
</tool>
$ pwd
/testbed
def test_something():
    assert result == expected
Traceback (most recent call last):
FAILED tests/test_module.py::test_case - AssertionError
"""

# CWM's chat format. Tool results are role "tool: NAME"; OpenAI-style assistant tool_calls render as
# CWM tool-call text, so clients speaking either protocol produce the same tokens.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'tool' %}"
    "{%- set role = 'tool: ' ~ (message.get('name') or 'tool') %}"
    "{%- else %}"
    "{%- set role = message['role'] %}"
    "{%- endif %}"
    "{{- '<|start_header_id|>' ~ role ~ '<|end_header_id|>\\n\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}{%- endif %}"
    "{%- for call in message.get('tool_calls') or [] %}"
    "{%- set fn = call['function'] if call['function'] is defined else call %}"
    "{%- if not loop.first or (message['content'] is string and message['content']) %}{{- '\\n' }}{%- endif %}"
    "{{- '<tool: ' ~ fn['name'] ~ '>\\n' }}"
    "{%- if fn['arguments'] is string %}{{- fn['arguments'] }}{%- else %}{{- fn['arguments'] | tojson }}{%- endif %}"
    "{{- '\\n</tool>' }}"
    "{%- endfor %}"
    "{{- '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

ARCHITECTURE = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,  # why: vLLM's CPU attention kernel rejects 16
    "sliding_window": 128,
    "max_position_embeddings": 8192,
    # CWM's llama3-style RoPE scaling, shrunk so the original length stays below the maximum
    "rope_parameters": {
        "rope_type": "llama3",
        "rope_theta": 1_000_000.0,
        "factor": 8.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 1024,
    },
}


def _corpus() -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [CHAT_SAMPLES]
    for rel in CORPUS_FILES:
        path = stdlib / rel
        if path.is_file():
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    return texts


def _train_tokenizer(vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS)
    # Like Llama 3 / CWM: plain encodes get a BOS; chat prompts carry it in the template instead
    # (vLLM tokenizes rendered chats without adding special tokens).
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return tokenizer


def _write_tokenizer(out: Path):
    """Train the tokenizer and save it with its chat template into `out`; returns the transformers tokenizer."""
    from transformers import PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(VOCAB_SIZE),
        bos_token=BOS,
        eos_token=EOT,
        pad_token=PAD,
        model_max_length=ARCHITECTURE["max_position_embeddings"],
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)
    return tokenizer


def make_tiny_tokenizer(out: Path) -> Path:
    """Write only the tiny model's tokenizer and chat template to `out` (no torch, no weights; ~seconds).

    The same files `make_tiny_model` writes for its tokenizer: what a tokenizer-only tool (the instant model
    server, local chat tokenisation) needs, where a served model is not.
    """
    out = Path(out)
    _write_tokenizer(out)
    return out


def make_tiny_model(out: Path, seed: int = 0) -> Path:
    """Write a tiny random-weight CWM model directory (tokenizer, chat template, weights) to `out`."""
    import torch
    from transformers import CwmConfig, CwmForCausalLM, GenerationConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    out = Path(out)
    tokenizer = _write_tokenizer(out)

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    eos_ids = [ids[EOS_TEXT], ids[EOM], ids[EOT]]  # CWM stops on all three
    layers = ARCHITECTURE["num_hidden_layers"]
    config = CwmConfig(
        vocab_size=len(tokenizer),
        **ARCHITECTURE,
        # CWM: every 4th layer attends globally, the others within the sliding window
        layer_types=["full_attention" if i % 4 == 0 else "sliding_attention" for i in range(layers)],
        bos_token_id=ids[BOS],
        eos_token_id=eos_ids,
        pad_token_id=ids[PAD],
        tie_word_embeddings=False,
    )
    config.dtype = torch.bfloat16  # as CWM ships (and vLLM downcasts float32 to it on the CPU anyway)
    torch.manual_seed(seed)
    model = CwmForCausalLM(config).to(torch.bfloat16).eval()
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(bos_token_id=ids[BOS], eos_token_id=eos_ids, pad_token_id=ids[PAD]).save_pretrained(out)
    (out / "forager-tiny-model.json").write_text(json.dumps({"seed": seed, "vocab_size": len(tokenizer)}) + "\n")
    return out
