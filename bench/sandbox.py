"""Benchmark the episode sandbox: the cold start of an episode, phase by phase, as it is (`new`) and as it was
(`legacy`: a put_archive of the patch, a `docker exec` of the prepare script ending in `git gc --prune=now`,
then the control shell and the main shell one after the other), side by side in one run; the prepare scripts
step by step; several starts at once; a trivial bash step through the persistent shell vs a `docker exec` per
command; and the first step of a sandbox started ahead (the warm pool's case) vs later steps.

Phases, legacy: create, start, put_archive, prepare_exec, control_shell, main_shell (one after the other).
New: create, start, open_shells (both shells' execs requested and their scripts sent: the patch and the prepare
script to the control shell), prepare (until the control shell answers: its exec comes up, then the script
runs while the main shell's exec comes up), shells_ready (the keep-alive and the main shell's answers).
New and reused start the container with its own bash as the control shell (attached before the start: one
`docker exec` fewer than legacy's and the previous new's, ~75 ms of daemon work each, served one at a time).
Reused: the new start from the pair's start-state image (`Sandbox(reuse_start_state=True)`, committed by a first
start before the timed ones): the same phases, with no prepare. `start_state` gives that first start (prepare and
commit) and the disk the start-state image adds (its own layer: the rest is the task image's).
New and reused create their container with NetworkDisabled (no libnetwork sandbox, see container.ISOLATED_SYSCTLS);
legacy keeps docker's "none" network. `docker_start_seconds` times docker's create and start alone, the sandbox's
container either way, alternated.

Prints JSON; compare ratios, not seconds (2 noisy CPUs). Needs a Docker engine and the base image
(`make base-image`); runs on the bundled example repository, and on a real task image too with
`--image TAG` (the repository at /testbed; the bug is `--patch FILE`, or a one-line change made here):
`.venv/bin/python bench/sandbox.py [--starts 15] [--image TAG [--patch FILE]]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from forager.engine.docker_engine import Engine
from forager.example_repo import BEFORE_FIX, materialise
from forager.sandbox.container import PREPARE_SCRIPT, SHELL_ENV, START_PATCH_PATH, Sandbox, _daemon_cpus
from forager.sandbox.errors import SandboxError
from forager.sandbox.files import tar_one
from forager.sandbox.models import SandboxLimits, ToolCall
from forager.sandbox.shell import FIND_KEEPALIVE, Shell

BASE_IMAGE = os.environ.get("FORAGER_BASE_IMAGE", "forager/bootstrap-python:{python}").replace("{python}", "3.11")

# The prepare script before issue 17, verbatim: six `git show`s, and `git gc --prune=now` as the scrub.
LEGACY_PREPARE_SCRIPT = r"""
set -eu
cd -- "$1"
mkdir -p .git/info
printf '__pycache__/\n*.pyc\n.pytest_cache/\n' >> .git/info/exclude
git update-index -q --refresh || true  # files copied into an image have new stat data
git add -u
show() { git show -s --date=raw --format="$1" HEAD; }
export GIT_AUTHOR_NAME="$(show %an)" GIT_AUTHOR_EMAIL="$(show %ae)" GIT_AUTHOR_DATE="$(show %ad)"
export GIT_COMMITTER_NAME="$(show %cn)" GIT_COMMITTER_EMAIL="$(show %ce)" GIT_COMMITTER_DATE="$(show %cd)"
if [ -z "$2" ]; then
  git diff --cached --quiet HEAD && exit 0
  commit=$(echo "forager: files the environment's install changed" | git commit-tree "$(git write-tree)" -p HEAD)
  git update-ref HEAD "$commit"
  git reflog expire --expire=now --all
  exit 0
fi
# the 3-way fallback merges a bug made against the commit with an install's change to the same file
if ! git apply --index --whitespace=nowarn -- "$2" 2>/dev/null && ! git apply --index --3way --whitespace=nowarn -- "$2" 2>&1; then
  exit 3
fi
rm -f -- "$2"
commit=$(git cat-file commit HEAD | sed '1,/^$/d' | git commit-tree "$(git write-tree)")
branch=$(git symbolic-ref -q HEAD || echo HEAD)
git update-ref HEAD "$commit"
git for-each-ref --format='delete %(refname)' | grep -vxF "delete $branch" | git update-ref --stdin
rm -f .git/ORIG_HEAD .git/FETCH_HEAD .git/shallow
git reflog expire --expire=now --all
git gc --prune=now --quiet
"""
SCRIPTS = {"legacy": LEGACY_PREPARE_SCRIPT, "new": PREPARE_SCRIPT}
# What both starts must leave alike (the git probe of `forager audit` checks the rest)
STATE = ("git status --porcelain; git log --all --format='%H %an %ae %ad %cn %ce %cd %s'; git for-each-ref; "
         "git cat-file --batch-all-objects --batch-check | sort; "
         "git fsck --unreachable --no-reflogs 2>&1 | grep -v warning; "
         "find .git/logs -type f -size +0c; cat .git/info/exclude")


class LegacySandbox(Sandbox):
    """The sandbox's start before issue 17: put_archive, exec_run of the prepare script, then the shells."""

    def _create_container(self, image: str):
        limits = self.limits
        return self.engine.client.containers.create(
            image, entrypoint=["sleep", str(limits.deadline)], init=True, auto_remove=True, detach=True,
            labels=self.labels, network_mode=None if limits.network else "none", mem_limit=limits.memory,
            memswap_limit=limits.memory, nano_cpus=int(min(limits.cpus, _daemon_cpus(self.engine)) * 1e9),
            pids_limit=limits.pids, working_dir=self.repo_path,
        )

    def start(self, start_patch: str = "") -> None:
        marks = [("begin", time.monotonic())]
        try:
            self.container = self._create_container(self.image)
            marks.append(("create", time.monotonic()))
            self.container.start()
            marks.append(("start", time.monotonic()))
            if start_patch:
                self._put(START_PATCH_PATH, start_patch.encode(), mode=0o600)
            marks.append(("put_archive", time.monotonic()))
            code, output = self.container.exec_run(
                ["bash", "-c", LEGACY_PREPARE_SCRIPT, "prepare", self.repo_path,
                 START_PATCH_PATH if start_patch else ""],
                environment=SHELL_ENV, workdir="/",
            )
            if code != 0:
                raise SandboxError(f"preparing failed ({code}): {output.decode(errors='replace')[:300]}")
            marks.append(("prepare_exec", time.monotonic()))
            self.shell = Shell(self.engine.client.api, self.container.id, cwd=self.repo_path,
                                     environment=SHELL_ENV, keep_bytes=self.limits.stored_bytes)
            self.shell._control = self.shell._session()
            self.shell._keep = self.shell._control.run_plain(FIND_KEEPALIVE)
            marks.append(("control_shell", time.monotonic()))
            self.shell._open_main()
            marks.append(("main_shell", time.monotonic()))
        except BaseException:
            self.close()
            raise
        self.start_seconds = marks[-1][1] - marks[0][1]
        self.start_phases = {name: at - marks[index][1] for index, (name, at) in enumerate(marks[1:])}


VARIANTS = {"legacy": LegacySandbox, "new": Sandbox, "reused": partial(Sandbox, reuse_start_state=True)}


def build_image(engine: Engine, tmp: Path) -> str:
    """The bundled example repository at /testbed on the base image (no install: the sandbox is what is measured)."""
    materialise(tmp / "repo")
    (tmp / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\n"
        "RUN git config --system user.email forager@localhost && git config --system user.name forager\n"
        "COPY repo /testbed\n"
    )
    tag = f"forager-bench/sandbox:{uuid.uuid4().hex[:8]}"
    engine.build(tmp, tag, timeout=300)
    return tag


def one_line_bug(engine: Engine, image: str) -> str:
    """A bug patch for a real image: the first `return ` of the first tracked Python file that has one, changed."""
    script = ("cd /testbed && f=$(git grep -l -e '^ *return ' -- '*.py' | head -n 1) && "
              "sed -i '0,/^\\( *\\)return /s//\\1return None or /' \"$f\" && git diff")
    out = engine.client.containers.run(image, ["bash", "-c", script], entrypoint=[], remove=True, network_mode="none")
    return out.decode()


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"median": round(statistics.median(ordered), 4), "p90": round(p90, 4)}


def ratios(medians: dict[str, float], key: str = "") -> dict[str, float]:
    suffix = f"_{key}" if key else ""
    return {f"legacy_over_new{suffix}": round(medians["legacy"] / medians["new"], 2),
            f"reused_over_legacy{suffix}": round(medians["reused"] / medians["legacy"], 2),
            f"reused_over_new{suffix}": round(medians["reused"] / medians["new"], 2)}


def start_state(engine: Engine, image: str, patch: str) -> dict:
    """The first reused start of the pair (prepare, then commit), and the disk its start-state image adds."""
    with Sandbox(engine, image, reuse_start_state=True, labels={"forager.run": "bench"}) as box:
        box.start(patch)
        assert box.start_kind == "committed", box.start_kind
        first = {"kind": box.start_kind, "tag": box.start_image, "total": round(box.start_seconds, 4),
                 "commit": round(box.start_phases["commit"], 4)}
    api = engine.client.api
    own_layer = api.history(first["tag"])[0]["Size"]  # newest first: the commit's layer
    first["image_bytes_added"] = api.inspect_image(first["tag"])["Size"] - api.inspect_image(image)["Size"]
    first["own_layer_bytes"] = own_layer
    return first


def remove_start_states(engine: Engine, image: str) -> None:
    for entry in engine.client.api.images(filters={"label": f"forager.base={image}"}):
        engine.remove_image(entry["Id"])


def cold_starts(engine: Engine, image: str, patch: str, rounds: int) -> dict:
    """The variants alternated (in random order per round), so drift in the machine's load hits all alike."""
    totals, phases, closes = defaultdict(list), defaultdict(lambda: defaultdict(list)), defaultdict(list)
    kinds = set()
    for _ in range(rounds):
        for name in random.sample(list(VARIANTS), len(VARIANTS)):
            box = VARIANTS[name](engine, image, limits=SandboxLimits(), labels={"forager.run": "bench"})
            started = time.perf_counter()
            box.start(patch)
            totals[name].append(time.perf_counter() - started)
            if name == "reused":
                kinds.add(box.start_kind)
            for phase, seconds in box.start_phases.items():
                phases[name][phase].append(seconds)
            started = time.perf_counter()
            box.close()
            closes[name].append(time.perf_counter() - started)
    out = {name: {"total": stats(totals[name]), "phases": {p: stats(s) for p, s in phases[name].items()},
                  "close": stats(closes[name])} for name in VARIANTS}
    assert kinds == {"reused"}, kinds
    out.update(ratios({name: statistics.median(totals[name]) for name in VARIANTS}, "median"))
    out.update(ratios({name: out[name]["total"]["p90"] for name in VARIANTS}, "p90"))
    return out


def docker_start(engine: Engine, image: str, rounds: int) -> dict:
    """Docker's create and start alone (no attach, no shell), the sandbox's container on docker's "none" network
    vs isolated (NetworkDisabled, what new and reused use), alternated."""
    seconds = {name: defaultdict(list) for name in ("none_network", "isolated")}
    for _ in range(rounds):
        for name in random.sample(list(seconds), len(seconds)):
            box = Sandbox(engine, image, labels={"forager.run": "bench"})
            try:
                started = time.perf_counter()
                box.container = box._create_container(image, isolated=name == "isolated")
                created = time.perf_counter()
                box.container.start()
                seconds[name]["create"].append(created - started)
                seconds[name]["start"].append(time.perf_counter() - created)
            finally:
                box.close()
    out = {name: {phase: stats(samples) for phase, samples in phases.items()} for name, phases in seconds.items()}
    out["isolated_over_none_network_start_median"] = round(
        out["isolated"]["start"]["median"] / out["none_network"]["start"]["median"], 2)
    return out


def concurrent_starts(engine: Engine, image: str, patch: str, width: int, rounds: int) -> dict:
    """`width` sandboxes started at once (the warm pool's case: starts compete for the daemon and the CPUs):
    the wall time until all are up, the variants alternated."""
    walls = defaultdict(list)

    def start(cls) -> Sandbox:
        box = cls(engine, image, labels={"forager.run": "bench"})
        box.start(patch)
        return box

    with ThreadPoolExecutor(max_workers=width) as pool:
        for _ in range(rounds):
            for name in random.sample(list(VARIANTS), len(VARIANTS)):
                started = time.perf_counter()
                boxes = list(pool.map(start, [VARIANTS[name]] * width))
                walls[name].append(time.perf_counter() - started)
                for box in boxes:
                    box.close()
    out = {name: {"all_started": stats(walls[name])} for name in VARIANTS}
    out["width"] = width
    out.update(ratios({name: statistics.median(walls[name]) for name in VARIANTS}, "median"))
    return out


def _trace_steps(trace: str) -> dict[str, float]:
    """Seconds per traced command (summed over repeats), from `set -x` lines stamped with $EPOCHREALTIME."""
    steps: dict[str, float] = defaultdict(float)
    previous = None
    for line in trace.splitlines():
        depth, _, rest = line.partition(" ")
        if not depth or set(depth) != {"+"}:
            continue
        stamp, _, command = rest.partition(" ")
        try:
            at = float(stamp)
        except ValueError:
            continue
        if previous is not None:
            steps[previous[1]] += at - previous[0]
        words = command.split()
        while words[1:2] == ["-c"]:  # git -c key=value subcommand
            del words[1:3]
        label = " ".join(words[:2]) if words[:1] == ["git"] else (words[0] if words else "")
        previous = (at, depth + " " + label)
    return steps


def prepare_steps(engine: Engine, image: str, patch: str, rounds: int) -> dict:
    """Each prepare script traced in a fresh container: its whole time and its slowest steps."""
    out = {}
    for name, script in SCRIPTS.items():
        totals, steps = [], defaultdict(list)
        for _ in range(rounds):
            container = engine.client.containers.run(image, entrypoint=["sleep", "300"], detach=True, init=True,
                                                     auto_remove=True, network_mode="none")
            try:
                container.put_archive("/tmp", tar_one(START_PATCH_PATH.rsplit("/", 1)[1], patch.encode()))
                traced = ("PS4='+ $EPOCHREALTIME '; t0=$EPOCHREALTIME; set -x\n" + script +
                          "\nset +x; echo \"total $t0 $EPOCHREALTIME\" >&2")
                code, output = container.exec_run(["bash", "-c", traced, "prepare", "/testbed", START_PATCH_PATH],
                                                  environment=SHELL_ENV, workdir="/")
                text = output.decode(errors="replace")
                assert code == 0, text[-500:]
                begin, end = map(float, text.rsplit("total ", 1)[1].split()[:2])
                totals.append(end - begin)
                for label, seconds in _trace_steps(text).items():
                    steps[label].append(seconds)
            finally:
                container.remove(force=True)
        slowest = sorted(steps.items(), key=lambda item: -statistics.median(item[1]))[:8]
        out[name] = {"total": stats(totals), "slowest_steps": {label: stats(s) for label, s in slowest}}
    out["legacy_over_new_median"] = round(out["legacy"]["total"]["median"] / out["new"]["total"]["median"], 2)
    return out


def same_start_state(engine: Engine, image: str, patch: str) -> bool:
    """All starts leave the same git state: status, history, refs, objects, fsck, reflogs, excludes."""
    seen = []
    for cls in VARIANTS.values():
        with cls(engine, image, labels={"forager.run": "bench"}) as box:
            box.start(patch)
            seen.append(box.execute(ToolCall(name="bash", arguments={"command": STATE})).output)
    return all(state == seen[0] for state in seen)


def shell_steps(engine: Engine, image: str, patch: str, steps: int) -> dict:
    """A step through the persistent shell vs `docker exec`; and a started sandbox's first step vs its later ones."""
    with Sandbox(engine, image, labels={"forager.run": "bench"}) as box:
        box.start(patch)
        time.sleep(1)  # a warm-pool sandbox waits for its episode
        call = ToolCall(name="bash", arguments={"command": "echo hi"})
        started = time.perf_counter()
        assert box.execute(call).output == "hi\n"
        first = time.perf_counter() - started
        for _ in range(5):  # warm-up
            box.execute(call)
        shell = []
        for _ in range(steps):
            started = time.perf_counter()
            assert box.execute(call).output == "hi\n"
            shell.append(time.perf_counter() - started)
        cli = []
        for _ in range(steps):
            started = time.perf_counter()
            proc = subprocess.run(["docker", "exec", box.container.id, "bash", "-lc", "echo hi"],
                                  capture_output=True, check=True)
            cli.append(time.perf_counter() - started)
            assert proc.stdout == b"hi\n"
    return {
        "persistent_shell_step_ms": round(statistics.median(shell) * 1000, 2),
        "docker_exec_subprocess_step_ms": round(statistics.median(cli) * 1000, 2),
        "speedup": round(statistics.median(cli) / statistics.median(shell), 1),
        "warm_sandbox_first_step_ms": round(first * 1000, 2),
    }


def measure(engine: Engine, image: str, patch: str, args) -> dict:
    remove_start_states(engine, image)  # a start state left by an earlier run would hide the first start's cost
    try:
        return {
            "start_state": start_state(engine, image, patch),
            "same_start_state": same_start_state(engine, image, patch),
            "cold_start_seconds": cold_starts(engine, image, patch, args.starts),
            "docker_start_seconds": docker_start(engine, image, args.starts),
            "concurrent_start_seconds": concurrent_starts(engine, image, patch, args.width, max(2, args.starts // 3)),
            "prepare_script_seconds": prepare_steps(engine, image, patch, args.traces),
        }
    finally:
        remove_start_states(engine, image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=50, help="shell steps per method")
    parser.add_argument("--starts", type=int, default=15, help="cold starts per variant and image")
    parser.add_argument("--width", type=int, default=4, help="sandboxes started at once in the concurrent case")
    parser.add_argument("--traces", type=int, default=5, help="traced runs of each prepare script per image")
    parser.add_argument("--image", help="a real task image with its repository at /testbed")
    parser.add_argument("--patch", type=Path, help="the bug patch for --image (default: a one-line change)")
    args = parser.parse_args()
    engine = Engine()
    with tempfile.TemporaryDirectory(prefix="forager-bench-") as tmp:
        example = build_image(engine, Path(tmp))
    try:
        patch = BEFORE_FIX.read_text()
        result = {"benchmark": "sandbox", "starts_per_variant": args.starts,
                  "example": measure(engine, example, patch, args)}
        if args.image:
            real_patch = args.patch.read_text() if args.patch else one_line_bug(engine, args.image)
            result["real"] = {"image": args.image, **measure(engine, args.image, real_patch, args)}
        result["shell"] = {"steps_per_method": args.n, **shell_steps(engine, example, patch, args.n)}
    finally:
        engine.remove_image(example)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
