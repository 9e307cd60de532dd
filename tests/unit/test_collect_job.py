"""A collect job as one typed value: defaults from the models, then a file, then the options given (pure)."""

from __future__ import annotations

import pytest

from forager.collect.job import CollectJob, JobError, default_of, job_from, job_toml, read_job_file


def test_defaults_come_from_the_models_and_options_set_only_what_they_name():
    job = job_from({}, {"repo": ["./calc"], "max_turns": None, "temperature": None, "network": None})
    assert job == CollectJob(repos=["./calc"])
    assert (job.collect.limits.max_turns, job.collect.sampling.temperature, job.collect.sandbox.network) == (
        default_of("collect.limits.max_turns"), 1.0, False)


def test_an_option_wins_over_the_file_and_the_file_over_the_default(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('repos = ["./calc"]\ntasks = 3\n[collect]\npolicy = "oracle"\n'
                    "[collect.limits]\nmax_turns = 20\n[collect.sampling]\ntemperature = 0.5\n")
    job = job_from(read_job_file(path), {"max_turns": 7, "regex": "x+", "tasks": None})
    assert (job.tasks, job.collect.policy, job.collect.limits.max_turns) == (3, "oracle", 7)
    assert job.collect.sampling.temperature == 0.5
    assert job.collect.sampling.extra_body == {"structured_outputs": {"regex": "x+"}}
    assert job.collect.limits.time_limit == default_of("collect.limits.time_limit")  # the file left it: the model's


def test_a_written_job_reads_back_as_the_same_job_without_its_secret(tmp_path):
    job = job_from({}, {"repo": ["./calc@abc"], "policy": "llm", "llm": "http://h:8000/v1", "model": "m",
                        "api_key": "sk-secret", "seed": 3, "network": True, "new_name": "calc-run"})
    text = job_toml(job)
    assert "sk-secret" not in text and "api_key" not in text
    path = tmp_path / "back.toml"
    path.write_text(text)
    again = job_from(read_job_file(path), {})
    assert again == job.model_copy(update={"collect": job.collect.model_copy(update={"api_key": None})})


@pytest.mark.parametrize("values, options, message", [
    ({}, {"policy": "nope"}, "--policy: Input should be 'llm' or 'oracle'"),
    ({}, {"tasks": 0}, "--tasks: Input should be greater than or equal to 1"),
    ({"collect": {"limits": {"max_turns": "many"}}}, {}, "--max-turns: Input should be a valid integer"),
    ({"repo": ["typo"]}, {}, "repo: Extra inputs are not permitted"),
    ({}, {"kind": "bugfix"}, "--kind: Input should be 'mutate-fix' or 'issue-fix'"),
])
def test_a_bad_value_is_one_line_naming_its_option(values, options, message):
    with pytest.raises(JobError) as caught:
        job_from(values, options)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_job_file_that_is_missing_or_not_toml_is_named(tmp_path):
    with pytest.raises(JobError, match=r"--config .*nope.toml: cannot read it"):
        read_job_file(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[collect\n")
    with pytest.raises(JobError, match=r"--config .*bad.toml: not TOML"):
        read_job_file(bad)
