"""The pure part of `forager prune` and of the disk figures of `forager status`."""

from __future__ import annotations

from forager.images.prune import (
    DiskUsage,
    HostImage,
    StoreImage,
    base_pattern,
    disk_usage,
    freed_bytes,
    gone_ids,
    is_protected,
    layer_sizes,
    needed_images,
    select,
    union_bytes,
)
from forager.config import Settings
from forager.store import Episode, Image, Run, Store, Task

NOW = 1_000_000.0
OLD = NOW - 10 * 86400


def host(id_, *tags, size=100, created=OLD, containers=0):
    return HostImage(id=id_, tags=list(tags), size=size, created=created, containers=containers)


def pick(items):
    return {item.tag: item.reason for item in items}


def test_needed_images_valid_tasks_and_open_runs():
    uses = [
        (1, True, 0, 0),  # a valid task
        (2, False, 3, 0),  # an invalid task with a finished run's episodes
        (3, False, 2, 1),  # an invalid task in a run still going
        (4, False, 0, 0),  # an invalid task, never run
        (None, True, 0, 0),  # a task whose image was never built
    ]
    assert needed_images(uses, keep_runs=False) == {1: "task", 3: "run"}
    assert needed_images(uses, keep_runs=True) == {1: "task", 2: "run", 3: "run"}
    # a valid task wins over an invalid one in the same image
    assert needed_images([(5, False, 1, 1), (5, True, 0, 0)], keep_runs=False) == {5: "task"}


def test_select_what_goes_and_what_stays():
    rows = [
        StoreImage(id=1, tag="fe/a:used", status="ready", repo="a"),
        StoreImage(id=2, tag="fe/a:idle", status="ready", repo="a"),
        StoreImage(id=3, tag="fe/a:broken", status="failed", repo="a"),
        StoreImage(id=4, tag="fe/b:run", status="ready", repo="b"),
        StoreImage(id=5, tag="fe/b:wip", status="building", repo="b"),
        StoreImage(id=6, tag="fe/c:gone", status="ready", repo="c"),  # not on this host: nothing to do
        StoreImage(id=7, tag=None, status="failed", repo="c"),  # a clone failure: no image at all
    ]
    images = [
        host("sha256:used", "fe/a:used"),
        host("sha256:idle", "fe/a:idle", size=300),
        host("sha256:broken", "fe/a:broken"),
        host("sha256:run", "fe/b:run"),
        host("sha256:wip", "fe/b:wip"),
        host("sha256:stray", "fe/x:stray"),
        host("sha256:other", "other-prefix/a:idle", "fe-other/a:1", "python:3.11-slim"),
        host("sha256:base", "forager-base:py3.11-abc"),
        host("sha256:boot", "forager/bootstrap-python:3.11"),
        host("sha256:dangling"),
    ]
    items, kept = select(rows, {1: "task", 4: "run"}, images, prefix="fe", now=NOW, min_age=3600)
    assert pick(items) == {"fe/a:idle": "unused", "fe/a:broken": "failed", "fe/x:stray": "unknown"}
    assert kept == {"task": 1, "run": 1, "building": 1}
    idle = next(item for item in items if item.tag == "fe/a:idle")
    assert (idle.image, idle.repo, idle.status, idle.size_bytes, idle.docker_id) == (2, "a", "ready", 300, "sha256:idle")
    stray = next(item for item in items if item.tag == "fe/x:stray")
    assert (stray.image, stray.repo, stray.status) == (None, None, None)


def test_select_guards_containers_age_and_base_images():
    images = [
        host("sha256:busy", "fe/a:busy", containers=1),
        host("sha256:new", "fe/a:new", created=NOW - 60),
        host("sha256:old", "fe/a:old"),
        # the prefix's tag on a base image (someone tagged it so): the base is never removed
        host("sha256:base", "fe/base:3.11", "forager-base:py3.11-abc"),
        host("sha256:conf", "fe/boot:3.11"),  # the configured base image itself, under the prefix
    ]
    base = base_pattern(Settings(base_image="fe/boot:{python}"))
    items, kept = select([], {}, images, prefix="fe", base=base, now=NOW, min_age=3600)
    assert pick(items) == {"fe/a:old": "unknown"}
    assert kept == {"container": 1, "recent": 1, "base": 2}
    # with no minimum age the new one goes too
    items, kept = select([], {}, images, prefix="fe", base=base, now=NOW, min_age=0)
    assert pick(items) == {"fe/a:old": "unknown", "fe/a:new": "unknown"}


def test_select_prefix_is_a_whole_path_component():
    images = [host("sha256:1", "fe/a:1"), host("sha256:2", "fe2/a:1"), host("sha256:3", "127.0.0.1:5000/fe/a:1")]
    items, _kept = select([], {}, images, prefix="fe", now=NOW)
    assert pick(items) == {"fe/a:1": "unknown"}  # a registry's transit tag or another prefix is not ours


def test_select_same_tag_in_two_rows_needed_by_one():
    rows = [StoreImage(id=1, tag="fe/a:1", status="ready"), StoreImage(id=2, tag="fe/a:1", status="failed")]
    items, kept = select(rows, {1: "task"}, [host("sha256:1", "fe/a:1")], prefix="fe", now=NOW)
    assert items == [] and kept == {"task": 1}
    items, _kept = select(rows, {}, [host("sha256:1", "fe/a:1")], prefix="fe", now=NOW)
    assert pick(items) == {"fe/a:1": "unused"}  # a ready row among them: not a failed build


def test_protected_tags():
    base = base_pattern(Settings(base_image="python:{python}-slim"))
    assert is_protected("forager-base:py3.11-abcdef", base)
    assert is_protected("forager/bootstrap-python:3.11", base)
    assert is_protected("python:3.11-slim", base) and is_protected("python:3.9-slim", base)
    assert not is_protected("python:3.11", base)
    assert not is_protected("forager-env/forager-base:1", base)
    assert not is_protected("forager-env/ledger:abc", None)
    untagged = base_pattern(Settings(base_image="localhost:5000/base"))
    assert is_protected("localhost:5000/base:latest", untagged)


def history(*entries):
    """The daemon's history, newest first, from (created, step, size) oldest first."""
    return [{"Id": "<missing>", "Created": c, "CreatedBy": step, "Size": size, "Comment": ""}
            for c, step, size in reversed(entries)]


BASE = [(1, "debootstrap", 500), (2, "ENV LANG=C", 0), (3, "venv", 20)]


def test_layers_shared_by_history_counted_once():
    a = layer_sizes(history(*BASE, (10, "pip install deps", 30), (11, "COPY repo", 5)))
    b = layer_sizes(history(*BASE, (10, "pip install deps", 30), (12, "COPY repo2", 7)))
    c = layer_sizes(history(*BASE, (20, "pip install deps", 30), (21, "COPY repo", 5)))  # built apart: own layers
    base = layer_sizes(history(*BASE))
    assert [size for _key, size in a] == [500, 20, 30, 5]  # empty steps are no layer
    layers = {"a": a, "b": b, "c": c, "base": base}
    assert union_bytes(layers, ["a"]) == 555
    assert union_bytes(layers, ["a", "b"]) == 555 + 7
    assert union_bytes(layers, ["a", "b", "c", "base"]) == 555 + 7 + 35
    assert union_bytes(layers, ["a", "missing"]) == 555
    def freed(gone):
        return freed_bytes(layers, gone, set(layers) - gone)

    assert freed({"a"}) == 5  # deps shared with b, base with everyone
    assert freed({"a", "b"}) == 5 + 7 + 30
    assert freed({"a", "b", "c"}) == 5 + 7 + 30 + 35
    assert freed(set()) == 0
    assert freed_bytes(layers, {"a"}, {"a"}) == 0  # still there afterwards (only untagged): nothing freed
    assert freed_bytes(layers, {"a", "ghost"}, set()) == 555


def test_gone_ids_only_when_every_tag_goes():
    images = [host("sha256:1", "fe/a:1", "fe/x:copy"), host("sha256:2", "fe/b:1"), host("sha256:3")]
    assert gone_ids(images, {"fe/x:copy"}) == set()  # only untagged: fe/a:1 still holds it
    assert gone_ids(images, {"fe/x:copy", "fe/a:1", "fe/b:1"}) == {"sha256:1", "sha256:2"}


def test_disk_usage_figures():
    rows = [
        StoreImage(id=1, tag="fe/a:1", status="ready"),
        StoreImage(id=2, tag="fe/a:2", status="ready"),
        StoreImage(id=3, tag="fe/a:3", status="ready"),  # not on this host
        StoreImage(id=4, tag="fe/a:4", status="failed"),
        StoreImage(id=5, tag=None, status="failed"),
    ]
    sizes = {1: 555, 2: 562, 3: 600, 4: 400, 5: None}
    images = [host("sha256:1", "fe/a:1", size=555), host("sha256:2", "fe/a:2", size=562),
              host("sha256:4", "fe/a:4", size=400), host("sha256:9", "fe/a:unknown", size=999)]
    layers = {
        "sha256:1": [("base", 500), ("deps", 50), ("a1", 5)],
        "sha256:2": [("base", 500), ("deps", 50), ("a2", 12)],
        "sha256:4": [("base", 500), ("x", 100)],
    }
    usage = disk_usage(rows, sizes, images, layers)
    assert usage == DiskUsage(images=3, present=2, missing=1, failed_present=1, store_bytes=555 + 562 + 600,
                              docker_bytes=555 + 562 + 400, unique_bytes=500 + 50 + 5 + 12 + 100)
    offline = disk_usage(rows, sizes, None, None)
    assert (offline.engine, offline.images, offline.missing, offline.unique_bytes) == (False, 3, 3, None)
    assert offline.store_bytes == 555 + 562 + 600


def test_store_image_uses(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    repo = store.upsert_repo("/src/a", "a")
    images = [store.save_image(Image(repo_id=repo.id, spec_hash=str(i), tag=f"fe/a:{i}", status="ready")).id
              for i in range(4)]
    tasks = [
        store.save_task(Task(instance_id="valid", kind="mutate-fix", repo_id=repo.id, image_id=images[0], valid=True)),
        store.save_task(Task(instance_id="finished", kind="mutate-fix", repo_id=repo.id, image_id=images[1])),
        store.save_task(Task(instance_id="open", kind="mutate-fix", repo_id=repo.id, image_id=images[2])),
        store.save_task(Task(instance_id="never", kind="mutate-fix", repo_id=repo.id, image_id=images[3])),
        store.save_task(Task(instance_id="no-image", kind="mutate-fix", repo_id=repo.id)),
    ]
    done, _ = store.get_or_create_run(Run(name="done", policy="oracle"))
    going, _ = store.get_or_create_run(Run(name="going", policy="oracle"))
    with store.session() as s:
        s.add(Episode(run_id=done.id, task_id=tasks[1].id, status="finished"))
        s.add(Episode(run_id=done.id, task_id=tasks[2].id, status="finished"))
        s.add(Episode(run_id=going.id, task_id=tasks[2].id, status="pending"))
        s.commit()
    store.finish_run(done.id)
    uses = sorted(store.image_uses())
    assert uses == [(images[0], True, 0, 0), (images[1], False, 1, 0), (images[2], False, 2, 1), (images[3], False, 0, 0)]
    assert needed_images(uses, keep_runs=False) == {images[0]: "task", images[2]: "run"}
    assert needed_images(uses, keep_runs=True) == {images[0]: "task", images[1]: "run", images[2]: "run"}
