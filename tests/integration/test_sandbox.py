"""The episode sandbox against a real Docker engine: shell, limits, start patch, tools, lifecycle."""

from __future__ import annotations

import time
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from docker.errors import NotFound

from forager.engine.docker_engine import LABEL, OWNER_LABELS
from forager.sandbox import container as sandbox_container
from forager.sandbox.container import Sandbox
from forager.sandbox.errors import SandboxError
from forager.sandbox.models import SandboxLimits, ToolCall
from tests.conftest import git, make_repo
from tests.integration.conftest import BASE_IMAGE, TEST_IMAGE_PREFIX

ORIGINAL = "return sum(items)  # ORIGINAL_CODE_MARKER"
BUGGY = "return sum(items) - 1  # BUGGY_CODE_MARKER"
CORE = f"def total(items):\n    {ORIGINAL}\n\n\ndef mean(items):\n    return total(items) / len(items)\n"


@pytest.fixture(scope="module")
def task(engine, tmp_path_factory):
    """A tiny repository image (two commits at /testbed) and a bug patch against its HEAD."""
    context = tmp_path_factory.mktemp("sandbox-image")
    repo = context / "repo"
    make_repo(repo, {"calc/__init__.py": "", "calc/core.py": CORE, "README": "calc\n"}, {"calc/extra.py": "X = 1\n"})
    (repo / "calc/core.py").write_text(CORE.replace(ORIGINAL, BUGGY))
    patch = git(repo, "diff") + "\n"
    git(repo, "checkout", "--", "calc/core.py")
    dates = git(repo, "log", "-1", "--format=%ad|%cd|%s")
    (context / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE.replace('{python}', '3.11')}\n"
        "RUN git config --system user.email forager@localhost && git config --system user.name forager\n"
        "COPY repo /testbed\n"
    )
    tag = f"{TEST_IMAGE_PREFIX}/sandbox:{uuid.uuid4().hex[:8]}"
    engine.build(context, tag, timeout=300)
    return {"image": tag, "patch": patch, "dates": dates}


@pytest.fixture
def make_box(engine, task):
    boxes = []

    def make(patch: str = "", **limits) -> Sandbox:
        box = Sandbox(engine, task["image"], limits=SandboxLimits(**{"command_timeout": 20, **limits}),
                      labels={"forager.run": "test", "forager.episode": uuid.uuid4().hex[:8]})
        boxes.append(box)
        box.start(patch)
        return box

    yield make
    for box in boxes:
        box.close()


def bash(box: Sandbox, command: str, timeout: float | None = None):
    return box.execute(ToolCall(name="bash", arguments={"command": command}), timeout=timeout)


def test_start_patch_is_folded_into_head_and_the_original_is_gone(make_box, task, engine):
    box = make_box(task["patch"])
    assert box.start_seconds < 10
    assert bash(box, "git status --porcelain; git diff HEAD").output == ""
    assert "BUGGY_CODE_MARKER" in bash(box, "cat calc/core.py").output
    # the original code is in no commit, diff, reflog, dangling object or packed object
    probe = bash(box, "git log -p --all --reflog | grep -c ORIGINAL_CODE_MARKER; "
                      "git cat-file --batch-all-objects --batch | grep -ac ORIGINAL_CODE_MARKER; "
                      "git fsck --lost-found --unreachable 2>&1 | grep -c -e dangling -e unreachable; "
                      "git show HEAD~1 2>&1 | grep -c 'unknown revision'")
    assert probe.output.split() == ["0", "0", "0", "1"], probe.output
    # HEAD keeps its message, authors' and committers' dates
    assert bash(box, "git log -1 --format='%ad|%cd|%s'").output.strip() == task["dates"]
    assert "__pycache__/" in bash(box, "cat .git/info/exclude").output
    assert bash(box, "mkdir -p calc/__pycache__ && touch calc/__pycache__/x.pyc && git status --porcelain").output == ""


def test_a_patch_that_does_not_apply_is_a_sandbox_error_and_leaves_no_container(engine, task):
    episode = uuid.uuid4().hex
    box = Sandbox(engine, task["image"], labels={"forager.episode": episode})
    with pytest.raises(SandboxError, match="start patch does not apply"):
        box.start(task["patch"].replace("ORIGINAL_CODE_MARKER", "NOT_THERE"))
    assert not engine.client.containers.list(all=True, filters={"label": f"forager.episode={episode}"})


def test_the_shell_persists_state_and_reports_exit_codes(make_box):
    box = make_box()
    assert bash(box, "cd calc && export GREETING=hi && false").exit_code == 1
    result = bash(box, "pwd; echo $GREETING")
    assert (result.output, result.exit_code) == ("/testbed/calc\nhi\n", 0)
    assert bash(box, "exit_code_of() { return 7; }; exit_code_of").exit_code == 7
    assert bash(box, "if then").exit_code == 2  # a syntax error is an answer, not a hang
    heredoc = bash(box, "cat <<'EOF'\n$NOT_EXPANDED 'quotes' \"too\"\nEOF")
    assert heredoc.output == "$NOT_EXPANDED 'quotes' \"too\"\n"
    assert bash(box, "cat; read line; echo read=$?").output == "read=1\n"  # stdin is at EOF, not the shell's
    assert bash(box, "echo to-stderr >&2").output == "to-stderr\n"
    died = bash(box, "exit 3")
    assert died.shell_restarted and died.exit_code == 3
    assert "[the shell exited with code 3; a fresh shell was started in /testbed]" in died.output
    assert bash(box, "pwd; echo ${GREETING:-unset}").output == "/testbed\nunset\n"


def test_a_hanging_command_times_out_keeps_its_output_and_the_shell_restarts(make_box):
    box = make_box()
    bash(box, "export LEFT=over; (setsid sleep 1000 &); sleep 999 &")
    started = time.monotonic()
    result = bash(box, "echo before-the-hang; python3 -c 'print(\"from python\")'; sleep 60", timeout=2)
    assert time.monotonic() - started < 10
    assert result.timed_out and result.shell_restarted and result.exit_code is None
    assert result.output.startswith("before-the-hang\nfrom python\n")
    assert result.output.endswith("[command timed out after 2 s; a fresh shell was started in /testbed]")
    after = bash(box, "echo ${LEFT:-fresh}; cat /proc/[0-9]*/comm | sort | tr '\\n' ' '")
    assert after.output.startswith("fresh\n")
    # the keep-alive (`timeout`, the control shell's parent) stays; the sleeps and the hang are gone
    assert "sleep" not in after.output and after.output.split().count("timeout") == 1
    assert bash(box, "true").exit_code == 0


def test_a_100_mb_output_stays_bounded_in_the_collector(make_box):
    box = make_box(shown_chars=10_000, stored_bytes=200_000)
    tracemalloc.start()
    try:
        result = bash(box, "yes 'line of output' | head -c 100000000; echo; echo THE-END")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000, peak
    assert result.exit_code == 0 and result.truncated
    assert result.output_bytes == 100_000_000 + len("\nTHE-END\n")
    assert result.output.startswith("line of output\n") and result.output.endswith("THE-END\n")
    assert " bytes (" in result.output and " lines) cut ...]" in result.output
    assert len(result.output) < 10_100 and len(result.raw_output) < 200_100


def test_non_utf8_and_nul_bytes_come_back_escaped(make_box):
    box = make_box()
    result = bash(box, r"printf 'ok \xff\xfe \x00 end'")
    assert result.output == "ok \\xff\\xfe \\x00 end"


def test_a_fork_bomb_hits_the_pids_limit_and_is_cleared_at_the_timeout(make_box):
    """The bomb is held at the pids limit and its call ends at the timeout, when the builtin-only kill loop
    (it needs no free pid) clears the container: later commands work, no SandboxError. (A bomb left running
    in the background lives on, held at the limit, until some command times out or the episode ends.)"""
    box = make_box(pids=64)
    started = time.monotonic()
    bombed = bash(box, "bomb() { bomb | bomb & }; bomb; sleep 60", timeout=3)
    assert bombed.timed_out and bombed.shell_restarted
    result = bash(box, "echo alive; ls /proc | grep -c '^[0-9]'")
    assert result.output.startswith("alive\n") and int(result.output.split()[1]) < 10, result.output
    assert time.monotonic() - started < 30


def test_a_memory_hog_is_killed_and_the_shell_keeps_working(make_box):
    box = make_box(memory="256m")
    result = bash(box, "python3 -c 'x = bytearray(1024 ** 3); print(len(x))'")
    assert result.exit_code == 137 and "Killed" in result.output
    assert bash(box, "echo still-here").output == "still-here\n"


def test_there_is_no_network(make_box):
    result = bash(box := make_box(), "python3 -c \"import urllib.request; urllib.request.urlopen('http://1.1.1.1', timeout=5)\"")
    assert result.exit_code != 0 and "unreachable" in result.output.lower()
    assert bash(box, "getent hosts pypi.org || echo no-dns").output == "no-dns\n"


# the network as a process in the container sees it: devices, addresses, IPv6, /etc/hosts, lookups, a local server
NETWORK_VIEW = ("tail -n +3 /proc/net/dev | cut -d: -f1; cat /proc/net/if_inet6; "
                "cat /proc/sys/net/ipv6/conf/*/disable_ipv6 | tr '\\n' ' '; echo; cat /etc/hosts; "
                "getent hosts localhost; getent hosts pypi.org || echo no-dns; python3 -c \"import socket; "
                "s = socket.socket(); s.bind(('localhost', 0)); print(s.getsockname()[0])\"")


def none_network_view(engine, image: str) -> str:
    """NETWORK_VIEW in a container of `image` on docker's own "none" network."""
    return engine.client.containers.run(image, ["bash", "-c", NETWORK_VIEW], entrypoint=[], remove=True,
                                        network_mode="none", init=True).decode()


def test_without_a_network_the_container_sees_what_dockers_none_network_gives(engine, task, make_box):
    """No libnetwork sandbox (NetworkDisabled: a namespace of runc's, ~230 ms less of `docker start`), and no
    difference from inside: only loopback, IPv6 off, docker's /etc/hosts, no lookups, localhost serves."""
    box = make_box(task["patch"])
    attrs = engine.client.api.inspect_container(box.container.id)
    assert attrs["Config"].get("NetworkDisabled") is True and attrs["HostConfig"]["NetworkMode"] == "none"
    view = none_network_view(engine, task["image"])
    assert view.startswith("    lo\n") and "no-dns\n127.0.0.1\n" in view and "\n127.0.0.1\tlocalhost\n" in view, view
    assert bash(box, NETWORK_VIEW).output == view


def test_engine_runs_without_a_network_see_what_dockers_none_network_gives(engine, task, monkeypatch):
    """Every test run and grade (Engine.run) goes without the libnetwork sandbox too: /etc/hosts is written before the
    start, with the command's own files; a host without IPv6 sysctls runs the command again without them."""
    from forager.engine import docker_engine

    run = engine.run(task["image"], ["bash", "-c", NETWORK_VIEW + "; cat /tmp/given"], timeout=60,
                     files={"/tmp/given": b"given\n"})
    assert run.exit_code == 0 and run.output == none_network_view(engine, task["image"]) + "given\n"
    monkeypatch.setattr(docker_engine, "ISOLATED_SYSCTLS", {"net.ipv6.conf.all.no_such_sysctl": "1"})
    monkeypatch.setattr(docker_engine, "NO_IPV6", type(docker_engine.NO_IPV6)())
    again = engine.run(task["image"], ["bash", "-c", "getent hosts localhost > /dev/null && echo ok"], timeout=60)
    assert (again.exit_code, again.output) == (0, "ok\n") and engine in docker_engine.NO_IPV6


def test_a_non_root_image_and_a_networked_sandbox_keep_dockers_networks(engine, task, tmp_path):
    """The control shell of an image that runs as another user cannot write /etc/hosts: it keeps docker's "none"
    network, as a sandbox given a network keeps docker's default one."""
    (tmp_path / "Dockerfile").write_text(f"FROM {task['image']}\nRUN chown -R nobody /testbed\nUSER nobody\n")
    tag = f"{TEST_IMAGE_PREFIX}/sandbox-nobody:{uuid.uuid4().hex[:8]}"
    engine.build(tmp_path, tag, timeout=300)
    with Sandbox(engine, tag, limits=SandboxLimits(command_timeout=20)) as box, \
            Sandbox(engine, task["image"], limits=SandboxLimits(command_timeout=20, network=True)) as networked:
        box.start(task["patch"])
        networked.start(task["patch"])
        attrs = engine.client.api.inspect_container(box.container.id)
        assert not attrs["Config"].get("NetworkDisabled") and attrs["HostConfig"]["NetworkMode"] == "none"
        started = bash(box, "id -un; git status --porcelain; grep -c BUGGY_CODE_MARKER calc/core.py")
        assert started.output == "nobody\n1\n"
        assert bash(box, NETWORK_VIEW).output == none_network_view(engine, task["image"])
        attrs = engine.client.api.inspect_container(networked.container.id)
        assert not attrs["Config"].get("NetworkDisabled") and attrs["HostConfig"]["NetworkMode"] == "default"
        assert bash(networked, "grep -c ' /etc/hosts ' /proc/mounts; git status --porcelain").output == "1\n"


def test_a_host_without_ipv6_sysctls_starts_isolated_sandboxes_without_them(engine, task, monkeypatch):
    """On a host booted with ipv6.disable=1 runc cannot set the IPv6 sysctls and the start fails: the sandbox starts
    again without them (nothing of IPv6 to turn off), and so do the engine's later ones. Made here with a sysctl
    that no kernel has."""
    monkeypatch.setattr(sandbox_container, "ISOLATED_SYSCTLS", {"net.ipv6.conf.all.no_such_sysctl": "1"})
    monkeypatch.setattr(sandbox_container, "_NO_IPV6", type(sandbox_container._NO_IPV6)())
    for _ in range(2):
        with Sandbox(engine, task["image"], limits=SandboxLimits(command_timeout=20)) as box:
            box.start(task["patch"])
            attrs = engine.client.api.inspect_container(box.container.id)
            assert attrs["Config"].get("NetworkDisabled") is True and not attrs["HostConfig"].get("Sysctls")
            assert bash(box, "git status --porcelain; getent hosts localhost > /dev/null && echo ok").output == "ok\n"
    assert engine in sandbox_container._NO_IPV6


def test_a_failed_first_line_of_the_control_shell_is_a_sandbox_error_and_leaves_no_container(engine, task,
                                                                                            monkeypatch):
    # the real script with a path that cannot be written: its own redirection of the error to stdout is what puts
    # the reason in the answer (stderr may come after the sentinel; a replacement without it made this test flaky)
    failing = sandbox_container.WRITE_HOSTS.replace("> /etc/hosts", "> /no/such/dir/hosts")
    assert failing != sandbox_container.WRITE_HOSTS
    monkeypatch.setattr(sandbox_container, "WRITE_HOSTS", failing)
    episode = uuid.uuid4().hex
    box = Sandbox(engine, task["image"], labels={"forager.episode": episode})
    with pytest.raises(SandboxError, match="could not start .*/no/such/dir/hosts"):
        box.start(task["patch"])
    assert box.container is None and box.shell is None
    assert not engine.client.containers.list(all=True, filters={"label": f"forager.episode={episode}"})


def test_removing_the_repository_makes_tools_answer_errors(make_box):
    box = make_box()
    assert bash(box, "rm -rf /testbed; echo gone").output == "gone\n"
    assert box.execute(ToolCall(name="edit", arguments={"path": "calc/core.py", "search": "a", "replace": "b"})).error
    assert box.execute(ToolCall(name="create", arguments={"path": "calc/new.py", "content": "x"})).error
    submitted = box.execute(ToolCall(name="submit"))
    assert submitted.error and submitted.patch is None and "/testbed" in submitted.output
    hang = bash(box, "sleep 30", timeout=1)
    assert hang.output.endswith("a fresh shell was started in /]")
    assert bash(box, "pwd").output == "/\n"


def test_edit_create_and_submit(make_box):
    box = make_box()
    edit = box.execute(ToolCall(name="edit", arguments={
        "path": "calc/core.py", "search": "return total(items) / len(items)",
        "replace": "if not items:\n        return 0.0\n    return total(items) / len(items)"}))
    assert not edit.error, edit.output
    assert edit.output.splitlines()[0] == "Edited /testbed/calc/core.py:"
    assert "  6 |     if not items:" in edit.output and "  1 | def total(items):" in edit.output
    for search, message in [("", "search is empty"), ("nowhere", "not found"), ("items", "found 6 times")]:
        refused = box.execute(ToolCall(name="edit", arguments={"path": "calc/core.py", "search": search, "replace": "x"}))
        assert refused.error and message in refused.output
    missing = box.execute(ToolCall(name="edit", arguments={"path": "calc/nope.py", "search": "a", "replace": "b"}))
    assert missing.error and "no such file" in missing.output

    bash(box, "chmod 755 README")
    box.execute(ToolCall(name="edit", arguments={"path": "/testbed/README", "search": "calc", "replace": "Calc"}))
    assert bash(box, "stat -c %a README; cat README").output == "755\nCalc\n"

    exists = box.execute(ToolCall(name="create", arguments={"path": "README", "content": "x"}))
    assert exists.error and "already exists" in exists.output and "edit" in exists.output
    orphan = box.execute(ToolCall(name="create", arguments={"path": "no/such/dir/x.py", "content": "x"}))
    assert orphan.error and "parent directory /testbed/no/such/dir does not exist" in orphan.output
    created = box.execute(ToolCall(name="create", arguments={"path": "calc/new.py", "content": "Y = 2\n"}))
    assert not created.error and bash(box, "cat calc/new.py").output == "Y = 2\n"

    bash(box, "git add README")  # the agent's staging must not change what is submitted, nor be changed
    submitted = box.execute(ToolCall(name="submit", arguments={}))
    assert not submitted.error, submitted.output
    for path in ("calc/core.py", "calc/new.py", "README"):
        assert f"diff --git a/{path} b/{path}" in submitted.patch
    assert bash(box, "git status --porcelain").output == "M  README\n M calc/core.py\n?? calc/new.py\n"
    # the patch applies to the original tree
    applied = bash(box, f"git stash -u -q && git apply --check - <<'EOF'\n{submitted.patch}EOF\necho $?")
    assert applied.output.strip() == "0", applied.output

    box.execute(ToolCall(name="create", arguments={"path": "/tmp/fix.diff", "content": submitted.patch}))
    by_path = box.execute(ToolCall(name="submit", arguments={"path": "/tmp/fix.diff"}))
    assert by_path.patch == submitted.patch
    box.execute(ToolCall(name="create", arguments={"path": "/tmp/notes.txt", "content": "just notes\n"}))
    assert "not a diff" in box.execute(ToolCall(name="submit", arguments={"path": "/tmp/notes.txt"})).output
    nothing = box.execute(ToolCall(name="submit", arguments={"path": ""}))  # the stash left the tree clean
    assert nothing.error and "nothing to submit" in nothing.output

    unknown = box.execute(ToolCall(name="browse", arguments={}))
    assert unknown.error and "bash" in unknown.output and "submit" in unknown.output
    assert "needs command" in box.execute(ToolCall(name="bash", arguments={})).output


def test_labels_limits_close_and_the_hard_deadline(make_box, engine):
    box = make_box(deadline=10, pids=100, memory="300m")
    attrs = engine.client.api.inspect_container(box.container.id)
    labels = attrs["Config"]["Labels"]
    assert labels[LABEL] == "1" and labels["forager.role"] == "episode" and labels["forager.run"] == "test"
    assert labels["forager.pid"] == OWNER_LABELS["forager.pid"]
    host = attrs["HostConfig"]
    assert (host["NetworkMode"], host["PidsLimit"], host["Memory"], host["MemorySwap"]) == ("none", 100, 300 << 20, 300 << 20)
    assert host["Init"] is True

    closed = make_box()
    container_id = closed.container.id
    closed.close()
    closed.close()
    with pytest.raises(NotFound):
        engine.client.containers.get(container_id)

    # nobody closes `box`: its container ends itself at the deadline
    deadline_id = box.container.id
    gone_at = None
    for _ in range(40):
        try:
            engine.client.containers.get(deadline_id)
        except NotFound:
            gone_at = time.monotonic()
            break
        time.sleep(0.5)
    assert gone_at is not None, "the container outlived its deadline"
    with pytest.raises(SandboxError):
        bash(box, "echo too late")



def test_submit_sees_an_edit_that_left_size_and_times_as_they_were(make_box):
    """A same-size edit in the second the index was written is "racily clean": git compares its content only
    while the index file is no older than the file. The diff's throw-away index keeps that time (cp -p)."""
    box = make_box()
    setup = ("git config core.trustctime false && touch -d @1700000000 calc/core.py && git update-index -q --refresh"
             " && touch -d @1700000000 .git/index")
    assert bash(box, setup).exit_code == 0
    # same size, same inode, same mtime: only the content tells
    edit = ("python3 -c \"p='calc/core.py'; t=open(p).read(); open(p, 'r+').write(t.replace('total', 'totxl', 1))\""
            " && touch -d @1700000000 calc/core.py && git diff --stat HEAD")
    assert "calc/core.py" in bash(box, edit).output
    submitted = box.execute(ToolCall(name="submit", arguments={}))
    assert not submitted.error, submitted.output
    assert "+def totxl(items):" in submitted.patch


def test_a_large_start_patch_goes_through_the_control_shell_and_leaves_no_trace(make_box, task):
    """The start patch travels on the control shell's stdin (no archive upload, no argument): one over a pipe's
    buffer and an argument's size limit applies whole, and neither a file nor a process shows the original."""
    lines = [f"generated line {i}\n" for i in range(20_000)]  # ~400 KB
    generated = ("diff --git a/calc/generated.txt b/calc/generated.txt\nnew file mode 100644\n--- /dev/null\n"
                 f"+++ b/calc/generated.txt\n@@ -0,0 +1,{len(lines)} @@\n" + "".join("+" + line for line in lines))
    box = make_box(task["patch"] + generated)
    assert set(box.start_phases) == {"create", "start", "open_shells", "prepare", "shells_ready"}
    assert bash(box, "git status --porcelain; wc -l < calc/generated.txt; grep -c BUGGY_CODE_MARKER calc/core.py"
                ).output.split() == [str(len(lines)), "1"]
    probe = bash(box, "ls /tmp; cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ | grep -ac 'ORIGINAL_CODE_MARKE[R]'; "
                      "git rev-list --all --count")
    assert probe.output.split() == ["0", "1"], probe.output


# every file of the repository by content and mode, read before any git command can refresh the index
FILES = "cd /testbed && find . -type f -print0 | sort -z | xargs -0 stat -c '%a %n' && find . -type f -print0 | sort -z | xargs -0 sha256sum"
GIT_STATE = ("git status --porcelain; git log --all --reflog --format='%H %an %ae %ad %cn %ce %cd %s'; git for-each-ref; "
             "git cat-file --batch-all-objects --batch-check | sort; git fsck --unreachable --no-reflogs 2>&1; ls -A /tmp")


def reusing(engine, task, patch: str, episode: str = "") -> Sandbox:
    box = Sandbox(engine, task["image"], reuse_start_state=True, limits=SandboxLimits(command_timeout=20),
                  labels={"forager.run": "test", **({"forager.episode": episode} if episode else {})})
    box.start(patch)
    return box


def test_a_reused_start_state_is_the_prepared_one_and_a_missing_image_means_a_normal_start(engine, task):
    first = reusing(engine, task, task["patch"], episode="first")
    tag = first.start_image
    try:
        assert first.start_kind == "committed" and tag.startswith("forager-start:") and "commit" in first.start_phases
        committed = bash(first, FILES).output
        with reusing(engine, task, task["patch"]) as box, Sandbox(engine, task["image"]) as plain:
            plain.start(task["patch"])
            assert (box.start_kind, box.start_image, box.start_phases["prepare"] < 0.05) == ("reused", tag, True)
            # byte for byte what the prepare left (the index too), and git's view is a normal start's
            assert bash(box, FILES).output == committed
            assert bash(box, GIT_STATE).output == bash(plain, GIT_STATE).output
            # the start state's image holds the /etc/hosts its first start wrote; each start writes it again
            assert bash(box, NETWORK_VIEW).output == bash(plain, NETWORK_VIEW).output
            assert engine.client.api.inspect_container(box.container.id)["Config"].get("NetworkDisabled") is True
            probe = bash(box, "git log -p --all --reflog | grep -c ORIGINAL_CODE_MARKER; "
                              "git cat-file --batch-all-objects --batch | grep -ac ORIGINAL_CODE_MARKER; "
                              "grep -rc ORIGINAL_CODE_MARKER /testbed /tmp | grep -vc ':0$'; git rev-list --all --count")
            assert probe.output.split() == ["0", "0", "0", "1"], probe.output
            # the first episode's labels do not follow its start state into other containers
            labels = engine.client.api.inspect_container(box.container.id)["Config"]["Labels"]
            assert labels["forager.role"] == "episode" and labels["forager.pid"] == OWNER_LABELS["forager.pid"]
            assert labels.get("forager.episode", "") == ""
        image = engine.client.api.inspect_image(tag)
        base = engine.client.api.inspect_image(task["image"])
        assert {k: image["Config"]["Labels"][k] for k in (LABEL, "forager.role", "forager.base", "forager.base-id")} == {
            LABEL: "1", "forager.role": "start-state", "forager.base": task["image"], "forager.base-id": base["Id"]}
        assert image["Size"] - base["Size"] < 100_000  # the repository's new pack, index and patched files
        # another start patch is another start state; a removed start image is a normal start that commits again
        other = reusing(engine, task, "")
        assert other.start_kind == "committed" and other.start_image != tag
        other.close()
        engine.remove_image(other.start_image)
        engine.remove_image(tag)
        with reusing(engine, task, task["patch"]) as again:
            assert (again.start_kind, again.start_image) == ("committed", tag)
            assert bash(again, "git status --porcelain; grep -c BUGGY_CODE_MARKER calc/core.py").output == "1\n"
    finally:
        first.close()
        engine.remove_image(tag)


def test_concurrent_first_starts_and_a_broken_start_image_still_start(engine, task):
    patch = task["patch"].replace("sum(items) - 1", "sum(items) - 2")
    with ThreadPoolExecutor(4) as pool:
        boxes = list(pool.map(lambda _: reusing(engine, task, patch), range(4)))
    tag = boxes[0].start_image or boxes[1].start_image or boxes[2].start_image or boxes[3].start_image
    try:
        assert tag and {box.start_kind for box in boxes} <= {"prepared", "committed", "reused"}
        assert all(bash(box, "git status --porcelain; git rev-list --all --count").output == "1\n" for box in boxes)
        for box in boxes:
            box.close()
        # a start image without the repository (here: the base image under its tag) is replaced by a normal start
        engine.remove_image(tag)
        engine.client.images.get(BASE_IMAGE.replace("{python}", "3.11")).tag(*tag.split(":"))
        with reusing(engine, task, patch) as box:
            assert box.start_kind == "committed"
            assert "BUGGY_CODE_MARKER" in bash(box, "cat calc/core.py").output
        with reusing(engine, task, patch) as box:
            assert box.start_kind == "reused" and bash(box, "git status --porcelain").output == ""
    finally:
        for box in boxes:
            box.close()
        # the start images of the task image, the untagged ones of commits that lost the race too
        for image in engine.client.api.images(filters={"label": f"forager.base={task['image']}"}):
            engine.remove_image(image["Id"])
