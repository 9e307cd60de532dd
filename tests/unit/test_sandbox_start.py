"""The sandbox's start without Docker: the control shell's first line (the start patch on stdin, then the prepare
script) run by a local bash on a local repository, as the container's control shell would run it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from forager.images.prune import HostImage, select_start_states
from forager.sandbox.container import PREPARE_SCRIPT, WRITE_HOSTS, prepare_command, runs_as_root, start_state_tag
from forager.sandbox.output import HeadTailBuffer
from forager.sandbox.stream import SentinelScanner, mark_for, plain_line
from tests.conftest import git, make_repo

MARK = mark_for("0123456789abcdef")
ORIGINAL = "return sum(items)  # ORIGINAL_CODE_MARKER"
BUGGY = "return sum(items) - 1  # BUGGY_CODE_MARKER"
CORE = f"def total(items):\n    {ORIGINAL}\n"
IDENTITY = "%an|%ae|%ad|%cn|%ce|%cd|%B"


def control_shell(stdin: bytes, home: Path, path: str | None = None) -> tuple[list[tuple[str, int]], int]:
    """What a control shell answers to `stdin` (each script's output and exit code), and its own exit code."""
    env = {"PATH": os.environ["PATH"] if path is None else path, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
           "LANG": "C.UTF-8"}
    proc = subprocess.run([shutil.which("bash"), "--noprofile", "--norc"], input=stdin, capture_output=True, env=env,
                          cwd="/",
                          timeout=60)
    scanner = SentinelScanner(MARK, lambda: HeadTailBuffer(1 << 20, 1 << 20))
    answers = [(bytes(capture.head).decode(), code) for capture, code in scanner.feed(proc.stdout + proc.stderr)]
    return answers, proc.returncode


def test_data_follows_the_script_and_precedes_the_sentinel():
    assert plain_line("cat", MARK, b"DATA") == b"cat\nDATAprintf '%s%d\\n' " + MARK + b' "$?"\n'
    assert plain_line("pwd", MARK) == b"pwd\nprintf '%s%d\\n' " + MARK + b' "$?"\n'


def test_the_patch_is_read_exactly_and_the_shell_goes_on(tmp_path):
    data = "a patch with 'quotes', $dollars, `ticks`\nand a last line without newline ünïcode".encode()
    path = tmp_path / "start.patch"
    script = 'cat -- "$2"; printf "|%s|" "$1"; stat -c %a -- "$2"'
    stdin = plain_line(prepare_command("/some repo", len(data), script, str(path)), MARK, data)
    answers, code = control_shell(stdin + plain_line("echo after", MARK), tmp_path)
    assert code == 0
    assert answers == [(data.decode() + "|/some repo|600\n", 0), ("after\n", 0)]


def test_a_failed_read_ends_the_shell_before_the_patch_can_run_as_commands(tmp_path):
    data = b"echo LEAKED\n"
    stdin = plain_line(prepare_command("/r", len(data), "echo PREPARED", str(tmp_path / "no/such/dir/p")), MARK, data)
    answers, code = control_shell(stdin + plain_line("echo after", MARK), tmp_path)
    assert code == 97 and answers == []


def test_without_a_patch_the_script_gets_an_empty_path(tmp_path):
    answers, _ = control_shell(plain_line(prepare_command("/r", 0, 'printf "[%s][%s]" "$1" "$2"'), MARK), tmp_path)
    assert answers == [("[/r][]", 0)]


# /etc/hosts as docker 20.10 writes it for a container on its "none" network
NONE_NETWORK_HOSTS = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""


def test_the_hosts_line_writes_the_none_networks_hosts_file_with_builtins_only(tmp_path):
    """The control shell's first line in an isolated container: it must fork nothing (an empty PATH finds no
    program), replace what the file held, and leave the shell taking the next line."""
    hosts = tmp_path / "hosts"
    hosts.write_text("an older, longer file that must not show through at the end\n" * 3)
    assert WRITE_HOSTS.count("/etc/hosts") == 1 and "\n" not in WRITE_HOSTS
    line = WRITE_HOSTS.replace("/etc/hosts", str(hosts))
    answers, code = control_shell(plain_line(line, MARK) + plain_line("echo after", MARK), tmp_path, path="")
    assert (answers, code) == ([("", 0), ("after\n", 0)], 0)
    assert hosts.read_text() == NONE_NETWORK_HOSTS
    failed, _ = control_shell(plain_line(WRITE_HOSTS.replace("/etc/hosts", str(tmp_path / "no/dir/hosts")), MARK),
                              tmp_path, path="")
    assert failed[0][1] != 0 and "no/dir/hosts: No such file or directory" in failed[0][0]


def test_only_root_by_name_or_uid_counts_as_root():
    assert all(runs_as_root(user) for user in ("", "root", "0", "0:0", "root:root", "0:1000"))
    assert not any(runs_as_root(user) for user in ("1000", "nobody", "1000:0", "toor", " root"))


def _repo_with_history(root: Path) -> tuple[str, str]:
    """Two commits, a tag, another branch, a dangling blob, a kept pack, a commit-graph, packed refs, an install's
    change to a tracked file; the original code is in all of them. Returns (the bug patch, HEAD's identity)."""
    make_repo(root, {"calc/core.py": CORE, "README": "calc\n"}, {"calc/extra.py": "X = 1\n"})
    git(root, "tag", "v1", "HEAD~1")
    git(root, "branch", "other")
    git(root, "repack", "-a", "-d", "-q")
    pack = next((root / ".git/objects/pack").glob("*.pack"))
    pack.with_suffix(".keep").write_text("")
    git(root, "commit-graph", "write", "--reachable")
    git(root, "pack-refs", "--all")
    subprocess.run(["git", "hash-object", "-w", "--stdin"], input=f"dangling {ORIGINAL}\n", text=True, cwd=root,
                   check=True, capture_output=True)
    (root / "calc/core.py").write_text(CORE.replace(ORIGINAL, BUGGY))
    patch = git(root, "diff") + "\n"
    git(root, "checkout", "--", "calc/core.py")
    (root / "README").write_text("calc, installed\n")
    return patch, git(root, "log", "-1", f"--format={IDENTITY}")


def test_the_prepare_script_leaves_only_the_bug_commit_and_its_objects(tmp_path):
    repo = tmp_path / "repo"
    patch, identity = _repo_with_history(repo)
    data = patch.encode()
    path = tmp_path / "start.patch"
    answers, _ = control_shell(plain_line(prepare_command(str(repo), len(data), patch_path=str(path)), MARK, data),
                               tmp_path)
    assert answers == [("", 0)]
    assert not path.exists()
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "log", "-1", f"--format={IDENTITY}") == identity
    assert git(repo, "rev-list", "--all", "--reflog", "--count") == "1"
    assert git(repo, "for-each-ref", "--format=%(refname)") == "refs/heads/main"
    assert git(repo, "show", "HEAD:README") == "calc, installed"
    assert "BUGGY_CODE_MARKER" in git(repo, "show", "HEAD:calc/core.py")
    objects = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch"], cwd=repo, check=True,
                             capture_output=True).stdout
    assert b"ORIGINAL_CODE_MARKER" not in objects
    assert "unreachable" not in git(repo, "fsck", "--unreachable", "--no-reflogs")
    assert all(log.stat().st_size == 0 for log in (repo / ".git/logs").rglob("*") if log.is_file())
    stored = sorted(p.name.rsplit(".", 1)[-1] for p in (repo / ".git/objects").rglob("*") if p.is_file())
    assert stored == ["idx", "pack"]  # no loose object, kept pack or commit-graph
    head = git(repo, "rev-parse", "HEAD")
    assert (repo / ".git/packed-refs").read_text().splitlines()[-1] == f"{head} refs/heads/main"


def test_a_patch_that_does_not_apply_exits_3_and_leaves_history_alone(tmp_path):
    repo = tmp_path / "repo"
    patch, _ = _repo_with_history(repo)
    data = patch.replace("ORIGINAL_CODE_MARKER", "NOT_THERE").encode()
    answers, _ = control_shell(plain_line(prepare_command(str(repo), len(data), patch_path=str(tmp_path / "p")),
                                          MARK, data), tmp_path)
    assert answers[0][1] == 3 and "patch" in answers[0][0]
    assert git(repo, "rev-list", "--all", "--count") == "2"


def test_a_start_state_is_keyed_by_image_id_patch_script_and_path():
    tag = start_state_tag("sha256:aa", "patch", "/testbed")
    assert tag.startswith("forager-start:") and len(tag.split(":")[1]) == 16
    assert tag == start_state_tag("sha256:aa", "patch", "/testbed", PREPARE_SCRIPT)
    others = {start_state_tag("sha256:bb", "patch", "/testbed"), start_state_tag("sha256:aa", "patch2", "/testbed"),
              start_state_tag("sha256:aa", "patch", "/repo"), start_state_tag("sha256:aa", "patch", "/testbed", "x")}
    assert len(others) == 4 and tag not in others


def test_prune_selects_start_states_of_gone_removed_or_rebuilt_task_images_and_untagged_ones():
    def start(tags, base, base_id, containers=0):
        return HostImage(id=f"s-{len(host)}", tags=tags, containers=containers, labels={
            "forager": "1", "forager.role": "start-state", "forager.base": base, "forager.base-id": base_id})

    host = [HostImage(id="b1", tags=["p/a:1"]), HostImage(id="b2", tags=["p/b:1"]), HostImage(id="o", tags=["q/c:1"])]
    host.append(start(["forager-start:1"], "p/a:1", "b1"))  # its task image stays: kept
    host.append(start(["forager-start:2"], "p/b:1", "b2"))  # its task image is removed by this prune
    host.append(start(["forager-start:3"], "p/a:1", "old"))  # "p/a:1" was rebuilt: another id
    host.append(start(["forager-start:4"], "p/gone:1", "g"))  # its task image is gone
    host.append(start([], "p/a:1", "b1"))  # a concurrent commit took its tag
    host.append(start(["forager-start:6"], "p/gone:1", "g", containers=1))  # a sandbox runs from it
    host.append(start(["forager-start:7"], "q/c:1", "x"))  # another prefix's
    items, kept = select_start_states(host, {"p/b:1"}, prefix="p")
    assert [(item.tag, item.reason) for item in items] == [
        ("forager-start:2", "base-removed"), ("forager-start:3", "base-gone"), ("forager-start:4", "base-gone"),
        ("s-7", "untagged")]
    assert kept == {"start-state": 1, "container": 1}
