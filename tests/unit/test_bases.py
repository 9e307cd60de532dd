"""The choice of a base image per Python version (forager/images/bases.py), with no Docker."""

from forager.images.bases import (
    bootstrap_tag,
    choose_bases,
    missing_base_message,
    stand_in_note,
    worth_pulling,
)
from forager.images.render import render
from forager.models import EnvSpec

OFFICIAL = "python:{python}-slim"
VERSIONS = ["3.11", "3.12", "3.13", "3.10", "3.9"]


def test_the_configured_base_wins_when_it_is_here():
    present = {"python:3.11-slim", "forager/bootstrap-python:3.11", "forager/bootstrap-python:3.9"}
    assert choose_bases(VERSIONS, OFFICIAL, present) == {
        "3.11": "python:3.11-slim", "3.9": "forager/bootstrap-python:3.9"}


def test_a_bootstrapped_base_stands_in_for_a_missing_one_in_the_configured_order():
    present = {"forager/bootstrap-python:3.9", "forager/bootstrap-python:3.11", "forager/bootstrap-python:3.13"}
    chosen = choose_bases(VERSIONS, OFFICIAL, present)
    assert list(chosen) == ["3.11", "3.13", "3.9"]
    assert chosen["3.13"] == bootstrap_tag("3.13") == "forager/bootstrap-python:3.13"


def test_with_no_base_here_every_version_keeps_its_configured_base():
    # a registry may have them: the build pulls the one detection chooses, or names the command that makes one
    assert choose_bases(["3.11", "3.12"], OFFICIAL, set()) == {"3.11": "python:3.11-slim", "3.12": "python:3.12-slim"}


def test_only_bases_a_stand_in_would_replace_are_pulled_up_front():
    present = {"forager/bootstrap-python:3.11", "python:3.13-slim", "forager/bootstrap-python:3.13"}
    assert worth_pulling(VERSIONS, OFFICIAL, present) == ["python:3.11-slim"]
    # configured as the bootstrap itself (what make used to export): nothing to pull
    assert worth_pulling(VERSIONS, "forager/bootstrap-python:{python}", present) == []
    assert worth_pulling(["3.11", "3.11"], OFFICIAL, present) == ["python:3.11-slim"]


def test_a_stand_in_keys_images_as_the_bootstrap_configured_directly():
    """make (which exported FORAGER_BASE_IMAGE=forager/bootstrap-python:{python}) and a bare `forager` on a
    host with only the bootstrapped base render the same Dockerfiles: one spec hash, one cache."""
    present = {"forager/bootstrap-python:3.11"}
    via_default = choose_bases(VERSIONS, OFFICIAL, present)["3.11"]
    via_make = choose_bases(VERSIONS, "forager/bootstrap-python:{python}", present)["3.11"]
    assert via_default == via_make
    spec = EnvSpec(python="3.11", requirements=["pytest"])
    args = dict(repo_url="/src/ledger", repo_name="ledger", commit="a" * 40, image_prefix="forager-env")
    assert render(spec, base_image=via_default, **args).spec_hash == render(spec, base_image=via_make, **args).spec_hash


def test_notes_and_messages():
    assert stand_in_note("3.11", OFFICIAL, "python:3.11-slim") is None
    note = stand_in_note("3.11", OFFICIAL, "forager/bootstrap-python:3.11")
    assert note.startswith("base forager/bootstrap-python:3.11: stands in for python:3.11-slim")
    line = missing_base_message("3.11", "python:3.11-slim", "pull access denied")
    assert "python:3.11-slim" in line and "`forager bootstrap-base --python 3.11`" in line and "\n" not in line
    other = missing_base_message("3.12", "python:3.12-slim", "no such host")
    assert "FORAGER_PYTHON_VERSIONS" in other and "3.9, 3.11, 3.13" in other
