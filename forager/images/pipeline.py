"""One repository to one validated image: fetch, detect, render, build, check history, run the suite twice."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from datetime import date
import tomllib
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import BaseModel

from forager import __version__, envspec, repos
from forager.images import bases, registry
from forager.engine.docker_engine import BuildFailed, Engine
from forager.engine.processes import pid_alive, tail
from forager.images.render import NO_CA_BUNDLE, BuildPlan, render
from forager.config import Settings
from forager.envspec import as_of
from forager.envspec.fallbacks import runner_fallbacks
from forager.models import EnvSpec, FailureCategory, ForagerError, RepoRef, RepoTree, SuiteRun, TestStatus
from forager.store import Image, Store
from forager.testing.baseline import judge, merge_runs
from forager.testing.diagnose import install_error_line, no_results_cause
from forager.testing.runner import run_suite
from forager.text import first_line

StageCallback = Callable[[str], None]
CONTEXT_PREFIX = "forager-build-"


class BuildResult(BaseModel):
    """What one build-images job reports (one table row, one JSON object)."""

    repo: str
    requested_ref: str | None = None
    commit: str | None = None
    status: str
    category: str | None = None
    message: str = ""
    tag: str | None = None
    image_id: int | None = None
    cached: bool = False
    python: str | None = None
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    flaky: int = 0
    seconds: float = 0.0
    size_bytes: int | None = None
    base_image: str | None = None  # what the image is built on (the configured base or a bootstrapped stand-in)
    pulled: bool = False  # the image came from --registry instead of a docker build
    pushed: bool = False
    registry_error: str | None = None  # the image is usable here, but the registry failed (one line)


def load_override(overrides_dir: Path, name: str) -> dict | None:
    path = overrides_dir / f"{name}.toml"
    if not path.is_file():
        return None
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ForagerError(FailureCategory.detect, f"override {path} is not valid TOML ({exc}); fix or remove it") from exc


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _first_line(exc: BaseException) -> str:
    return first_line(str(exc)) or "no message"


def _build_failure(exc: BuildFailed) -> tuple[FailureCategory, str]:
    if exc.timed_out:
        return FailureCategory.timeout, f"build timed out: {_first_line(exc)}"
    if "forager-install" in exc.step:
        # why the log's error line: the first line of the exception is the whole command, uv's flags and all
        cause = install_error_line(exc.log_tail) or _first_line(exc)
        return FailureCategory.install, f"install step failed: {cause}"
    return FailureCategory.build, f"docker build failed: {_first_line(exc)}"


def _runner_may_be_at_fault(category: FailureCategory, run: SuiteRun) -> bool:
    """Errors that an older pytest may fix: pytest crashed or misread its options, or only errors came back.

    Not a suite whose tests ran and failed: an older pytest would not make them pass.
    """
    if category != FailureCategory.tests_error:
        return False
    if run.exit_code in (2, 3, 4) or not run.outcomes:
        return True
    return run.count(TestStatus.error) > 0 and run.count(TestStatus.failed) == 0


def _other_resolution_may_help(primary: EnvSpec, failure: ForagerError, run: SuiteRun | None) -> bool:
    """As of a day, an install that fails, or a suite that reports nothing (an old pytest on a newer Python),
    may work with later releases; with today's, a suite that cannot import a name its dependency removed may
    work with the releases of the commit's day (pure)."""
    if primary.as_of is not None:
        no_results = failure.category == FailureCategory.tests_error and run is not None and not run.outcomes
        return no_results or failure.category in (FailureCategory.install, FailureCategory.build)
    cause = no_results_cause(run.log_tail) if run is not None and not run.outcomes else None
    return bool(cause and cause.newer_dependency)


def changed_tracked(install: list[str], runs: list[SuiteRun]) -> dict[str, list[str]]:
    """The build result `images.changed_tracked`: tracked files the install changed, and those that a
    baseline run changed besides (pure)."""
    by_tests = sorted({path for run in runs for path in run.changed_tracked} - set(install))
    return {"install": sorted(install), "tests": by_tests}


class ImageBuilder:
    """Builds images for many repos; safe to call from several threads (one job per call)."""

    def __init__(self, settings: Settings, store: Store, engine: Engine):
        self.settings = settings
        self.store = store
        self.engine = engine
        self.ca_bundle = settings.resolved_ca_bundle()
        self.ca_sha = _file_sha256(self.ca_bundle) if self.ca_bundle else NO_CA_BUNDLE
        self.registry = registry.parse_registry(settings.registry) if settings.registry else None
        self._transfers: dict[str, dict] = {}  # env tag -> this job's registry outcome, for its result
        self._unpullable: set[str] = set()  # configured bases whose pull failed: not tried again by this builder
        self._bases_lock = threading.Lock()

    def build_many(
        self, refs: list[RepoRef], *, jobs: int = 1, on_stage: Callable[[RepoRef, str], None] = lambda _r, _s: None,
        on_done: Callable[[RepoRef, BuildResult], None] = lambda _r, _b: None,
    ) -> list[BuildResult]:
        """`build` for each repository, `jobs` at once; results in the order of `refs` (each never raises)."""
        def one(ref: RepoRef) -> BuildResult:
            result = self.build(ref, lambda stage: on_stage(ref, stage))
            on_done(ref, result)
            return result

        with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
            return list(pool.map(one, refs))

    def build(self, ref: RepoRef, on_stage: StageCallback = lambda _s: None, *, as_of: str | None = None) -> BuildResult:
        """Build, validate and record one repository. Never raises: every failure becomes a failed result."""
        started = time.monotonic()
        try:
            repo_row = self.store.upsert_repo(repos.normalise_url(ref.url), ref.name)
            row = Image(repo_id=repo_row.id, requested_ref=ref.ref, forager_version=__version__)
            return self._build_recorded(ref, row, on_stage, started, as_of or self.settings.as_of)
        except Exception as exc:  # noqa: BLE001 - the store itself failed; say so and let other builds go on
            return BuildResult(
                repo=ref.safe_url, requested_ref=ref.ref, status="failed", category=FailureCategory.build.value,
                message=f"{ref}: cannot record the build in the store: {type(exc).__name__}: {_first_line(exc)}",
                seconds=round(time.monotonic() - started, 2),
            )

    def _build_recorded(self, ref: RepoRef, row: Image, on_stage: StageCallback, started: float, mode: str) -> BuildResult:
        workdir = Path(tempfile.mkdtemp(prefix=f"{CONTEXT_PREFIX}{os.getpid()}-", dir=self._contexts_dir()))
        try:
            return self._build(ref, row, workdir, on_stage, started, mode)
        except ForagerError as exc:
            return self._fail(ref, row, exc.category, exc.message, exc.log_tail, started)
        except BuildFailed as exc:
            category, message = _build_failure(exc)
            return self._fail(ref, row, category, message, exc.log_tail, started)
        except Exception as exc:  # noqa: BLE001 - one repo's surprise must not take the other builds down
            message = f"unexpected {type(exc).__name__}: {_first_line(exc)}"
            return self._fail(ref, row, FailureCategory.build, message, traceback.format_exc()[-4000:], started)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _contexts_dir(self) -> Path:
        path = self.settings.cache_dir / "contexts"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def sweep_contexts(self) -> int:
        """Remove build contexts left by killed forager processes (their pid is in the folder name)."""
        removed = 0
        for folder in self._contexts_dir().glob(f"{CONTEXT_PREFIX}*"):
            pid = folder.name.removeprefix(CONTEXT_PREFIX).split("-", 1)[0]
            if not pid_alive(pid):
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    def _build(
        self, ref: RepoRef, row: Image, workdir: Path, on_stage: StageCallback, started: float, mode: str,
    ) -> BuildResult:
        on_stage("clone")
        snapshot = repos.fetch(ref, self.settings.cache_dir)
        self.store.upsert_repo(snapshot.url, ref.name, str(snapshot.mirror), snapshot.default_branch)
        row.commit = snapshot.commit
        # why: two jobs wanting one commit (tasks sharing a base_commit) would build the same image at once
        # and race to record its baseline; the second waits, then finds the first one's image
        key = hashlib.sha256(f"{snapshot.url}@{snapshot.commit}".encode()).hexdigest()[:24]
        with repos.locked(self.settings.cache_dir / "locks" / key):
            return self._build_commit(ref, row, snapshot, workdir, on_stage, started, mode)

    def _build_commit(
        self, ref: RepoRef, row: Image, snapshot: repos.RepoSnapshot, workdir: Path, on_stage: StageCallback,
        started: float, mode: str,
    ) -> BuildResult:
        context = workdir / "context"
        repos.export_sanitised(snapshot, context / "repo")

        on_stage("detect")
        tree = repos.read_tree(context / "repo")
        plugin_files = envspec.plugin_files(tree)
        base_for = self.usable_bases()  # one choice per build: every resolution and fallback renders on the same bases
        chains = [[spec, *runner_fallbacks(spec)] for spec in self._resolutions(ref, tree, snapshot, mode, base_for)]
        plans = [[self._plan(spec, snapshot, ref, base_for) for spec in chain] for chain in chains]
        existing = [[self.store.find_image(row.repo_id, plan.spec_hash) for plan in chain] for chain in plans]
        for plan, earlier in zip(sum(plans, []), sum(existing, []), strict=True):  # any built and ready is a hit
            # (a store shared by several hosts knows images this host lacks: the registry may have them)
            if earlier and earlier.status == "ready" and (
                    self.engine.image_exists(plan.env_tag) or self._pull(plan.env_tag, on_stage)):
                self._push(plan.env_tag, on_stage)
                if "install" not in (earlier.changed_tracked or {}):  # built by a forager that did not look
                    on_stage("history")
                    earlier.changed_tracked = {**(earlier.changed_tracked or {}),
                                               "install": self._check_history(plan.env_tag, earlier.commit)}
                    earlier = self.store.save_image(earlier)
                return self._result(ref, earlier, cached=True, seconds=time.monotonic() - started)

        first_failure: tuple[Image, ForagerError, SuiteRun | None] | None = None
        chain_failure: tuple[ForagerError, SuiteRun | None] | None = None  # the previous resolution's first one
        for index, chain in enumerate(chains):
            if index and not _other_resolution_may_help(chains[index - 1][0], *chain_failure):
                break
            if index:
                on_stage("retry with " + ("today's releases" if chain[0].as_of is None else f"releases of {chain[0].as_of}"))
            for attempt, (spec, plan, earlier) in enumerate(zip(chain, plans[index], existing[index], strict=True)):
                # each attempt records into a row of its own; a rebuild of the same spec replaces that earlier row
                attempt_row = Image(repo_id=row.repo_id, requested_ref=row.requested_ref, commit=row.commit,
                                    forager_version=__version__, id=earlier.id if earlier else None,
                                    plugin_files=plugin_files)
                self._describe(attempt_row, spec, plan)
                baseline, failure, first_run = self._attempt(ref, plan, spec, attempt_row, context, workdir, on_stage)
                if failure is None:
                    if first_failure is not None and first_failure[0].tag != plan.env_tag:
                        self.engine.remove_image(first_failure[0].tag)  # why: no row names it once this one is ready
                    if index:  # which resolution worked, and why the ones before it did not
                        attempt_row.spec = {**attempt_row.spec, "notes": [
                            *attempt_row.spec["notes"], f"resolution {index + 1} of {len(chains)} worked; the first "
                            f"failed: {first_failure[1].message.removeprefix(f'{ref}: ')}"[:1500]]}
                    attempt_row.status, attempt_row.failure_category, attempt_row.failure_message = "ready", None, None
                    saved = self.store.save_image(attempt_row)
                    self.store.replace_baseline(saved.id, baseline)
                    self.store.delete_failures_without_spec(row.repo_id, row.requested_ref)
                    self._push(plan.env_tag, on_stage)
                    return self._result(ref, saved, cached=False, seconds=time.monotonic() - started)
                if first_failure is None:
                    first_failure = (attempt_row, failure, first_run)
                else:
                    self.engine.remove_image(plan.env_tag)  # why: a failed fallback's image is dead weight on disk
                if attempt == 0:
                    chain_failure = (failure, first_run)
                if index and attempt == 0:
                    retried = ("today's releases" if spec.as_of is None else f"releases of {spec.as_of}")
                    first_failure[1].message += f"; with {retried}: {failure.message.removeprefix(f'{ref}: ')}"
                last = attempt + 1 == len(chain)
                if last or first_run is None or not _runner_may_be_at_fault(failure.category, first_run):
                    break  # a fallback that does not even build tells nothing new: the first verdict stands
                on_stage("retry with an older pytest")
        first_row, failure, _run = first_failure
        return self._fail(ref, first_row, failure.category, failure.message, failure.log_tail, started)

    def _resolutions(
        self, ref: RepoRef, tree: RepoTree, snapshot: repos.RepoSnapshot, mode: str, base_for: dict[str, str],
    ) -> list[EnvSpec]:
        """The resolutions to try, in order, each when the one before failed in a way the next may fix: as of the
        commit's cut-off; as of when a newer Python that runs the commit had settled (old releases may not build
        on it); today's. With --as-of latest: today's first, then the commit's."""
        today = date.today()
        if mode == as_of.LATEST:
            day, _ = as_of.cutoff(as_of.COMMIT, snapshot.committed_at, today)
            return [self._detect(ref, tree, None, base_for), *([self._detect(ref, tree, day, base_for)] if day else [])]
        day, note = as_of.cutoff(mode, snapshot.committed_at, today)
        primary = self._detect(ref, tree, day, base_for)
        if note:
            primary = primary.model_copy(update={"notes": [*primary.notes, note]})
        if day is None:
            return [primary]
        resolutions = [primary]
        settled, why = as_of.for_interpreter(day, primary.python)
        if why and settled <= today:
            resolutions.append(primary.model_copy(update={"as_of": settled.isoformat(), "notes": [
                *(n for n in primary.notes if not n.startswith("dependencies: ")), why, as_of.resolution_note(settled)]}))
        return [*resolutions, self._detect(ref, tree, None, base_for)]

    def _attempt(
        self, ref: RepoRef, plan: BuildPlan, spec: EnvSpec, row: Image, context: Path, workdir: Path,
        on_stage: StageCallback,
    ) -> tuple[list, ForagerError | None, SuiteRun | None]:
        """One candidate spec: (baseline, None, first run) when ready, else (_, failure, first run or None)."""
        try:
            runs, baseline, category, cause = self._build_and_validate(
                plan, spec, row.commit, row, context, workdir, on_stage)
        except BuildFailed as exc:
            category, message = _build_failure(exc)
            return [], ForagerError(category, message, exc.log_tail), None
        except ForagerError as exc:
            return [], exc, None
        if category is None:
            return baseline, None, runs[0]
        return baseline, ForagerError(category, f"{ref}: {cause}", runs[0].log_tail), runs[0]

    def _plan(self, spec: EnvSpec, snapshot: repos.RepoSnapshot, ref: RepoRef, base_for: dict[str, str]) -> BuildPlan:
        # a version with no base here (an override's python) renders on its configured base; the build names it
        base = base_for.get(spec.python) or self.settings.base_image_for(spec.python)
        return render(
            spec, repo_url=snapshot.url, repo_name=ref.name, commit=snapshot.commit,
            base_image=base, image_prefix=self.settings.image_prefix,
            repo_path=self.settings.repo_path, install_timeout=self.settings.install_timeout,
            ca_bundle_sha256=self.ca_sha,
        )

    def _build_and_validate(
        self, plan: BuildPlan, spec: EnvSpec, commit: str, row: Image, context: Path, workdir: Path,
        on_stage: StageCallback,
    ) -> tuple[list[SuiteRun], list, FailureCategory | None, str]:
        """Build (or pull) the env image, check its history, run the suite; fills `row` and returns the verdict."""
        build_started = time.monotonic()
        if self._pull(plan.env_tag, on_stage):
            row.image_id = self.engine.image_attrs(plan.env_tag)["Id"]
        else:
            on_stage("build")
            self._ensure_base(plan, spec.python, workdir)
            self._write_context(context, plan)
            row.image_id = self.engine.build(context, plan.env_tag, timeout=self.settings.build_timeout)
        row.build_seconds = time.monotonic() - build_started
        row.size_bytes = self.engine.image_attrs(plan.env_tag).get("Size")

        on_stage("history")
        install_changed = self._check_history(plan.env_tag, commit)
        row.history_ok = True

        validate_started = time.monotonic()
        runs: list[SuiteRun] = []
        for index in range(1, self.settings.validation_runs + 1):
            on_stage(f"tests {index}/{self.settings.validation_runs}")
            runs.append(
                run_suite(self.engine, plan.env_tag, spec, repo_path=self.settings.repo_path,
                          timeout=self.settings.test_timeout, run_index=index, record_changes=True,
                          case_timeout=self.settings.test_case_timeout)
            )
        row.validate_seconds = time.monotonic() - validate_started
        row.changed_tracked = changed_tracked(install_changed, runs)
        baseline = merge_runs(runs)
        category, cause = judge(runs, baseline)
        row.tests_passed = sum(b.status == "passed" for b in baseline)
        row.tests_failed = sum(b.status == "failed" for b in baseline)
        row.tests_error = sum(b.status == "error" for b in baseline)
        row.tests_skipped = sum(b.status == "skipped" for b in baseline)
        row.tests_flaky = sum(b.flaky for b in baseline)
        row.log_tail = runs[0].log_tail
        return runs, baseline, category, cause

    def _pull(self, tag: str, on_stage: StageCallback) -> bool:
        """With a registry: an image missing here that another host pushed is pulled, not rebuilt.
        The tag is a content hash of everything that goes into the image, so the pulled one is the same build."""
        if self.registry is None or self.engine.image_exists(tag):
            return False
        on_stage("pull")
        try:
            pulled = registry.pull(self.engine, self.registry, tag, timeout=self.settings.build_timeout)
        except registry.RegistryError as exc:  # why: building here still gives the image; the result says why
            self._transfers.setdefault(tag, {})["registry_error"] = str(exc)
            return False
        if pulled:
            self._transfers.setdefault(tag, {})["pulled"] = True
        return pulled

    def _push(self, tag: str, on_stage: StageCallback) -> None:
        if self.registry is None or self._transfers.get(tag, {}).get("pulled"):
            return
        on_stage("push")
        try:
            registry.push(self.engine, self.registry, tag, timeout=self.settings.build_timeout)
            self._transfers.setdefault(tag, {})["pushed"] = True
        except registry.RegistryError as exc:
            self._transfers.setdefault(tag, {})["registry_error"] = str(exc)

    def _detect(self, ref: RepoRef, tree: RepoTree, day: date | None, base_for: dict[str, str]) -> EnvSpec:
        # DetectError is a ForagerError: it is recorded with its own category (detect / no-tests)
        spec = envspec.detect(tree, list(base_for), day)
        override = load_override(self.settings.overrides_dir, ref.name)
        spec = envspec.apply_override(spec, override) if override else spec
        base = base_for.get(spec.python)
        note = base and bases.stand_in_note(spec.python, self.settings.base_image, base)
        return spec.model_copy(update={"notes": [*spec.notes, note]}) if note else spec

    def _describe(self, row: Image, spec: EnvSpec, plan: BuildPlan) -> None:
        row.spec = spec.model_dump(mode="json")
        row.spec_hash = plan.spec_hash
        row.tag = plan.env_tag
        row.base_image = plan.base_image
        row.python_version = spec.python
        row.install_commands = "\n".join(plan.install_commands)
        row.test_command = " ".join([*spec.test_command, *spec.test_args])
        row.ca_bundle_sha256 = None if self.ca_sha == NO_CA_BUNDLE else self.ca_sha

    def usable_bases(self) -> dict[str, str]:
        """Python version -> the base its builds use (bases.choose_bases): the versions detection may choose from.
        A configured base that a bootstrapped one would stand in for is pulled first, so registry users keep
        the official image; a pull that failed is not tried again by this builder (one try per process)."""
        versions, template = self.settings.python_versions, self.settings.base_image
        candidates = dict.fromkeys(tag for v in versions for tag in (bases.fill(template, v), bases.bootstrap_tag(v)))
        with self._bases_lock:  # why: parallel jobs would pull the same base at once
            present = {tag for tag in candidates if self.engine.image_exists(tag)}
            for tag in bases.worth_pulling(versions, template, present):
                if tag in self._unpullable:
                    continue
                if registry.pull_image(self.engine, tag, timeout=self.settings.build_timeout) is None:
                    present.add(tag)
                else:
                    self._unpullable.add(tag)
        return bases.choose_bases(versions, template, present)

    def _ensure_base(self, plan: BuildPlan, python: str, workdir: Path) -> None:
        if self.engine.image_exists(plan.base_tag):
            return
        base_context = workdir / "base"
        base_context.mkdir()
        (base_context / "Dockerfile").write_text(plan.base_dockerfile)
        try:
            self.engine.build(base_context, plan.base_tag, timeout=self.settings.build_timeout)
        except BuildFailed as exc:
            cause = (str(exc).splitlines() or ["no message"])[0][:200]
            raise ForagerError(
                FailureCategory.build, bases.missing_base_message(python, plan.base_image, cause), exc.log_tail,
            ) from exc

    def _write_context(self, context: Path, plan: BuildPlan) -> None:
        (context / "Dockerfile").write_text(plan.env_dockerfile)
        (context / "forager-requirements.txt").write_text(plan.requirements_txt)
        if self.ca_bundle:
            shutil.copyfile(self.ca_bundle, context / "forager-ca.crt")

    def _check_history(self, tag: str, commit: str) -> list[str]:
        """Checks the image's history; returns the tracked files its install changed (seen in the same container)."""
        result = self.engine.run(
            tag, ["sh", "-c", repos.history_check_script(commit), "check", self.settings.repo_path],
            timeout=self.settings.docker_timeout, labels={"forager.role": "history-check"},
        )
        if result.exit_code != 0 or "history-ok" not in result.output:
            raise ForagerError(
                FailureCategory.build, f"git history in the image is not sanitised: {tail(result.output, 1)}",
                tail(result.output),
            )
        return repos.changed_in_check(result.output)

    def _fail(
        self, ref: RepoRef, row: Image, category: FailureCategory, message: str, log_tail: str, started: float
    ) -> BuildResult:
        if row.id is None and row.spec_hash is None:
            earlier = self.store.find_failure(row.repo_id, row.requested_ref)
            row.id = earlier.id if earlier else None
        row.status = "failed"
        row.failure_category = category.value
        named = ref.safe_url in message  # one line names the repository once
        row.failure_message = message if named else f"{ref}: {message}"
        row.log_tail = log_tail
        saved = self.store.save_image(row)
        return self._result(ref, saved, cached=False, seconds=time.monotonic() - started)

    def _result(self, ref: RepoRef, row: Image, *, cached: bool, seconds: float) -> BuildResult:
        return BuildResult(
            repo=ref.safe_url, requested_ref=ref.ref, commit=row.commit, status=row.status,
            category=row.failure_category, message=row.failure_message or "", tag=row.tag, image_id=row.id,
            cached=cached, python=row.python_version, passed=row.tests_passed, failed=row.tests_failed,
            errors=row.tests_error, skipped=row.tests_skipped, flaky=row.tests_flaky, seconds=round(seconds, 2),
            size_bytes=row.size_bytes, base_image=row.base_image, **self._transfers.pop(row.tag, {}),
        )
