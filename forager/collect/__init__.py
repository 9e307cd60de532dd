"""`forager collect`: run a policy's episodes on tasks, one sandbox each, every step into the store.

Flow per run: plan an episode row per (task, attempt) -> claim them one by one (a claim restarts an
episode whose worker died) -> a warm pool starts the sandboxes of the next episodes while the
current ones run -> the loop (agent/loop.py) records each step as it happens -> a submitted patch is
graded in a fresh container from the same image (tasks/evaluate.py, the same grading as validation)
-> the reward goes on the last step. Running it again with the same configuration and prompts resumes the run.

One job per module:
    config.py     CollectConfig and the run's identity (configuration, tasks, prompts' hash) -> its name
    runs.py       the run row: configuration and provenance (versions, model, chat template)
    scheduler.py  Collector: opens the run, claims episodes, the episode / warm-start / close pools
    episode.py    EpisodeRunner: one episode's sandbox, policy, loop, grade and finish
    reward.py     how a graded episode ends and its reward (pure)
    steps.py      a loop step as the store's row
    summary.py    CollectSummary, read back from the store
    job.py        a whole `forager collect` job as one typed value; job files (pure)
    tasks.py      each repository's tasks for a job; a stored run's job

The names below are loaded when first used, so that a pure module of this package (job.py) can be imported
without the scheduler's Docker, HTTP and database code.
"""

from importlib import import_module

_HOMES = {
    "RUNTIME_FIELDS": "config", "CollectConfig": "config", "episode_reward": "reward", "graded_exit": "reward",
    "Collector": "scheduler", "CollectSummary": "summary", "summarize": "summary",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'forager.collect' has no attribute {name!r}")
    return getattr(import_module(f"forager.collect.{_HOMES[name]}"), name)
