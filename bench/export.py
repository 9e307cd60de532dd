"""Benchmark `forager export`: steps per second to JSONL and to Parquet, on a generated SQLite store.

Prints JSON. The store is generated (no Docker, no model) with per-step sizes of a real agent run:
replies of ~200 tokens (~700 characters of CWM text with their logprobs), observations of ~2 KB
(shown text, message and raw output), an opening prompt of ~1,500 tokens, then ~500 environment tokens
per turn. As in the store, each call keeps only the prompt tokens it adds after the previous call's
prompt + completion (`prompt_offset`, `prompt_delta_ids`), so the `rl` and `steps` exports rebuild
whole prompts from deltas. Run with `.venv/bin/python bench/export.py`.

`rl` is also exported with `splice_json=False` (every number decoded and encoded again), so the
gain of joining the stored token-list text shows as a ratio measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from forager.export.run import ExportRequest, export
from forager.store import Episode, Image, Repo, Run, Step, Store, Task

WORDS = ("def return self value the test assert import error file line path None True False for in if else "
         "result data config parse build run check item key index list dict str int raise except").split()


def text(rng: random.Random, chars: int) -> str:
    out, size = [], 0
    while size < chars:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
    return " ".join(out)


def generate(store: Store, episodes: int, steps: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    with store.session() as s:
        repo = Repo(url="bench://repo", name="bench-repo")
        s.add(repo)
        s.flush()
        image = Image(repo_id=repo.id, tag="forager-env/bench-repo:0", status="ready")
        s.add(image)
        s.flush()
        run = Run(name="bench", policy="llm", model="bench-model", model_revision="r0",
                  sampling={"temperature": 1.0, "top_p": 1.0, "max_tokens": 4096}, versions={"forager": "bench"})
        s.add(run)
        s.flush()
        tasks = [Task(instance_id=f"bench__{i}", kind="mutate-fix", repo_id=repo.id, image_id=image.id, valid=True,
                      family="operators") for i in range(max(1, episodes // 4))]
        s.add_all(tasks)
        s.commit()
        run_id, task_ids = run.id, [t.id for t in tasks]
    opening = [{"role": "system", "content": text(rng, 3000)}, {"role": "user", "content": text(rng, 1500)}]
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in ("bash", "edit")]
    written = 0
    for first in range(0, episodes, 100):
        with store.engine.begin() as conn:
            rows = [dict(run_id=run_id, task_id=task_ids[e % len(task_ids)], attempt=e // len(task_ids),
                         status="finished", exit_reason="submitted" if e % 3 else "max_turns", reward=1.0 if e % 3 else -1.0,
                         resolved=bool(e % 3), patch="diff --git a/x b/x\n" + text(rng, 400), messages=opening,
                         tools=tools, turns=steps, prompt_tokens=1500 + 700 * (steps - 1), completion_tokens=200 * steps)
                    for e in range(first, min(first + 100, episodes))]
            ids = [conn.execute(insert(Episode.__table__).values(**row)).inserted_primary_key[0] for row in rows]
            step_rows = []
            for episode_id, row in zip(ids, rows, strict=True):
                delta, offset = [rng.randrange(128000) for _ in range(1500)], 0
                for index in range(steps):
                    completion = [rng.randrange(128000) for _ in range(200)]
                    reply = f"Let me look. {text(rng, 600)}\n<tool: bash>\ngrep -n {rng.choice(WORDS)} src/x.py\n</tool>"
                    observation = f"<output>\n{text(rng, 2000)}\n</output>"
                    step_rows.append(dict(
                        episode_id=episode_id, index=index, model_text=reply,
                        assistant_message={"role": "assistant", "content": reply}, tool="bash",
                        arguments={"command": "grep -n x src/x.py"}, prompt_offset=offset, prompt_delta_ids=delta,
                        completion_token_ids=completion, logprobs=[-rng.random() for _ in completion],
                        finish_reason="stop", prompt_tokens=offset + len(delta), completion_tokens=200, prefix_ok=index > 0 or None,
                        observation_messages=[{"role": "tool", "name": "bash", "content": observation}],
                        observation=observation, raw_output=observation[9:-10], output_bytes=2000, exit_code=0,
                        reward=row["reward"] if index == steps - 1 else 0.0,
                        done=index == steps - 1,
                    ))
                    offset += len(delta) + len(completion)
                    delta = [rng.randrange(128000) for _ in range(500)]
            conn.execute(insert(Step.__table__), step_rows)
            written += len(step_rows)
    return written


def measure(store: Store, out: Path, fmt: str, splice_json: bool = True) -> dict:
    stats = export(store, ExportRequest(format=fmt, out=out, splice_json=splice_json))
    out.unlink()  # why: the steps format's file is tens of GB; keep one at a time on disk
    return {"format": fmt, "file": out.suffix[1:] + ("" if splice_json else " (decoded)"), "rows": stats.rows, "steps": stats.steps,
            "steps_per_second": round(stats.steps / stats.seconds), "seconds": stats.seconds,
            "bytes": stats.bytes, "megabytes_per_second": round(stats.bytes / stats.seconds / 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=50, help="steps per episode")
    parser.add_argument("--formats", default="sft,rl,cwm,steps,swebench-preds")
    parser.add_argument("--dir", type=Path, default=None, help="where the store and files go (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="forager-bench-export-", dir=args.dir) as tmp:
        tmp = Path(tmp)
        store = Store(f"sqlite:///{tmp / 'bench.db'}")
        started = time.perf_counter()
        total = generate(store, args.episodes, args.steps)
        report = {"store_steps": total, "store_bytes": (tmp / "bench.db").stat().st_size,
                  "generate_seconds": round(time.perf_counter() - started, 1), "exports": []}
        for fmt in args.formats.split(","):
            runs = [(".jsonl", True), (".parquet", True)] + ([(".jsonl", False)] if fmt == "rl" else [])
            for suffix, splice in runs:
                report["exports"].append(measure(store, tmp / f"{fmt}{suffix}", fmt, splice))
                print(json.dumps(report["exports"][-1]), file=sys.stderr)
        by = {(e["format"], e["file"]): e["steps_per_second"] for e in report["exports"]}
        if ("rl", "jsonl") in by and ("rl", "jsonl (decoded)") in by:  # side by side, same run: a ratio, not seconds
            report["rl_jsonl_joined_over_decoded"] = round(by["rl", "jsonl"] / by["rl", "jsonl (decoded)"], 2)
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
