"""One episode's container and the agent's tools in it: bash, edit, create, submit (CWM semantics).

    with Sandbox(engine, task_image, limits=SandboxLimits(), labels={"forager.episode": "7"}) as box:
        box.start(task.bug_patch)
        result = box.execute(ToolCall(name="bash", arguments={"command": "pytest -x -q"}))

Tool failures the agent caused (no match, bad path, nothing to submit) come back as ToolResults with
error=True; a broken environment (container gone, docker failing) raises SandboxError.
"""

from __future__ import annotations

import functools
import hashlib
import posixpath
import shlex
import tarfile
import time
from collections.abc import Callable

from docker.errors import DockerException, ImageNotFound, NotFound
from docker.utils import decode_json_header
from requests.exceptions import RequestException

from forager.engine.docker_engine import (
    ISOLATED_SYSCTLS,
    LABEL,
    NONE_NETWORK_HOSTS,
    OWNER_LABELS,
    Engine,
    no_ipv6_error,
    retry_transient,
)
from forager.engine.docker_engine import NO_IPV6 as _NO_IPV6
from forager.sandbox.errors import SandboxError
from forager.sandbox.files import kind_of, looks_like_diff, tar_one, untar_one
from forager.sandbox.models import SandboxLimits, ToolCall, ToolResult
from forager.sandbox.output import EditError, apply_edit, line_of, numbered_snippet, shown
from forager.sandbox.shell import Shell
from forager.sandbox.tools import tool_named, tools_line
from forager.text import error_line

# PYTHONUNBUFFERED: a Python program killed at the timeout would otherwise lose its block-buffered output
SHELL_ENV = {"LANG": "C.UTF-8", "PAGER": "cat", "GIT_PAGER": "cat", "TERM": "dumb", "PYTHONUNBUFFERED": "1"}
START_PATCH_PATH = "/tmp/forager-start.patch"
MAX_FILE_BYTES = 10 * 1024 * 1024  # edit reads the whole file into memory
MAX_PATCH_BYTES = 20 * 1024 * 1024
TOOLS_LINE = tools_line()
# Local images of prepared start states (see Sandbox(reuse_start_state=True)), one tag per (task image, start
# patch): `forager prune` finds them by their labels, `docker image ls forager-start` lists them.
START_STATE_REPOSITORY = "forager-start"
START_STATE_ROLE = "start-state"  # their forager.role label
# Without a network the container is created with NetworkDisabled rather than on docker's "none" network (see
# engine/docker_engine.py ISOLATED_SYSCTLS); what that network adds is put back: IPv6 off (the sysctls) and
# /etc/hosts, which the control shell writes first, before the start returns and any agent command runs
# (WRITE_HOSTS: docker's own file for that network, byte for byte). Which containers: Sandbox._isolated.
# Builtins only (printf, redirections): no process to start. A failure says why on stdout, in the answer (stderr may
# come after the sentinel). Needs root: an image whose user is another keeps docker's "none" network (see
# Sandbox._isolated).
WRITE_HOSTS = "printf '" + NONE_NETWORK_HOSTS.replace("\t", "\\t").replace("\n", "\\n") + "' 2>&1 > /etc/hosts"

# Makes the start state the agent is given HEAD, so `git status` is empty and `git diff` shows only the
# agent's own changes: the install's changes to tracked files (an egg-info SOURCES.txt, a version file)
# are staged, then the task's bug patch. With a bug, the result becomes the repository's only commit,
# with HEAD's message, authors and dates: the original code stays in no commit, ref, reflog or object
# (ancestors would show it through `git log -p` or `git show HEAD~1:file`, so they go too). Without one
# the ancestors stay (version tools read their tags) and the install's changes, if any, are a commit on
# top. Also keeps caches out of diffs.
# The object store is then replaced by a fresh one packed from HEAD alone, not scrubbed by `git gc --prune=now`
# (2-3x slower: it also searches deltas, writes a commit-graph and runs prune, rerere and worktree passes):
# what is stored is exactly what HEAD reaches, whatever the old store held (a kept pack, which gc would
# keep, alternates, a stale commit-graph). No delta search and light compression: the pack lives for one
# episode. Every git call costs milliseconds in a fresh container, so HEAD's identity is read with one, not six.
PREPARE_SCRIPT = r"""
set -eu
cd -- "$1"
[ -d .git/info ] || mkdir -p .git/info
printf '__pycache__/\n*.pyc\n.pytest_cache/\n' >> .git/info/exclude
git update-index -q --refresh || true  # files copied into an image have new stat data
git add -u
{ IFS= read -r GIT_AUTHOR_NAME; IFS= read -r GIT_AUTHOR_EMAIL; IFS= read -r GIT_AUTHOR_DATE
  IFS= read -r GIT_COMMITTER_NAME; IFS= read -r GIT_COMMITTER_EMAIL; IFS= read -r GIT_COMMITTER_DATE
} < <(git show -s --date=raw --format='%an%n%ae%n%ad%n%cn%n%ce%n%cd' HEAD)
export GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL GIT_AUTHOR_DATE GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL GIT_COMMITTER_DATE
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
commit=$(git cat-file commit HEAD | sed '1,/^$/d' | git commit-tree "$(git write-tree)")
read -r head < .git/HEAD
case $head in "ref: "*) branch=${head#ref: } ;; *) branch=HEAD ;; esac
git update-ref HEAD "$commit"
git for-each-ref --format='delete %(refname)' | grep -vxF "delete $branch" | git update-ref --stdin
git reflog expire --expire=now --all
git pack-refs --all --prune  # packed-refs may still hold the branch at the original commit
fresh=.git/objects.forager
mkdir "$fresh" "$fresh/pack" "$fresh/info"
git -c pack.compression=1 pack-objects --revs --quiet --window=0 "$fresh/pack/pack" <<< HEAD >/dev/null
rm -rf -- "$2" .git/ORIG_HEAD .git/FETCH_HEAD .git/shallow .git/objects
mv "$fresh" .git/objects
"""
# The repository's changes against HEAD, new untracked (not ignored) files included, computed in a
# throw-away index so the agent's own staging area is left as it was. `cp -p`: git trusts an entry whose
# stat data matches unless the file is as new as the index file itself ("racily clean"); a copy with a
# fresh mtime hid an edit of the same size made in the second the start state was written (seen: an
# oracle's one-line fix missing from its diff, graded unresolved).
SUBMIT_SCRIPT = r"""
set -eu
cd -- "$1"
index=$(mktemp)
trap 'rm -f "$index"' EXIT
cp -p .git/index "$index"
export GIT_INDEX_FILE="$index"
git add -A
git diff --cached --binary HEAD | head -c "$2"
"""


def prepare_command(repo_path: str, patch_size: int, script: str = PREPARE_SCRIPT,
                    patch_path: str = START_PATCH_PATH) -> str:
    """The control shell's first line: read a start patch of `patch_size` bytes from stdin into a private file
    (so the shell, which lives on, never holds the original code in its memory), then run the prepare script.

    A failed read leaves the shell (`exit`) rather than let it run the patch's unread lines as commands. The
    script's stdin is /dev/null: a command reading stdin would swallow the lines sent after this one.
    """
    patch = patch_path if patch_size else ""
    read = f"(umask 077; exec head -c {patch_size} > {shlex.quote(patch)}) || exit 97; " if patch_size else ""
    return f"{read}bash -c {shlex.quote(script)} prepare {shlex.quote(repo_path)} {shlex.quote(patch)} < /dev/null"


def start_state_tag(image_id: str, start_patch: str, repo_path: str, script: str = PREPARE_SCRIPT) -> str:
    """The tag of the start-state image of a task image (by id: a tag rebuilt to another image gets another
    start state) with a start patch, as `script` prepares it at `repo_path`."""
    digest = hashlib.sha256("\0".join((image_id, repo_path, script, start_patch)).encode()).hexdigest()
    return f"{START_STATE_REPOSITORY}:{digest[:16]}"


def runs_as_root(user: str) -> bool:
    """Whether a container whose configured user is `user` (an image's Config.User) runs as root: by name or uid
    only ("root", "0", with any group), not another name that maps to uid 0."""
    return user.partition(":")[0] in ("", "root", "0")


@functools.cache
def _daemon_cpus(engine: Engine) -> int:
    return int(engine.client.info().get("NCPU") or 1)


def _with_notes(body: str, notes: list[str]) -> str:
    separator = "\n" if body and not body.endswith("\n") else ""
    return body + separator + "\n".join(notes)


def _error(message: str) -> ToolResult:
    return ToolResult(output=message, raw_output=message, error=True)


class Sandbox:
    """An episode's container from a task image, its persistent shell and the agent's tools."""

    def __init__(
        self,
        engine: Engine,
        image: str,
        *,
        repo_path: str = "/testbed",
        limits: SandboxLimits | None = None,
        labels: dict[str, str] | None = None,
        reuse_start_state: bool = False,
    ):
        """`reuse_start_state`: the first start of a (task image, start patch) pair commits its prepared container
        as a local start-state image, later starts of the pair create their container from it and skip the
        prepare (about a third of a start). A cache: a missing or broken start image means the normal start."""
        self.engine, self.image, self.repo_path = engine, image, repo_path
        self.reuse_start_state = reuse_start_state
        self.limits = limits or SandboxLimits()
        self.labels = {LABEL: "1", **OWNER_LABELS, "forager.role": "episode", **(labels or {})}
        self.container = None
        self.shell: Shell | None = None
        self.start_seconds = 0.0
        self.start_phases: dict[str, float] = {}  # seconds of each part of start(), for benchmarks
        # how the last start got its start state: "prepared", "committed" (prepared, then saved as start_image)
        # or "reused" (created from start_image)
        self.start_kind = ""
        self.start_image: str | None = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self, start_patch: str = "") -> None:
        """Create and start the container, then open the shells, applying and hiding the start patch meanwhile
        (or, reusing a start state, create the container from its image and only open the shells)."""
        started = time.monotonic()
        self.start_phases, self.start_kind, self.start_image = {}, "", None
        attrs = self._inspect_image()
        isolated = self._isolated(attrs)
        tag, base_id = self._start_state(attrs, start_patch) if self.reuse_start_state else (None, None)
        broken = False
        if tag:
            try:
                self._start_from(tag, None, started, base_id, isolated=isolated)
                self.start_kind, self.start_image = "reused", tag
                return
            except ImageNotFound:
                pass  # the first start of this pair (or its image was removed): prepared and committed below
            except SandboxError:
                broken = True  # the normal start, whose commit replaces the start image
        self._start_from(self.image, start_patch, started, isolated=isolated)
        self.start_kind = "prepared"
        if tag and self._commit_start_state(tag, base_id, replace=broken):
            self.start_kind, self.start_image = "committed", tag
            self.start_seconds = time.monotonic() - started

    def _start_from(self, image: str, start_patch: str | None, started: float, base_id: str = "", *,
                    isolated: bool = False) -> None:
        """Start from `image`; `start_patch` None: the image holds a prepared start state of the task image
        `base_id` (no prepare runs); `isolated`: no network, without docker's "none" network (see
        ISOLATED_SYSCTLS). Raises SandboxError (or ImageNotFound, from a start state's image) with nothing left
        behind."""
        control = None
        try:
            self.container = self._create_container(image, isolated=isolated)
            control = self._attach()
            created = time.monotonic()
            # the container's labels include its image's (no extra call): a tag that names another image is no
            # start state of this task image
            if start_patch is None and self.container.labels.get("forager.base-id") != base_id:
                raise SandboxError(f"{image} is not a start state of {self.image}")
            self.container.start()
            running = time.monotonic()
            self.shell = Shell(
                self.engine.client.api, self.container.id, cwd=self.repo_path, environment=SHELL_ENV,
                keep_bytes=self.limits.stored_bytes,
            )
            prelude = WRITE_HOSTS if isolated else ""
            if start_patch is None:
                output, code = self.shell.start(control=control, prelude=prelude)
                if self.shell.cwd != self.repo_path:  # the main shell found no repository there
                    raise SandboxError(f"the start state in {image} has no {self.repo_path}")
            else:
                patch = start_patch.encode()
                output, code = self.shell.start(prepare_command(self.repo_path, len(patch)), patch,
                                                setup_timeout=self.engine.timeout, control=control, prelude=prelude)
            if code != 0:
                text = output.splitlines()
                reason = "the start patch does not apply" if code == 3 else f"preparing {self.repo_path} failed"
                raise SandboxError(f"{reason}: {text[0] if text else f'exit code {code}'}")
        except ImageNotFound:
            self.close()  # nothing was attached: the image is looked up at create
            if start_patch is None:
                raise
            raise SandboxError(f"could not start a sandbox: image {image} is not on this Docker engine") from None
        except (DockerException, RequestException, OSError, SandboxError) as exc:
            if control is not None and (self.shell is None or self.shell._control is None):
                control.close()  # not handed to a shell yet
            self.close()
            if isinstance(exc, SandboxError):
                raise
            if isolated and self.engine not in _NO_IPV6 and no_ipv6_error(exc):
                _NO_IPV6.add(self.engine)
                return self._start_from(image, start_patch, started, base_id, isolated=isolated)
            raise SandboxError(f"could not start a sandbox from {image}: {error_line(exc)}") from exc
        self.start_seconds = time.monotonic() - started
        marks = self.shell.start_marks
        self.start_phases = {
            "create": created - started, "start": running - created, "open_shells": marks["open"] - running,
            "prepare": marks["setup"] - marks["open"], "shells_ready": marks["ready"] - marks["setup"],
        }

    def _inspect_image(self) -> dict | None:
        """The task image's attributes; None when it cannot be inspected (the start then says why)."""
        try:
            return self.engine.client.api.inspect_image(self.image)
        except (DockerException, RequestException):
            return None

    def _isolated(self, image: dict | None) -> bool:
        """Whether the container goes without docker's "none" network (ISOLATED_SYSCTLS): when it has no network
        and its control shell, root, can write /etc/hosts (a start state runs as its task image's user)."""
        user = ((image or {}).get("Config") or {}).get("User") or ""
        return image is not None and not self.limits.network and runs_as_root(user)

    def _start_state(self, image: dict | None, start_patch: str) -> tuple[str | None, str | None]:
        """(the start-state image's tag, the task image's id); (None, None) when the task image could not be
        inspected (the normal start then says why)."""
        if image is None:
            return None, None
        return start_state_tag(image["Id"], start_patch, self.repo_path), image["Id"]

    def _commit_start_state(self, tag: str, base_id: str, *, replace: bool = False) -> bool:
        """Save the just-prepared container as the start-state image `tag`; False when not saved (never raises:
        the next start of the pair tries again).

        The container is frozen during the commit (docker pauses it) and no agent command has run: the image
        holds exactly what the prepare left, and the /etc/hosts an isolated start writes (WRITE_HOSTS: each
        start writes it again). Not in it: /proc, and the files docker mounts (hostname, docker-init, and on a
        network /etc/hosts and resolv.conf); the patch file is already deleted; the shells keep no history
        (non-interactive bash)."""
        started = time.monotonic()
        repository, _, name = tag.partition(":")
        # why the blank values: a commit merges the container's labels into the image's, and a container made
        # from the image would inherit those this sandbox's caller set (its episode, run) unless set again
        labels = {key: "" for key in self.labels}
        labels.update({LABEL: "1", "forager.role": START_STATE_ROLE, "forager.base": self.image,
                       "forager.base-id": base_id, "forager.repo-path": self.repo_path})
        try:
            # concurrent first starts of one pair may both commit: the later tag wins, the earlier image is left
            # untagged, and `forager prune` removes it; checking first keeps that to true races
            if not replace and self.engine.image_exists(tag):
                return False
            self.engine.client.api.commit(self.container.id, repository=repository, tag=name, pause=True,
                                          author="forager", message="forager start state", conf={"Labels": labels})
        except (DockerException, RequestException, ValueError):
            return False
        self.start_phases["commit"] = time.monotonic() - started
        return True

    @retry_transient
    def _create_container(self, image: str, *, isolated: bool = False):
        limits = self.limits
        return self.engine.client.containers.create(
            image,
            # the container's own process is the control shell (Shell.start), attached before the start. It lives
            # until the deadline at most (`timeout`, the keep-alive the kill loop spares), or until the collector
            # closes its stdin, SIGKILLed or not; then the container stops and, auto-removed, disappears.
            # docker-init reaps zombies. No log: the shell's answers are read through the attach.
            entrypoint=["timeout", "-s", "KILL", str(limits.deadline),
                        "env", *(f"{key}={value}" for key, value in SHELL_ENV.items()), "bash", "--noprofile", "--norc"],
            stdin_open=True,
            # why not detached: docker-py then sets StdinOnce, so the container's stdin closes when its one attach
            # does, and the shell (and with it the container) ends with the collector, even a SIGKILLed one
            detach=False,
            log_config={"type": "none"},
            init=True,
            auto_remove=True,
            labels=self.labels,
            network_mode=None if limits.network else "none",
            # no libnetwork sandbox: a network namespace of runc's with loopback only, set up as "none" sets it
            network_disabled=isolated,
            sysctls=ISOLATED_SYSCTLS if isolated and self.engine not in _NO_IPV6 else None,
            mem_limit=limits.memory,
            memswap_limit=limits.memory,
            nano_cpus=int(min(limits.cpus, _daemon_cpus(self.engine)) * 1e9),
            pids_limit=limits.pids,
            working_dir=self.repo_path,
        )

    @retry_transient
    def _attach(self):
        """A socket on the container's stdin and output, attached before it starts so nothing is missed."""
        return self.engine.client.api.attach_socket(
            self.container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})

    def close(self) -> None:
        """Remove the container (idempotent; never raises: a leftover is swept by its labels later)."""
        if self.shell is not None:
            try:
                self.shell.close()
            except OSError:
                pass
            self.shell = None
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except (DockerException, RequestException):
                pass
            self.container = None

    # ---- tools -----------------------------------------------------------------------------------

    def execute(self, call: ToolCall, *, timeout: float | None = None) -> ToolResult:
        """Run one tool call; `timeout` overrides limits.command_timeout for bash."""
        if self.container is None or self.shell is None:
            raise SandboxError("the sandbox is not started")
        started = time.monotonic()
        tool = tool_named(call.name)
        if tool is None:
            result = _error(f"unknown tool {call.name!r}; {TOOLS_LINE}")
        elif missing := [name for name in tool.required if name not in call.arguments]:
            result = _error(f"{call.name} needs {', '.join(missing)}; {TOOLS_LINE}")
        else:
            run: Callable[[dict[str, str], float | None], ToolResult] = getattr(self, tool.method)
            try:
                result = run(call.arguments, timeout)
            except (DockerException, RequestException, OSError) as exc:
                raise SandboxError(f"{call.name} failed in the container: {error_line(exc)}") from exc
        result.seconds = round(time.monotonic() - started, 4)
        return result

    def _bash(self, args: dict[str, str], timeout: float | None) -> ToolResult:
        outcome = self.shell.run(args["command"], timeout or self.limits.command_timeout)
        text, truncated = outcome.capture.text(self.limits.shown_chars)
        raw, _ = outcome.capture.text(self.limits.stored_bytes)
        if outcome.notes:
            text, raw = _with_notes(text, outcome.notes), _with_notes(raw, outcome.notes)
        return ToolResult(
            output=text, raw_output=raw, output_bytes=outcome.capture.total, truncated=truncated,
            exit_code=outcome.exit_code, timed_out=outcome.timed_out, shell_restarted=outcome.restarted,
        )

    def _edit(self, args: dict[str, str], _timeout: float | None) -> ToolResult:
        path = self._path(args["path"])
        found = self._read_text(path)
        if isinstance(found, ToolResult):
            return found
        text, info = found
        try:
            new_text = apply_edit(text, args["search"], args["replace"])
        except EditError as exc:
            return _error(f"{path}: {exc}")
        self._put(path, new_text.encode(), mode=info.mode, uid=info.uid, gid=info.gid)
        first = line_of(new_text, text.index(args["search"]))
        snippet = numbered_snippet(new_text, first, span=args["replace"].count("\n") + 1)
        return self._text_result(f"Edited {path}:\n{snippet}")

    def _create_file(self, args: dict[str, str], _timeout: float | None) -> ToolResult:
        path = self._path(args["path"])
        if self._stat(path) is not None:
            return _error(f"{path} already exists; use edit to change it")
        parent = posixpath.dirname(path)
        stat = self._stat(parent)
        if stat is None or kind_of(stat) != "dir":
            return _error(f"parent directory {parent} does not exist; create it first (bash: mkdir -p {parent})")
        content = args["content"]
        self._put(path, content.encode())
        return self._text_result(f"Created {path} ({len(content.splitlines())} lines).")

    def _submit(self, args: dict[str, str], _timeout: float | None) -> ToolResult:
        if args.get("path", "").strip():
            path = self._path(args["path"].strip())
            found = self._read_text(path)
            if isinstance(found, ToolResult):
                return found
            patch = found[0]
            if not patch.strip():
                return _error(f"{path} is empty: nothing to submit")
            if not looks_like_diff(patch):
                return _error(f"{path} is not a diff (no 'diff --git' or '--- ' header); submit with no path "
                              "to send the repository's changes")
        else:
            code, (out, err) = self.container.exec_run(
                ["bash", "-c", SUBMIT_SCRIPT, "submit", self.repo_path, str(MAX_PATCH_BYTES + 1)],
                environment=SHELL_ENV, workdir="/", demux=True,  # workdir: the repository may be gone
            )
            out, err = out or b"", err or b""
            if code != 0:
                reason = (err or out).decode(errors="replace").strip().splitlines()
                return _error(f"could not diff the repository: {reason[-1] if reason else f'exit code {code}'}")
            if len(out) > MAX_PATCH_BYTES:
                return _error(f"the repository's diff is over {MAX_PATCH_BYTES:,} bytes; remove large or generated files")
            try:
                patch = out.decode()
            except UnicodeDecodeError:
                return _error("the repository's diff is not UTF-8 text (a changed file has another encoding)")
            if not patch.strip():
                return _error("nothing to submit: the repository has no changes against HEAD")
        result = self._text_result(f"Submitted a patch of {len(patch.splitlines())} lines.")
        result.patch, result.patch_from_file = patch, bool(args.get("path", "").strip())
        return result

    # ---- files through docker's archive API (not the shell, whose output is capped) --------------

    def _path(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.repo_path, path))

    def _text_result(self, text: str) -> ToolResult:
        output, truncated = shown(text, self.limits.shown_chars)
        return ToolResult(output=output, raw_output=text, output_bytes=len(text.encode()), truncated=truncated)

    @retry_transient
    def _stat(self, path: str) -> dict | None:
        """Docker's stat of a path in the container, None when it does not exist."""
        api = self.engine.client.api
        response = api.head(
            api._url("/containers/{0}/archive", self.container.id), params={"path": path}, timeout=self.engine.timeout,
        )
        if response.status_code == 404:
            self.container.reload()  # raises NotFound when the container itself is gone
            return None
        api._raise_for_status(response)
        return decode_json_header(response.headers["X-Docker-Container-Path-Stat"])

    def _read_text(self, path: str) -> tuple[str, tarfile.TarInfo] | ToolResult:
        """(text, tar info) of a UTF-8 file, or an error ToolResult saying why it cannot be read."""
        stat = self._stat(path)
        if stat is None:
            return _error(f"{path}: no such file")
        if kind_of(stat) != "file":
            return _error(f"{path} is a {'directory' if kind_of(stat) == 'dir' else 'symbolic link'}, not a file")
        if stat.get("size", 0) > MAX_FILE_BYTES:
            return _error(f"{path} is {stat['size']:,} bytes, too large for this tool; use bash")
        try:
            chunks, _ = self.container.get_archive(path)
            data, info = untar_one(b"".join(chunks))
        except NotFound:
            return _error(f"{path}: no such file")
        try:
            return data.decode(), info
        except UnicodeDecodeError:
            return _error(f"{path} is not UTF-8 text; use bash to change it")

    @retry_transient
    def _put(self, path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        parent, name = posixpath.split(path)
        self.container.put_archive(parent, tar_one(name, data, mode=mode, uid=uid, gid=gid))
