"""The Docker edge: builds, runs and inspects with a timeout on every call (docker SDK, classic builder)."""

from __future__ import annotations

import io
import os
import re
import socket
import tarfile
import time
import weakref
from pathlib import Path

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from pydantic import BaseModel
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from forager.engine.processes import pid_alive, tail

LABEL = "forager"  # every container forager starts carries this label, so leftovers can be swept
OWNER_LABELS = {"forager.host": socket.gethostname(), "forager.pid": str(os.getpid())}
MAX_COLLECT_BYTES = 512 * 1024 * 1024  # a folder copied back from a container is read into memory
# Without a network, a container is created with NetworkDisabled rather than on docker's "none" network, which is a
# libnetwork sandbox that costs most of `docker start` (~230 ms of ~370 ms here: a re-exec of dockerd as runc's
# prestart hook, another to set the namespace's sysctls, the namespace's bind mount and the daemon's records of it;
# bench/sandbox.py). Both give the container a network namespace of its own with only the loopback device (runc
# makes it); what "none" adds is put back: IPv6 off (these sysctls) and docker's /etc/hosts for that network, byte
# for byte (NONE_NETWORK_HOSTS: Engine.run writes it before the start, a sandbox's control shell as its first line).
# /etc/resolv.conf stays empty (docker's names the host's resolver, unreachable either way: a lookup fails at once).
ISOLATED_SYSCTLS = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
NONE_NETWORK_HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                      "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
# Engines whose host has no IPv6 (booted with ipv6.disable=1): runc cannot set those sysctls there and the start
# fails, so they are left out (nothing of IPv6 to turn off), as "none" leaves them out.
NO_IPV6: weakref.WeakSet = weakref.WeakSet()
_STEP_RE = re.compile(r"^Step \d+/\d+ : (.*)$")


def _transient(exc: BaseException) -> bool:
    """Connection hiccups and daemon 5xx are worth a retry; a bad Dockerfile or a missing image is not."""
    if isinstance(exc, requests.exceptions.ConnectionError):
        return True
    if isinstance(exc, APIError) and not isinstance(exc, NotFound | ImageNotFound):
        return exc.status_code in (500, 502, 503) and "no such" not in str(exc).lower()
    return False


retry_transient = retry(
    retry=retry_if_exception(_transient), stop=stop_after_attempt(3), wait=wait_exponential(0.5, max=8), reraise=True
)


class EngineUnavailable(RuntimeError):
    pass


class BuildFailed(RuntimeError):
    """A docker build that stopped; `step` is the Dockerfile instruction that failed."""

    def __init__(self, message: str, step: str, log_tail: str, timed_out: bool = False):
        super().__init__(message)
        self.step = step
        self.log_tail = log_tail
        self.timed_out = timed_out


class RunResult(BaseModel):
    exit_code: int | None
    timed_out: bool
    output: str
    files: dict[str, bytes] = {}


def no_ipv6_error(exc: BaseException) -> bool:
    """Whether a start failed because the host has no IPv6 sysctls to set (see NO_IPV6)."""
    text = str(exc)
    return "/proc/sys/net/ipv6/" in text and "no such file or directory" in text


def _tar_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        # no folder entries: the daemon makes missing parents, and an entry for /tmp would reset its mode
        for path, data in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Engine:
    """A narrow interface over the Docker daemon."""

    def __init__(self, timeout: int = 120):
        try:
            self.client = docker.from_env(timeout=timeout)
            self.client.ping()
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise EngineUnavailable(
                f"no Docker engine answers ({exc.__class__.__name__}); start one (make test / make demo do) "
                "or set DOCKER_HOST"
            ) from exc
        self.timeout = timeout

    @retry_transient
    def image_exists(self, tag: str) -> bool:
        try:
            self.client.images.get(tag)
            return True
        except ImageNotFound:
            return False
        except APIError as exc:
            if exc.status_code == 400:  # why: an invalid reference is the user's input, not a daemon fault
                raise ValueError(f"invalid image reference {tag!r}: {exc.explanation}") from exc
            raise

    @retry_transient
    def image_attrs(self, tag: str) -> dict:
        return self.client.images.get(tag).attrs

    def remove_image(self, tag: str) -> None:
        try:
            self.client.images.remove(tag, force=True)
        except (ImageNotFound, NotFound):
            pass

    @retry_transient
    def added_bytes(self, tag: str, relative_to: str) -> int:
        """Bytes of `tag`'s layers that `relative_to` does not have: what storing `tag` as well costs."""
        known = {entry["Id"] for entry in self.client.api.history(relative_to)}
        return sum(entry["Size"] for entry in self.client.api.history(tag) if entry["Id"] not in known)

    def build(self, context: Path, tag: str, timeout: int, dockerfile: str = "Dockerfile") -> str:
        """Build with the classic builder, streaming the log; returns the image id or raises BuildFailed."""
        deadline = time.monotonic() + timeout
        log: list[str] = []
        step = ""
        stream = None
        try:
            stream = self.client.api.build(
                path=str(context), dockerfile=dockerfile, tag=tag, rm=True, forcerm=True, decode=True,
                pull=False, timeout=timeout,
            )
            for chunk in stream:
                text = chunk.get("stream") or chunk.get("status") or ""
                if text:
                    log.append(text.rstrip("\n"))
                    match = _STEP_RE.match(text.strip())
                    if match:
                        step = match.group(1)
                if "error" in chunk:
                    message = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                    raise BuildFailed(message.strip(), step, tail("\n".join(log)))
                if time.monotonic() > deadline:
                    raise BuildFailed(f"build exceeded {timeout}s", step, tail("\n".join(log)), timed_out=True)
        except (requests.exceptions.ReadTimeout, ReadTimeoutError, ProtocolError) as exc:
            # docker-py reads the build stream from the raw socket: a silent build surfaces as urllib3's error
            raise BuildFailed(f"build produced no output for {timeout}s", step, tail("\n".join(log)), True) from exc
        except APIError as exc:
            raise BuildFailed(str(exc.explanation or exc), step, tail("\n".join(log))) from exc
        finally:
            if stream is not None and hasattr(stream, "close"):
                stream.close()  # why: closing the request makes the daemon cancel a build we gave up on
        return self.client.images.get(tag).id

    def run(
        self,
        image: str,
        command: list[str],
        *,
        timeout: int,
        environment: dict[str, str] | None = None,
        collect: str | None = None,
        network: bool = False,
        labels: dict[str, str] | None = None,
        files: dict[str, bytes] | None = None,
    ) -> RunResult:
        """Run one command in a fresh container, always removed; optionally copy back a folder's files.

        `files` (absolute path -> content) are written into the container before it starts: patches
        travel this way, never through the command line or the environment, which have size limits.
        """
        if not network:  # what docker's "none" network would have mounted (see ISOLATED_SYSCTLS)
            files = {"/etc/hosts": NONE_NETWORK_HOSTS.encode(), **(files or {})}
        container = self._create(image, command, environment or {}, network, {LABEL: "1", **OWNER_LABELS, **(labels or {})})
        timed_out = False
        try:
            if files:
                container.put_archive("/", _tar_of(files))
            try:
                container.start()
            except APIError as exc:
                if network or self in NO_IPV6 or not no_ipv6_error(exc):
                    raise
                NO_IPV6.add(self)  # then again without the IPv6 sysctls
                return self.run(image, command, timeout=timeout, environment=environment, collect=collect,
                                network=network, labels=labels, files=files)
            try:
                exit_code = container.wait(timeout=timeout)["StatusCode"]
            except requests.exceptions.RequestException:
                timed_out, exit_code = True, None
                container.kill()
            output = container.logs(stdout=True, stderr=True).decode("utf-8", errors="replace")
            files = self._collect(container, collect) if collect else {}
            return RunResult(exit_code=exit_code, timed_out=timed_out, output=output, files=files)
        finally:
            try:
                container.remove(force=True)
            except (APIError, requests.exceptions.RequestException):
                pass  # the sweep at the next start removes it

    @retry_transient
    def _create(self, image, command, environment, network, labels):
        return self.client.containers.create(
            image, command, environment=environment, labels=labels,
            network_mode=None if network else "none", detach=True,
            network_disabled=not network, sysctls=None if network or self in NO_IPV6 else ISOLATED_SYSCTLS,
        )

    @staticmethod
    def _collect(container, folder: str) -> dict[str, bytes]:
        try:
            chunks, stat = container.get_archive(folder)
        except NotFound:
            return {}
        if stat.get("size", 0) > MAX_COLLECT_BYTES:
            return {}
        archive = tarfile.open(fileobj=io.BytesIO(b"".join(chunks)))
        files = {}
        for member in archive.getmembers():
            if member.isfile():
                handle = archive.extractfile(member)
                if handle:
                    files[Path(member.name).name] = handle.read()
        return files

    def sweep(self) -> int:
        """Remove containers left by forager processes of this host that are gone (never a live one's)."""
        removed = 0
        # why the low-level list: the high-level one inspects each container after listing, and one that
        # another process removes in between (a sandbox closing, its deadline passing) would be a 404
        for entry in self.client.api.containers(all=True, filters={"label": LABEL}):
            labels = entry.get("Labels") or {}
            if labels.get("forager.host") != OWNER_LABELS["forager.host"] or pid_alive(labels.get("forager.pid")):
                continue
            try:
                self.client.api.remove_container(entry["Id"], force=True)
                removed += 1
            except APIError:  # gone already, or being removed
                pass
        return removed

    # no retry: the tar stream can be read once only
    def import_rootfs(self, tar_stream, tag: str) -> str:
        repository, _, version = tag.partition(":")
        result = self.client.api.import_image(
            src=tar_stream, repository=repository, tag=version or "latest", stream_src=True,
            changes=["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 'CMD ["bash"]'],
        )
        return str(result)
