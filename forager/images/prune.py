"""The disk forager's images take, and `forager prune`: which images no task or run needs, and removing them.

Images share layers: every env image of one Python version is built on the same base, and commits with the
same requirements share the dependency layer, so a sum of image sizes (what `docker images` and the
store's `size_bytes` show, each image counted whole) overstates the disk many times. The true figure is
the union of the images' layers, each counted once. Docker's `df` does not give it: per image it says
`SharedSize`, the bytes shared with *some* other image, not with which, so the union of a set of
images cannot be had from it. Here each layer is identified by the image history up to and including
it (the step that made it and everything below it: what makes a layer the same one on disk in two
images, which is built on the same parent by the same cached step), with its size from the history.
Checked on a host of 66 images: the union over all of them equals `docker system df`'s LayersSize, and
the bytes freed by removing one image its UNIQUE SIZE in `docker system df -v`.

Start-state images (a sandbox's prepared start, committed by `Sandbox(reuse_start_state=True)`, labelled with the
task image they were made from) go with their task image: prune removes those of the prefix's task images that
are gone, rebuilt to another image or removed by the same prune, and those left untagged by concurrent commits.

The selection (`needed_images`, `select`, `select_start_states`) is pure: store rows and the host's image list in, a plan out;
`plan_prune` gathers those and `remove` carries a plan out through the Engine.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Iterable

from docker.errors import APIError, NotFound
from pydantic import BaseModel

from forager.engine.docker_engine import Engine
from forager.config import Settings
from forager.sandbox.container import START_STATE_ROLE
from forager.text import first_line

# the base layer every env image is built on, and the bootstrap base (`make` names it so); never removed,
# whatever the prefix, nor is the configured base image (FORAGER_BASE_IMAGE)
PROTECTED_REPOSITORIES = ("forager-base", "forager/bootstrap-python")
READY, FAILED = "ready", "failed"

# why an image is removable
FAILED_REASON = "failed"  # its store row is a failed build
UNKNOWN_REASON = "unknown"  # the store names no image with this tag
UNUSED_REASON = "unused"  # ready, but no valid task and no open run uses it
# start-state images: their task image is gone (or its tag is another image now), removed by this prune, or
# they are untagged (a concurrent commit of the same start state took the tag)
BASE_GONE_REASON, BASE_REMOVED_REASON, UNTAGGED_REASON = "base-gone", "base-removed", "untagged"
# why an image of the prefix is kept
TASK, RUN, BUILDING, BASE, CONTAINER, RECENT = "task", "run", "building", "base", "container", "recent"
START_STATE = "start-state"  # a start-state image whose task image stays


class HostImage(BaseModel):
    """One image on this host, as the daemon lists it."""

    id: str
    tags: list[str] = []
    created: float = 0.0  # epoch seconds
    size: int = 0  # Docker's size: every layer of the image, shared or not
    containers: int = 0  # containers (running or stopped) made from it
    labels: dict[str, str] = {}


class StoreImage(BaseModel):
    """What the selection needs of an `images` row."""

    id: int
    tag: str | None
    status: str
    repo: str = ""


class PruneItem(BaseModel):
    tag: str
    docker_id: str
    reason: str  # failed | unknown | unused
    image: int | None = None  # images.id of the store row with this tag, if any
    repo: str | None = None
    status: str | None = None  # the store row's status
    size_bytes: int = 0  # Docker's size of the image, counted whole
    created: float = 0.0
    untag_only: bool = False  # a tag outside the removal holds the same image: removing this tag frees nothing
    error: str | None = None  # why removing it failed


class PruneReport(BaseModel):
    prefix: str
    dry_run: bool
    keep_runs: bool
    min_age: float
    items: list[PruneItem] = []
    kept: dict[str, int] = {}  # tags of the prefix kept, by reason
    # dry run: bytes removing the items would free (their layers that no other image on this host uses);
    # otherwise the bytes freed, measured as the drop in the layers this host's images hold
    bytes: int = 0
    removed: int = 0
    errors: int = 0


class DiskUsage(BaseModel):
    """The images the store names, on this host (`forager status`)."""

    images: int = 0  # distinct tags of ready images in the store
    present: int = 0  # ... that exist on this host
    missing: int = 0  # ... that do not (built again, or pulled, when a task needs them)
    failed_present: int = 0  # images of failed builds still on this host (prune removes them)
    store_bytes: int = 0  # the store's size_bytes summed over the ready images, each counted whole
    docker_bytes: int = 0  # Docker's sizes of the present images (ready and failed), each counted whole
    unique_bytes: int | None = None  # the disk those images take together: each layer once, base layers included
    engine: bool = True  # a Docker engine answered (otherwise only the store's figures)


# -- pure ---------------------------------------------------------------------------------------------
def layer_sizes(history: list[dict]) -> list[tuple[str, int]]:
    """An image's non-empty layers bottom up, as (key, bytes), from the daemon's history (newest first).

    The key digests the history up to and including the layer: two images hold the same layer on disk
    when they were built on the same parent by the same step (a cached step keeps its date)."""
    digest = hashlib.sha256()
    layers = []
    for entry in reversed(history):
        digest.update(json.dumps([entry.get("Created"), entry.get("CreatedBy"), entry.get("Size"),
                                  entry.get("Comment")]).encode())
        digest.update(b"\n")
        if entry.get("Size"):
            layers.append((digest.hexdigest(), int(entry["Size"])))
    return layers


def union_bytes(layers: dict[str, list[tuple[str, int]]], ids: Iterable[str]) -> int:
    """Bytes of the layers of images `ids`, each layer counted once."""
    seen: dict[str, int] = {}
    for image_id in ids:
        for key, size in layers.get(image_id, []):
            seen[key] = size
    return sum(seen.values())


def freed_bytes(layers: dict[str, list[tuple[str, int]]], gone: Iterable[str], remaining: Iterable[str]) -> int:
    """Bytes freed when images `gone` leave the host: their layers that none of the `remaining` images holds."""
    held = {key for image_id in remaining for key, _size in layers.get(image_id, [])}
    freed = {key: size for image_id in gone for key, size in layers.get(image_id, []) if key not in held}
    return sum(freed.values())


def gone_ids(host: list[HostImage], tags: set[str]) -> set[str]:
    """Images that removing `tags` deletes: those whose every tag is among them (others are only untagged)."""
    return {image.id for image in host if image.tags and set(image.tags) <= tags}


def base_pattern(settings: Settings) -> re.Pattern:
    """Tags of the configured base images (FORAGER_BASE_IMAGE for any Python version)."""
    base = settings.base_image if ":" in settings.base_image.rsplit("/", 1)[-1] else f"{settings.base_image}:latest"
    return re.compile(re.escape(base).replace(re.escape("{python}"), r"[0-9][0-9.]*") + "$")


def is_protected(tag: str, base: re.Pattern | None = None) -> bool:
    repository = tag.rsplit(":", 1)[0] if ":" in tag.rsplit("/", 1)[-1] else tag
    return repository in PROTECTED_REPOSITORIES or bool(base and base.match(tag))


def needed_images(uses: Iterable[tuple[int | None, bool, int, int]], keep_runs: bool) -> dict[int, str]:
    """images.id -> why it is needed ("task" or "run"), from (image, task valid, episodes, open episodes) rows.

    A valid task needs its image; so does every episode still open (not finished, or of a run not
    finished); with `keep_runs`, every episode (a finished run's episodes can be graded again)."""
    needed: dict[int, str] = {}
    for image_id, valid, episodes, open_episodes in uses:
        if image_id is None:
            continue
        if valid:
            needed[image_id] = TASK
        elif open_episodes or (keep_runs and episodes):
            needed.setdefault(image_id, RUN)
    return needed


def select(
    rows: list[StoreImage], needed: dict[int, str], host: list[HostImage], *, prefix: str,
    base: re.Pattern | None = None, now: float | None = None, min_age: float = 0.0,
) -> tuple[list[PruneItem], dict[str, int]]:
    """The images of `prefix` to remove, and how many tags of the prefix are kept by reason.

    Removable: an image whose store row is a failed build, one the store does not know, a ready one no
    valid task and no open run uses. Kept whatever: images of other prefixes and the base images (not
    even looked at), images any container was made from, images younger than `min_age` seconds (a
    build in progress records its image only after validating it)."""
    now = time.time() if now is None else now
    by_tag: dict[str, list[StoreImage]] = {}
    for row in rows:
        if row.tag:
            by_tag.setdefault(row.tag, []).append(row)
    protected_ids = {image.id for image in host if any(is_protected(tag, base) for tag in image.tags)}
    items: list[PruneItem] = []
    kept: Counter = Counter()
    for image in sorted(host, key=lambda i: i.created):
        for tag in sorted(image.tags):
            if not tag.startswith(f"{prefix}/"):
                continue
            if is_protected(tag, base) or image.id in protected_ids:
                kept[BASE] += 1
                continue
            known = by_tag.get(tag, [])
            why_needed = next((needed[row.id] for row in known if row.id in needed), None)
            if why_needed:
                kept[why_needed] += 1
                continue
            if any(row.status not in (READY, FAILED) for row in known):
                kept[BUILDING] += 1
                continue
            if image.containers:
                kept[CONTAINER] += 1
                continue
            if now - image.created < min_age:
                kept[RECENT] += 1
                continue
            reason = UNKNOWN_REASON if not known else (
                FAILED_REASON if all(row.status == FAILED for row in known) else UNUSED_REASON)
            row = next((r for r in known if r.status == READY), known[0] if known else None)
            items.append(PruneItem(
                tag=tag, docker_id=image.id, reason=reason, image=row.id if row else None,
                repo=row.repo if row else None, status=row.status if row else None, size_bytes=image.size,
                created=image.created,
            ))
    return items, dict(kept)


def select_start_states(host: list[HostImage], removed_tags: set[str], *, prefix: str
                        ) -> tuple[list[PruneItem], dict[str, int]]:
    """The start-state images of the prefix's task images to remove (see the module's docstring), and how many
    are kept by reason. One a container uses is kept: removing it would only untag it."""
    ids_by_tag = {tag: image.id for image in host for tag in image.tags}
    items: list[PruneItem] = []
    kept: Counter = Counter()
    for image in sorted(host, key=lambda i: i.created):
        base = image.labels.get("forager.base", "")
        if image.labels.get("forager.role") != START_STATE_ROLE or not base.startswith(f"{prefix}/"):
            continue
        if image.containers:
            kept[CONTAINER] += 1
            continue
        if not image.tags:
            reason = UNTAGGED_REASON
        elif ids_by_tag.get(base) != image.labels.get("forager.base-id"):
            reason = BASE_GONE_REASON
        elif base in removed_tags:
            reason = BASE_REMOVED_REASON
        else:
            kept[START_STATE] += 1
            continue
        # an untagged image is removed by its id
        for tag in image.tags or [image.id]:
            items.append(PruneItem(tag=tag, docker_id=image.id, reason=reason, size_bytes=image.size,
                                   created=image.created))
    return items, dict(kept)


def disk_usage(rows: list[StoreImage], sizes: dict[int, int | None], host: list[HostImage] | None,
               layers: dict[str, list[tuple[str, int]]] | None) -> DiskUsage:
    """Disk figures of the images the store names (pure); `host` None: no engine answered."""
    ready = {row.tag for row in rows if row.tag and row.status == READY}
    store_bytes = {}
    for row in rows:
        if row.tag in ready and row.status == READY:
            store_bytes[row.tag] = sizes.get(row.id) or 0
    usage = DiskUsage(images=len(ready), store_bytes=sum(store_bytes.values()))
    if host is None:
        usage.engine = False
        usage.missing = len(ready)
        return usage
    by_tag = {tag: image for image in host for tag in image.tags}
    failed = {row.tag for row in rows if row.tag and row.status == FAILED} - ready
    usage.present = sum(tag in by_tag for tag in ready)
    usage.missing = len(ready) - usage.present
    usage.failed_present = sum(tag in by_tag for tag in failed)
    ids = {by_tag[tag].id for tag in ready | failed if tag in by_tag}
    usage.docker_bytes = sum(image.size for image in host if image.id in ids)
    usage.unique_bytes = union_bytes(layers or {}, ids)
    return usage


# -- the daemon ---------------------------------------------------------------------------------------
def host_images(engine: Engine) -> list[HostImage]:
    """Top-level images (tagged and dangling; not the build's intermediate parents, whose layers their
    children hold), with how many containers each was made from."""
    containers = Counter(entry.get("ImageID") for entry in engine.client.api.containers(all=True))
    images = []
    for entry in engine.client.api.images():
        tags = [tag for tag in entry.get("RepoTags") or [] if tag != "<none>:<none>"]
        images.append(HostImage(id=entry["Id"], tags=tags, created=float(entry.get("Created") or 0),
                                size=int(entry.get("Size") or 0), containers=containers.get(entry["Id"], 0),
                                labels=entry.get("Labels") or {}))
    return images


def host_layers(engine: Engine, ids: Iterable[str], known: dict | None = None) -> dict[str, list[tuple[str, int]]]:
    """Layers of each image id (one history call each; `known` ones are not asked again)."""
    layers = dict(known or {})
    for image_id in ids:
        if image_id in layers:
            continue
        try:
            layers[image_id] = layer_sizes(engine.client.api.history(image_id))
        except NotFound:  # removed meanwhile
            layers[image_id] = []
    return layers


def store_images(store) -> tuple[list[StoreImage], dict[int, int | None]]:
    rows = store.images()
    return ([StoreImage(id=row.id, tag=row.tag, status=row.status, repo=repo.name) for row, repo in rows],
            {row.id: row.size_bytes for row, _repo in rows})


def measure(store, engine: Engine | None) -> DiskUsage:
    rows, sizes = store_images(store)
    if engine is None:
        return disk_usage(rows, sizes, None, None)
    host = host_images(engine)
    named = {row.tag for row in rows if row.tag}
    ids = {image.id for image in host if named & set(image.tags)}
    return disk_usage(rows, sizes, host, host_layers(engine, ids))


def plan_prune(settings: Settings, store, engine: Engine, *, keep_runs: bool = False, min_age: float = 3600.0,
               now: float | None = None) -> tuple[PruneReport, list[HostImage], dict]:
    """What prune would remove and the bytes that would free; (report, host images, their layers)."""
    rows, _sizes = store_images(store)
    needed = needed_images(store.image_uses(), keep_runs)
    host = host_images(engine)
    items, kept = select(rows, needed, host, prefix=settings.image_prefix, base=base_pattern(settings), now=now,
                         min_age=min_age)
    starts, kept_starts = select_start_states(host, {item.tag for item in items}, prefix=settings.image_prefix)
    # start states first: a task image with one is only untagged until its start states are gone
    items = starts + items
    for reason, count in kept_starts.items():
        kept[reason] = kept.get(reason, 0) + count
    layers = host_layers(engine, [image.id for image in host])
    gone = gone_ids(host, {item.tag for item in items}) | {item.docker_id for item in starts}
    for item in items:
        item.untag_only = item.docker_id not in gone
    report = PruneReport(prefix=settings.image_prefix, dry_run=True, keep_runs=keep_runs, min_age=min_age,
                         items=items, kept=kept, bytes=freed_bytes(layers, gone, set(layers) - gone))
    return report, host, layers


def remove(engine: Engine, report: PruneReport, host: list[HostImage], layers: dict) -> PruneReport:
    """Remove the plan's images by tag; the bytes freed are measured: the removed images' layers that no image
    on the host holds afterwards (an image only untagged, or one a container took up meanwhile, frees nothing)."""
    for item in report.items:
        try:
            engine.remove_image(item.tag)
            report.removed += 1
        except APIError as exc:  # e.g. a container started from it meanwhile
            item.error = first_line(str(exc.explanation or exc))
            report.errors += 1
    after = [image.id for image in host_images(engine)]
    layers = host_layers(engine, after, known=layers)
    report.bytes = freed_bytes(layers, {item.docker_id for item in report.items}, after)
    report.dry_run = False
    return report
