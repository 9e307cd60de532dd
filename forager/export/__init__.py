"""Export: stored episodes -> training files (SFT, RL, CWM text, step rows, SWE-bench predictions).

Formatters (sft, rl, cwm, steps, preds) are pure functions from an EpisodeBundle to rows; dedup and
the writers know nothing of SQL; `run.export` wires the store's stream through them.
"""
