"""Difficulty from rollouts read from a real store, on SQLite and on PostgreSQL (`make test` starts one): rows
inserted directly (no container runs), then `task_outcomes`, `pass_rates` and `forager tasks stats`."""

import json

import pytest
from typer.testing import CliRunner

from forager.cli import app
from forager.integrity.stats import pass_rates, summarize, task_outcomes
from forager.store import Episode, Image, Repo, Run, Store, Task

# (run, task, attempt, status, resolved, exit reason, turns, prompt tokens, completion tokens)
EPISODES = [
    ("run-a", "alpha-1", 0, "finished", True, "submitted", 4, 100, 20),
    ("run-a", "alpha-1", 1, "finished", False, "submitted", 6, 200, 40),
    ("run-a", "alpha-1", 2, "finished", None, "env_error", 1, 0, 0),  # no grade: an unresolved attempt
    ("run-a", "alpha-1", 3, "finished", True, "submitted", 5, 150, 30),
    ("run-a", "alpha-1", 4, "running", None, None, 3, 90, 10),  # not finished: not counted
    ("run-a", "alpha-1", 5, "pending", None, None, 0, 0, 0),
    ("run-a", "alpha-2", 0, "finished", True, "submitted", 3, 80, 20),
    ("run-a", "alpha-2", 1, "finished", True, "submitted", 3, 80, 20),
    ("run-a", "alpha-2", 2, "finished", True, "submitted", 3, 80, 20),
    ("run-a", "beta-1", 0, "finished", False, "max_turns", 10, 900, 100),
    ("run-a", "beta-1", 1, "finished", False, "max_turns", 10, 900, 100),
    ("run-b", "beta-1", 0, "finished", True, "submitted", 2, 50, 10),
    ("run-b", "beta-1", 1, "finished", False, "time_limit", 8, 400, 40),
    ("gold", "beta-1", 0, "finished", True, "submitted", 2, 0, 0),  # the oracle: left out unless named
    ("gold", "alpha-invalid", 0, "finished", True, "submitted", 2, 0, 0),
]


def fill(store: Store) -> dict[str, int]:
    """Two repositories, five tasks (beta-2 valid and never tried, alpha-invalid invalid), three runs; task ids."""
    with store.session() as s:
        alpha, beta = Repo(url="/src/alpha", name="alpha"), Repo(url="/src/beta", name="beta")
        s.add_all([alpha, beta])
        s.commit()
        image = Image(repo_id=alpha.id, commit="c" * 40, spec_hash="h1", status="ready")
        s.add(image)
        s.commit()
        tasks = {name: Task(instance_id=name, kind="mutate-fix", repo_id=repo.id, valid=valid, repo_name=repo_name,
                            image_id=image.id if repo is alpha else None)
                 for name, repo, valid, repo_name in [
                     ("alpha-1", alpha, True, "alpha"), ("alpha-2", alpha, True, "alpha"),
                     ("beta-1", beta, True, "owner/beta"), ("beta-2", beta, True, "owner/beta"),
                     ("alpha-invalid", alpha, False, "alpha")]}
        runs = {"run-a": Run(name="run-a", policy="llm", model="m"),
                "run-b": Run(name="run-b", policy="llm", model="m"), "gold": Run(name="gold", policy="oracle")}
        s.add_all([*tasks.values(), *runs.values()])
        s.commit()
        s.add_all(Episode(run_id=runs[run].id, task_id=tasks[task].id, attempt=attempt, status=status,
                          resolved=resolved, reward=None if resolved is None else float(resolved), exit_reason=reason,
                          turns=turns, prompt_tokens=prompt, completion_tokens=completion)
                  for run, task, attempt, status, resolved, reason, turns, prompt, completion in EPISODES)
        s.commit()
        return {name: task.id for name, task in tasks.items()}


def counts(outcomes) -> dict[str, tuple[int, int]]:
    return {o.instance_id: (o.attempts, o.resolved) for o in outcomes}


def check_outcomes(store: Store, ids: dict[str, int]) -> None:
    every = task_outcomes(store)
    # the oracle's episodes are left out; beta-2 is valid and untried; alpha-invalid only the oracle tried
    assert counts(every) == {"alpha-1": (4, 2), "alpha-2": (3, 3), "beta-1": (4, 1), "beta-2": (0, 0)}
    assert [o.task_id for o in every] == sorted(o.task_id for o in every)
    first = every[0]
    assert (first.repo, first.turns, first.tokens) == ("alpha", 16, 120 + 240 + 0 + 180)
    assert first.exit_reasons == {"submitted": 3, "env_error": 1}
    assert every[2].exit_reasons == {"max_turns": 2, "submitted": 1, "time_limit": 1} and every[2].repo == "beta"

    assert counts(task_outcomes(store, run="run-a")) == {"alpha-1": (4, 2), "alpha-2": (3, 3), "beta-1": (2, 0)}
    assert counts(task_outcomes(store, run="run-b")) == {"beta-1": (2, 1)}
    assert counts(task_outcomes(store, run="gold")) == {"beta-1": (1, 1), "alpha-invalid": (1, 1)}
    # a repository by name, by URL, or as the task named it
    assert counts(task_outcomes(store, repo="beta")) == {"beta-1": (4, 1), "beta-2": (0, 0)}
    assert counts(task_outcomes(store, repo="owner/beta")) == counts(task_outcomes(store, repo="beta"))
    assert counts(task_outcomes(store, repo="/src/alpha")) == {"alpha-1": (4, 2), "alpha-2": (3, 3)}
    assert task_outcomes(store, run="run-b", repo="alpha") == []  # a known repository the run never tried

    assert pass_rates(store) == {ids["alpha-1"]: 0.5, ids["alpha-2"]: 1.0, ids["beta-1"]: 0.25}
    assert pass_rates(store, run="run-a") == {ids["alpha-1"]: 0.5, ids["alpha-2"]: 1.0, ids["beta-1"]: 0.0}

    with pytest.raises(ValueError, match=r"no run named 'nope'; the store's runs: run-a, run-b, gold$"):
        task_outcomes(store, run="nope")
    with pytest.raises(ValueError, match=r"no repository 'gamma' .*it has: alpha, beta$"):
        task_outcomes(store, repo="gamma")

    report = summarize(every)
    assert (report.tasks, report.tasks_with_attempts, report.k) == (4, 3, 2)
    assert (report.mixed, report.always, report.never) == (2, 1, 0)
    assert report.mean_pass_at_1 == pytest.approx((0.5 + 1 + 0.25) / 3)


def cli(url: str, *args: str):
    """`forager tasks stats` in-process, through forager's own command line."""
    return CliRunner().invoke(app, ["tasks", "stats", "--db", url, *args], env={"COLUMNS": "200"})


def check_cli(url: str) -> None:
    table = cli(url)
    assert table.exit_code == 0, table.output
    for text in ("alpha-1", "alpha-2", "beta-1", "beta-2", "0.50 [0.15, 0.85]", "submitted:3 env_error:1",
                 "4 tasks, 3 with attempts", "pass rate in (0, 1): 2 (67%)", "always: 1 (33%)", "never: 0 (0%)",
                 "mean pass@1 0.583", "k=2 (largest power of 2 <= fewest attempts (3))"):
        assert text in table.stdout, (text, table.stdout)
    assert "alpha-invalid" not in table.stdout

    data = json.loads(cli(url, "--json", "--run", "run-a", "--k", "4").stdout)
    assert (data["run"], data["k"], data["k_rule"]) == ("run-a", 4, "given")
    assert (data["tasks"], data["tasks_with_attempts"]) == (3, 3)
    assert (data["mixed"], data["always"], data["never"]) == (1, 1, 1)
    rows = {r["instance_id"]: r for r in data["rows"]}
    assert rows["alpha-1"]["attempts"] == 4 and rows["alpha-1"]["resolved"] == 2
    assert rows["alpha-1"]["pass_at_k"] == 1.0 and rows["alpha-2"]["pass_at_k"] is None  # 3 attempts < k = 4
    assert rows["alpha-1"]["pass_at_1_ci"] == pytest.approx([0.15004, 0.84996], abs=1e-5)
    assert rows["beta-1"]["mean_turns"] == 10 and rows["beta-1"]["mean_tokens"] == 1000
    assert rows["beta-1"]["exit_reasons"] == {"max_turns": 2}

    short = cli(url, "--run", "run-a", "--k", "4")
    assert "2 tasks with fewer than 4 attempts have no pass@4" in short.stdout, short.stdout
    assert json.loads(cli(url, "--json", "--repo", "owner/beta").stdout)["tasks"] == 2

    for args, says in ((["--run", "nope"], "error: no run named 'nope'; the store's runs: run-a, run-b, gold"),
                       (["--repo", "gamma"], "error: no repository 'gamma'")):
        bad = cli(url, *args)
        assert bad.exit_code == 2 and bad.stdout == "", bad.output
        assert len(bad.stderr.strip().splitlines()) == 1 and bad.stderr.startswith(says), bad.stderr


def test_task_stats_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    check_outcomes(store, fill(store))
    check_cli(url)


def test_task_stats_on_postgresql(pg_url):
    store = Store(pg_url)
    check_outcomes(store, fill(store))
    check_cli(pg_url)
