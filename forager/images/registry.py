"""An image registry shared by many hosts: push what was built, pull what another host built.

Images keep their local tag (`forager-env/NAME:HASH`, a content hash); in the registry they live under
`HOST:PORT/forager-env/NAME:HASH`. The registry-prefixed tag is only a transit name: it is removed again
after each push and pull, so a host holds one name per image. Every call has a deadline.
"""

from __future__ import annotations

import re
import time

import requests
from docker.errors import APIError, NotFound

from forager.engine.docker_engine import Engine

_REGISTRY_RE = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$")


class RegistryError(RuntimeError):
    """A push or pull that failed for another reason than a missing image; the message is one line."""


def parse_registry(text: str) -> str:
    """`HOST[:PORT]` as given to --registry, validated (pure)."""
    registry = text.strip().removeprefix("http://").removeprefix("https://").rstrip("/")
    if not _REGISTRY_RE.match(registry):
        raise ValueError(f"--registry {text!r}: expected HOST:PORT, e.g. 127.0.0.1:5000 or registry.example.com")
    return registry


def remote_ref(registry: str, tag: str) -> str:
    """The name of local image `tag` in `registry` (pure)."""
    return f"{registry}/{tag}"


def _split(ref: str) -> tuple[str, str]:
    repository, _, version = ref.rpartition(":")
    if "/" in version or not repository:  # a port, not a tag: `host:5000/name` has no tag
        return ref, "latest"
    return repository, version


def _fail(registry: str, action: str, ref: str, cause: str) -> RegistryError:
    cause = (cause.strip().splitlines() or ["no message"])[0][:300]
    return RegistryError(
        f"registry {registry}: cannot {action} {ref}: {cause}; check that a registry answers there "
        "(scripts/ensure-registry.sh starts one) and that Docker may use it (insecure-registries for plain HTTP)"
    )


def _drain(stream, deadline: float) -> str | None:
    """Read a push/pull progress stream to its end; the error it reports, or None."""
    try:
        for chunk in stream:
            if "error" in chunk:
                return (chunk.get("errorDetail") or {}).get("message") or str(chunk["error"])
            if time.monotonic() > deadline:
                return "timed out"
    finally:
        if hasattr(stream, "close"):
            stream.close()  # why: closing the request makes the daemon stop a transfer we gave up on
    return None


def _untag(engine: Engine, ref: str) -> None:
    try:
        engine.client.api.remove_image(ref, noprune=True)  # only the transit name: the image stays
    except (NotFound, APIError):
        pass


def pull_image(engine: Engine, ref: str, timeout: int) -> str | None:
    """Pull `ref` under its own name from whichever registry it names (a base image such as python:3.11-slim);
    None when it came, else the daemon's reason in one line. No retry: with no registry answering, a
    build falls back at once to a base that is here."""
    deadline = time.monotonic() + timeout
    try:
        error = _drain(engine.client.api.pull(ref, stream=True, decode=True), deadline)
    except (APIError, requests.exceptions.RequestException) as exc:
        error = getattr(exc, "explanation", None) or str(exc)
    if error is None and not engine.image_exists(ref):
        error = "the pull ended without the image"
    return None if error is None else (error.strip().splitlines() or ["no message"])[0][:300]


def push(engine: Engine, registry: str, tag: str, timeout: int) -> str:
    """Push local image `tag` to `registry`; returns its name there. Pushing what is there already is cheap."""
    ref = remote_ref(registry, tag)
    repository, version = _split(ref)
    deadline = time.monotonic() + timeout
    try:
        engine.client.api.tag(tag, repository, version)
        error = _drain(engine.client.api.push(repository, version, stream=True, decode=True), deadline)
    except (APIError, requests.exceptions.RequestException) as exc:
        error = getattr(exc, "explanation", None) or str(exc)
    finally:
        _untag(engine, ref)
    if error:
        raise _fail(registry, "push", ref, error)
    return ref


def pull(engine: Engine, registry: str, tag: str, timeout: int) -> bool:
    """Pull `tag` from `registry` and tag it locally as `tag`; False when the registry does not have it."""
    ref = remote_ref(registry, tag)
    repository, version = _split(ref)
    deadline = time.monotonic() + timeout
    try:
        error = _drain(engine.client.api.pull(repository, version, stream=True, decode=True), deadline)
    except NotFound:  # the registry answered: no such image there (manifest unknown)
        return False
    except (APIError, requests.exceptions.RequestException) as exc:
        error = getattr(exc, "explanation", None) or str(exc)
    if error:
        _untag(engine, ref)
        raise _fail(registry, "pull", ref, error)
    local_repository, local_version = _split(tag)
    try:
        engine.client.api.tag(ref, local_repository, local_version)
    except APIError as exc:
        raise _fail(registry, "tag the pulled", ref, str(exc.explanation or exc)) from exc
    finally:
        _untag(engine, ref)
    return True
