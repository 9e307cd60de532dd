"""Baseline: the schema of the last release before migrations (commit dd602ca).

Written out, not derived from the models: the models move on, this revision must not. A store made
before migrations (no alembic_version table) is stamped with it, then upgraded.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "repos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("mirror_path", sa.String(), nullable=False),
        sa.Column("default_branch", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_repos_url", "repos", ["url"], unique=True)
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("policy", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("model_revision", sa.String(), nullable=True),
        sa.Column("llm_url", sa.String(), nullable=True),
        sa.Column("tool_format", sa.String(), nullable=False),
        sa.Column("sampling", sa.JSON(), nullable=True),
        sa.Column("config", sa.JSON(), nullable=True),
        sa.Column("versions", sa.JSON(), nullable=True),
        sa.Column("chat_template_sha256", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_runs_name", "runs", ["name"], unique=True)
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("requested_ref", sa.String(), nullable=True),
        sa.Column("commit", sa.String(), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=True),
        sa.Column("spec_hash", sa.String(), nullable=True),
        sa.Column("tag", sa.String(), nullable=True),
        sa.Column("image_id", sa.String(), nullable=True),
        sa.Column("base_image", sa.String(), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("python_version", sa.String(), nullable=True),
        sa.Column("install_commands", sa.Text(), nullable=True),
        sa.Column("test_command", sa.String(), nullable=True),
        sa.Column("ca_bundle_sha256", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("failure_category", sa.String(), nullable=True),
        sa.Column("failure_message", sa.Text(), nullable=True),
        sa.Column("log_tail", sa.Text(), nullable=True),
        sa.Column("tests_passed", sa.Integer(), nullable=False),
        sa.Column("tests_failed", sa.Integer(), nullable=False),
        sa.Column("tests_error", sa.Integer(), nullable=False),
        sa.Column("tests_skipped", sa.Integer(), nullable=False),
        sa.Column("tests_flaky", sa.Integer(), nullable=False),
        sa.Column("build_seconds", sa.Float(), nullable=True),
        sa.Column("validate_seconds", sa.Float(), nullable=True),
        sa.Column("history_ok", sa.Boolean(), nullable=True),
        sa.Column("forager_version", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["repo_id"], ["repos.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("repo_id", "spec_hash", name="uq_image_repo_spec"),
    )
    op.create_index("ix_images_commit", "images", ["commit"], unique=False)
    op.create_index("ix_images_repo_id", "images", ["repo_id"], unique=False)
    op.create_index("ix_images_spec_hash", "images", ["spec_hash"], unique=False)
    op.create_index("ix_images_status", "images", ["status"], unique=False)
    op.create_table(
        "call_maps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("calls", sa.JSON(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_call_maps_image_id", "call_maps", ["image_id"], unique=True)
    op.create_table(
        "image_tests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("test_id", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("flaky", sa.Boolean(), nullable=False),
        sa.Column("statuses", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("image_id", "test_id", name="uq_image_test"),
    )
    op.create_index("ix_image_tests_image_id", "image_tests", ["image_id"], unique=False)
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=True),
        sa.Column("base_commit", sa.String(), nullable=True),
        sa.Column("problem_statement", sa.Text(), nullable=True),
        sa.Column("bug_patch", sa.Text(), nullable=True),
        sa.Column("gold_patch", sa.Text(), nullable=True),
        sa.Column("test_patch", sa.Text(), nullable=True),
        sa.Column("fail_to_pass", sa.JSON(), nullable=True),
        sa.Column("pass_to_pass", sa.JSON(), nullable=True),
        sa.Column("family", sa.String(), nullable=True),
        sa.Column("path", sa.String(), nullable=True),
        sa.Column("symbol", sa.String(), nullable=True),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("repo_name", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=True),
        sa.Column("environment_setup_commit", sa.String(), nullable=True),
        sa.Column("instance_created_at", sa.String(), nullable=True),
        sa.Column("hints_text", sa.Text(), nullable=True),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("invalid_reason", sa.Text(), nullable=True),
        sa.Column("validation", sa.JSON(), nullable=True),
        sa.Column("validate_seconds", sa.Float(), nullable=True),
        sa.Column("forager_version", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"]),
        sa.ForeignKeyConstraint(["repo_id"], ["repos.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_tasks_family", "tasks", ["family"], unique=False)
    op.create_index("ix_tasks_image_id", "tasks", ["image_id"], unique=False)
    op.create_index("ix_tasks_instance_id", "tasks", ["instance_id"], unique=True)
    op.create_index("ix_tasks_kind", "tasks", ["kind"], unique=False)
    op.create_index("ix_tasks_repo_id", "tasks", ["repo_id"], unique=False)
    op.create_index("ix_tasks_valid", "tasks", ["valid"], unique=False)
    op.create_table(
        "episodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("worker", sa.String(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("exit_reason", sa.String(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("reward", sa.Float(), nullable=True),
        sa.Column("resolved", sa.Boolean(), nullable=True),
        sa.Column("patch", sa.Text(), nullable=True),
        sa.Column("grade", sa.JSON(), nullable=True),
        sa.Column("messages", sa.JSON(), nullable=True),
        sa.Column("tools", sa.JSON(), nullable=True),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("llm_seconds", sa.Float(), nullable=False),
        sa.Column("env_seconds", sa.Float(), nullable=False),
        sa.Column("start_seconds", sa.Float(), nullable=False),
        sa.Column("grade_seconds", sa.Float(), nullable=False),
        sa.Column("wall_seconds", sa.Float(), nullable=False),
        sa.Column("container", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "task_id", "attempt", name="uq_episode_run_task_attempt"),
    )
    op.create_index("ix_episodes_exit_reason", "episodes", ["exit_reason"], unique=False)
    op.create_index("ix_episodes_resolved", "episodes", ["resolved"], unique=False)
    op.create_index("ix_episodes_run_id", "episodes", ["run_id"], unique=False)
    op.create_index("ix_episodes_status", "episodes", ["status"], unique=False)
    op.create_index("ix_episodes_task_id", "episodes", ["task_id"], unique=False)
    op.create_table(
        "steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("episode_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("model_text", sa.Text(), nullable=True),
        sa.Column("assistant_message", sa.JSON(), nullable=True),
        sa.Column("tool", sa.String(), nullable=True),
        sa.Column("arguments", sa.JSON(), nullable=True),
        sa.Column("format_error", sa.Text(), nullable=True),
        sa.Column("prompt_offset", sa.Integer(), nullable=False),
        sa.Column("prompt_delta_ids", sa.JSON(), nullable=True),
        sa.Column("completion_token_ids", sa.JSON(), nullable=True),
        sa.Column("logprobs", sa.JSON(), nullable=True),
        sa.Column("finish_reason", sa.String(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=True),
        sa.Column("llm_seconds", sa.Float(), nullable=False),
        sa.Column("prefix_ok", sa.Boolean(), nullable=True),
        sa.Column("prefix_divergence", sa.Integer(), nullable=True),
        sa.Column("observation_messages", sa.JSON(), nullable=True),
        sa.Column("observation", sa.Text(), nullable=True),
        sa.Column("raw_output", sa.Text(), nullable=True),
        sa.Column("output_bytes", sa.Integer(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("timed_out", sa.Boolean(), nullable=False),
        sa.Column("tool_error", sa.Boolean(), nullable=False),
        sa.Column("env_seconds", sa.Float(), nullable=False),
        sa.Column("reward", sa.Float(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["episode_id"], ["episodes.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("episode_id", "index", name="uq_step_episode_index"),
    )
    op.create_index("ix_steps_episode_id", "steps", ["episode_id"], unique=False)
