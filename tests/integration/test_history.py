"""Real history: a commit of a real repository (the corpus's flask, with its full history) built as of its date,
and the bad inputs a user of old commits meets, each a clear line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from forager.images.pipeline import ImageBuilder
from forager.models import RepoRef
from forager.store import Store

from .conftest import module_settings, run_cli

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"


@pytest.fixture(scope="module")
def flask(tmp_path_factory) -> Path:
    bundle = CORPUS / "flask.bundle"
    if not bundle.is_file():
        pytest.fail(f"{bundle} is missing: the corpus of real repositories lies in ../shared/corpus beside the checkout")
    target = tmp_path_factory.mktemp("corpus") / "flask"
    subprocess.run(["git", "clone", "-q", str(bundle), str(target)], check=True)
    return target


def test_a_release_of_2023_builds_as_of_its_date(flask, tmp_path, engine):
    """Flask 2.2.3 imports werkzeug.urls.url_quote, which Werkzeug 3 (Sept. 2023) removed: with today's
    releases its suite cannot even be collected; as of its date it is ready."""
    settings = module_settings(tmp_path)
    store = Store(settings.db)
    result = ImageBuilder(settings, store, engine).build(RepoRef(url=str(flask), ref="2.2.3"))
    assert result.status == "ready", result.message
    image = store.image(result.image_id)
    assert image.spec["as_of"] == "2023-04-01" and image.spec["resolver"] == "uv" and image.python_version == "3.11"
    werkzeug = engine.run(image.tag, ["python", "-c", "import werkzeug, flask; print(werkzeug.__version__)"],
                          timeout=60)
    assert werkzeug.output.strip().startswith("2.2."), werkzeug.output
    status = json.loads(run_cli("status", "--json", settings=settings, check=True).stdout)
    assert status["images"][0]["spec"]["as_of"] == "2023-04-01"


def test_bad_history_input_gets_one_clear_line(flask, tmp_path):
    settings = module_settings(tmp_path)
    missing = run_cli("build-images", "--repo", f"{CORPUS / 'flask.bundle'}@9.9.9", settings=settings)
    assert missing.returncode == 1 and "commit or ref '9.9.9' not found" in missing.stderr
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "2", f"file://{flask}", str(shallow)], check=True)
    cut = run_cli("build-images", "--repo", str(shallow), settings=settings)
    assert cut.returncode == 1 and "is a shallow clone" in cut.stderr and "--unshallow" in cut.stderr
    when = run_cli("build-images", "--repo", str(flask), "--as-of", "last year", settings=settings)
    assert when.returncode == 2 and "give latest, commit or a day" in when.stderr
    # nothing half-written: the store holds the two failed builds, each with its reason, and no more
    images = json.loads(run_cli("status", "--json", settings=settings, check=True).stdout)["images"]
    assert sorted(i["failure_category"] for i in images) == ["clone", "clone"]


@pytest.fixture(scope="module")
def pluggy_2020(tmp_path_factory, engine):
    """pluggy as of June 2020, built on Python 3.9: (settings, store, build result)."""
    bundle = CORPUS / "pluggy.bundle"
    if not bundle.is_file():
        pytest.fail(f"{bundle} is missing: the corpus of real repositories lies in ../shared/corpus beside the checkout")
    root = tmp_path_factory.mktemp("pluggy-2020")
    repo = root / "pluggy"
    subprocess.run(["git", "clone", "-q", str(bundle), str(repo)], check=True)
    # on Python 3.11 the releases of 2020 do not build (forager then resolves as of 2023): the base of 2020's Python
    settings = module_settings(root).model_copy(update={"python_versions": ["3.9"]})
    if not engine.image_exists(settings.base_image_for("3.9")):
        pytest.fail(f"base image {settings.base_image_for('3.9')} is missing: `make test` makes it "
                    "(forager bootstrap-base --python 3.9)", pytrace=False)
    store = Store(settings.db)
    result = ImageBuilder(settings, store, engine).build(RepoRef(url=str(repo), ref="f17598a7b422"))
    assert result.status == "ready", result.message
    return settings, store, result


def test_a_project_pytest_depends_on_keeps_the_pytest_of_its_date(pluggy_2020, engine):
    """pluggy in June 2020 was 1.0.0.dev30, and the pytest of its time (5.4, and 6.2 until August 2021) asks
    pluggy<1.0: resolving the repository with its test extra picked pytest 3.2 (which vendored pluggy) and the
    suite died at collection. Requirements on pluggy are the repository itself now: that pytest stays."""
    settings, store, result = pluggy_2020
    image = store.image(result.image_id)
    assert image.spec["unconstrained"] == ["pluggy"] and image.spec["as_of"] == "2020-07-01", image.spec["notes"]
    versions = engine.run(image.tag, ["python", "-c", "import pytest, pluggy; print(pytest.__version__, pluggy.__file__)"],
                          timeout=60).output.split()
    assert versions[0].startswith("5.4.") and versions[1] == f"{settings.repo_path}/src/pluggy/__init__.py"
    assert result.passed > 70 and result.failed == 0


def test_a_corpus_repository_is_traced_on_python_39(pluggy_2020, engine):
    """The tracer runs on the oldest Python the builder picks, under the pytest of 2020, on a real repository's
    own suite: its hook calls go through generators, wrappers and exceptions."""
    from forager.traces import cwm
    from forager.traces.run import TraceOptions, Tracer, passing_tests, select_tests, suite_subject

    settings, store, result = pluggy_2020
    image = store.image(result.image_id)
    tests = select_tests(passing_tests(store, image.id), selector="testing/test_hookcaller.py", limit=8, seed=0)
    report = Tracer(settings, store, engine).trace(suite_subject(image, settings, tests), TraceOptions(depth=2))
    assert report.python == "3.9" and report.traced == len(tests) == 8 and report.traces > 8, report
    traces = [trace for trace, *_ in store.iter_traces(image_id=image.id)]
    # before 3.11 code objects have no qualified name: the tracer's "@LINE:NAME" were resolved from the source
    assert all(not t.qualname.startswith("@") for t in traces) and any("." in t.qualname for t in traces)
    assert all(t.path.startswith("src/pluggy/") for t in traces)
    assert all(cwm.parse(t.text).frames[0].kind == "call" for t in traces)
    assert report.nondeterministic == 0, [(t.test_id, t.qualname) for t in traces if t.deterministic is False]
