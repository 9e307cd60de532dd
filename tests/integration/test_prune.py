"""`forager prune` and the disk figures of `forager status` on a real engine: the example repository's image,
which a valid task uses, beside images of the prefix that the store does not know."""

from __future__ import annotations

import json

from .conftest import TEST_IMAGE_PREFIX, example_tasks, run_cli

# a prefix of this test's own: prune removes every image of its prefix that its store does not know, and the
# other modules' images (built under the session's prefix, reused by later tests) are not in this store
PREFIX = f"{TEST_IMAGE_PREFIX}-prune"


def test_prune_keeps_what_tasks_use_and_removes_the_rest(tmp_path, engine):
    settings, store, _builder, repo, tasks = example_tasks(tmp_path, engine, mutate=1, mine=False, image_prefix=PREFIX)
    image = store.image(tasks[0].image_id)
    assert engine.image_exists(image.tag)
    # two images the store does not know: another tag of the example image (removing it frees nothing) and
    # an image with a layer of its own on top of it
    copy = f"{PREFIX}/copy:1"
    engine.client.images.get(image.tag).tag(f"{PREFIX}/copy", "1")
    stray_context = tmp_path / "stray"
    stray_context.mkdir()
    (stray_context / "Dockerfile").write_text(f"FROM {image.tag}\nRUN head -c 300000 /dev/urandom > /stray.bin\n")
    stray = f"{PREFIX}/stray:1"
    engine.build(stray_context, stray, timeout=300)

    dry = run_cli("prune", "--dry-run", "--json", "--min-age", "0", settings=settings, check=True)
    plan = json.loads(dry.stdout)
    assert plan["dry_run"] is True
    assert {item["tag"]: (item["reason"], item["untag_only"]) for item in plan["items"]} == {
        copy: ("unknown", True), stray: ("unknown", False)}
    assert plan["kept"] == {"task": 1}
    assert 300_000 <= plan["bytes"] < 400_000  # the stray's own layer: the copy's image stays under its other tag
    assert engine.image_exists(copy) and engine.image_exists(stray) and engine.image_exists(image.tag)

    # images younger than --min-age (an hour by default) are kept: a build records its image only once validated
    young = json.loads(run_cli("prune", "--dry-run", "--json", settings=settings, check=True).stdout)
    assert young["items"] == [] and young["kept"] == {"task": 1, "recent": 2}

    done = json.loads(run_cli("prune", "--json", "--min-age", "0", settings=settings, check=True).stdout)
    assert done["dry_run"] is False and done["removed"] == 2 and done["errors"] == 0
    assert done["bytes"] == plan["bytes"]
    assert not engine.image_exists(copy) and not engine.image_exists(stray)
    assert engine.image_exists(image.tag)  # a valid task uses it
    assert any(engine.image_exists(tag) for tag in ("forager/bootstrap-python:3.11", settings.base_image_for("3.11")))

    status = json.loads(run_cli("status", "--json", settings=settings, check=True).stdout)
    disk = status["disk"]
    assert (disk["images"], disk["present"], disk["missing"], disk["failed_present"], disk["engine"]) == (1, 1, 0, 0, True)
    assert disk["store_bytes"] == image.size_bytes == disk["docker_bytes"]
    assert 0 < disk["unique_bytes"] <= disk["docker_bytes"]
    table = run_cli("status", settings=settings, check=True).stdout
    assert "total" in table and "1/1 ready images on this host" in table

    # a removed ready image is built again by build-images: the store's row without its image is no cache hit
    engine.remove_image(image.tag)
    assert json.loads(run_cli("status", "--json", settings=settings, check=True).stdout)["disk"]["missing"] == 1
    built = json.loads(run_cli("build-images", "--repo", str(repo), "--json", settings=settings, check=True).stdout)
    assert (built[0]["status"], built[0]["cached"], built[0]["image_id"], built[0]["tag"]) == ("ready", False, image.id,
                                                                                              image.tag)
    assert engine.image_exists(image.tag)


def test_prune_removes_the_start_states_of_task_images_it_removes_or_that_are_gone(tmp_path, engine):
    from forager.sandbox.container import Sandbox

    from .conftest import BASE_IMAGE, module_settings

    prefix = f"{TEST_IMAGE_PREFIX}-prune-start"
    settings = module_settings(tmp_path, prefix)  # an empty store: every image of the prefix is unknown to it
    ids = {}
    for name in ("kept", "rebuilt"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dockerfile").write_text(
            f"FROM {BASE_IMAGE.replace('{python}', '3.11')}\nRUN git init -q /testbed && cd /testbed && echo {name} > f"
            " && git add f && git -c user.name=t -c user.email=t@t commit -qm one\n")
        engine.build(tmp_path / name, f"{prefix}/{name}:1", timeout=300)
        with Sandbox(engine, f"{prefix}/{name}:1", reuse_start_state=True) as box:
            box.start("")
            assert box.start_kind == "committed"
            ids[name] = box.start_image
    try:
        # the "rebuilt" tag now names another image: its start state is no one's
        engine.client.images.get(f"{prefix}/kept:1").tag(f"{prefix}/rebuilt", "1")
        young = json.loads(run_cli("prune", "--dry-run", "--json", settings=settings, check=True).stdout)
        assert [(item["tag"], item["reason"]) for item in young["items"]] == [(ids["rebuilt"], "base-gone")]
        assert young["kept"] == {"recent": 2, "start-state": 1}
        done = json.loads(run_cli("prune", "--json", "--min-age", "0", settings=settings, check=True).stdout)
        assert {item["tag"]: item["reason"] for item in done["items"]} == {
            ids["rebuilt"]: "base-gone", ids["kept"]: "base-removed", f"{prefix}/kept:1": "unknown",
            f"{prefix}/rebuilt:1": "unknown"}
        assert done["errors"] == 0 and done["bytes"] > 0  # the first "rebuilt" image goes with its start state
        left = engine.client.api.images(filters={"label": "forager.role=start-state"}, all=True)
        assert not [image for image in left if image["Labels"]["forager.base"].startswith(f"{prefix}/")]
    finally:
        for tag in (*ids.values(), f"{prefix}/kept:1", f"{prefix}/rebuilt:1"):
            engine.remove_image(tag)
