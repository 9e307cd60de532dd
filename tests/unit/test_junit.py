import pytest

from forager.models import TestStatus
from forager.testing.junit import JUnitParseError, node_id, parse_junit

XML = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="6" time="0.1">
<testcase classname="tests.test_money" name="test_parse[1.5 - one and a half]" file="tests/test_money.py" line="3" time="0.001"/>
<testcase classname="tests.test_money.TestFormat" name="test_neg" file="tests/test_money.py" line="9" time="0.002">
  <failure message="assert '-1' == '-0.01'">details</failure></testcase>
<testcase classname="tests.sub.test_x.TestOuter.TestInner" name="test_deep" file="tests/sub/test_x.py" time="0"/>
<testcase classname="tests.test_skip" name="test_later" file="tests/test_skip.py" time="0">
  <skipped type="pytest.skip" message="not yet">skip</skipped></testcase>
<testcase classname="" name="tests.test_broken" time="0"><error message="collection failure">ImportError</error></testcase>
<testcase classname="tests.test_money" name="test_teardown" file="tests/test_money.py" time="0">
  <failure message="boom"/></testcase>
<testcase classname="tests.test_money" name="test_teardown" file="tests/test_money.py" time="0">
  <error message="teardown boom"/></testcase>
</testsuite></testsuites>"""


def test_node_ids_keep_spaces_brackets_and_nested_classes():
    ids = [o.test_id for o in parse_junit(XML)]
    assert ids == [
        "tests/test_money.py::test_parse[1.5 - one and a half]",
        "tests/test_money.py::TestFormat::test_neg",
        "tests/sub/test_x.py::TestOuter::TestInner::test_deep",
        "tests/test_skip.py::test_later",
        "tests.test_broken",
        "tests/test_money.py::test_teardown",
    ]


def test_statuses_and_worst_status_wins_on_duplicates():
    by_id = {o.test_id: o for o in parse_junit(XML)}
    assert by_id["tests/test_money.py::test_parse[1.5 - one and a half]"].status == TestStatus.passed
    assert by_id["tests/test_money.py::TestFormat::test_neg"].status == TestStatus.failed
    assert "assert" in by_id["tests/test_money.py::TestFormat::test_neg"].message
    assert by_id["tests/test_skip.py::test_later"].status == TestStatus.skipped
    assert by_id["tests.test_broken"].status == TestStatus.error
    assert by_id["tests/test_money.py::test_teardown"].status == TestStatus.error


def test_single_testsuite_root_and_no_file_attribute():
    xml = '<testsuite name="x" tests="1"><testcase classname="pkg.test_a.TestA" name="test_b"/></testsuite>'
    assert [o.test_id for o in parse_junit(xml)] == ["pkg.test_a.TestA::test_b"]


def test_node_id_when_classname_is_not_under_file():
    assert node_id("tests/test_a.py", "other.mod", "test_x") == "tests/test_a.py::test_x"


def test_garbage_raises_clear_error():
    with pytest.raises(JUnitParseError):
        parse_junit("<not xml")


def test_exact_node_id_property_wins_over_attributes():
    xml = """<testsuites><testsuite name="pytest" tests="2">
    <testcase classname="tests.test_cache.CacheTest" name="test_clear" file="tests/__init__.py">
      <properties><property name="forager_nodeid" value="tests/test_cache.py::CacheTest::test_clear"/></properties>
    </testcase>
    <testcase classname="tests.test_lru.LRUTest" name="test_clear" file="tests/__init__.py">
      <properties><property name="forager_nodeid" value="tests/test_lru.py::LRUTest::test_clear"/></properties>
      <failure message="x"/>
    </testcase></testsuite></testsuites>"""
    outcomes = parse_junit(xml)
    assert [(o.test_id, o.status) for o in outcomes] == [
        ("tests/test_cache.py::CacheTest::test_clear", TestStatus.passed),
        ("tests/test_lru.py::LRUTest::test_clear", TestStatus.failed),
    ]
