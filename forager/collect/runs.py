"""The run row: a configuration's identity and its provenance (versions, the model, its chat template)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from forager.agent.prompts import prompt_sha256
from forager.collect.config import CollectConfig
from forager.store import Run, Task


def run_row(config: CollectConfig, tasks: list[Task], *, name: str | None, exact_tokens: bool, model_info: dict,
            versions: dict) -> Run:
    """A new run for this configuration and these tasks (the store keeps an existing one of the same name)."""
    return Run(
        name=name or config.run_name(tasks), policy=config.policy, model=config.model,
        model_revision=model_info.get("root"), llm_url=config.llm_url, tool_format=config.tool_format,
        sampling=config.sampling.model_dump(mode="json"),
        config={**config.model_dump(mode="json"), "tasks": [t.instance_id for t in tasks],
                "exact_tokens": exact_tokens, "max_model_len": model_info.get("max_model_len"),
                "prompt_sha256": prompt_sha256()},
        versions=versions, chat_template_sha256=chat_template_sha256(model_info.get("root")),
    )


def chat_template_sha256(model_root: str | None) -> str | None:
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
