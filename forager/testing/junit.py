"""Per-test results from pytest's JUnit XML (junitparser), as pytest node ids. Pure: text in, outcomes out."""

from __future__ import annotations

from junitparser import Error, Failure, JUnitXml, Skipped
from junitparser.junitparser import JUnitXmlError

from forager.models import TestOutcome, TestStatus

# Worst first: when one id is reported twice (call failed, teardown errored) the worse status wins.
_SEVERITY = [TestStatus.error, TestStatus.failed, TestStatus.skipped, TestStatus.passed]


class JUnitParseError(ValueError):
    pass


def node_id(file: str | None, classname: str, name: str) -> str:
    """Rebuild a pytest node id (path::Class::test[param]) from JUnit attributes.

    A fallback for XML without forager's `forager_nodeid` property: the file attribute (xunit1) names
    where the function is defined, which for inherited tests is not the module that collected it.
    """
    if not classname:  # collection errors: pytest puts the module in `name`
        return name
    if file and file.endswith(".py"):
        module = file[:-3].replace("/", ".")
        if classname == module:
            return f"{file}::{name}"
        if classname.startswith(module + "."):
            inner = classname[len(module) + 1 :].replace(".", "::")
            return f"{file}::{inner}::{name}"
        return f"{file}::{name}"
    return f"{classname}::{name}"


def _status(case) -> tuple[TestStatus, str]:
    results = case.result
    for kind, status in ((Error, TestStatus.error), (Failure, TestStatus.failed), (Skipped, TestStatus.skipped)):
        for result in results:
            if isinstance(result, kind):
                return status, (result.message or "")[:500]
    return TestStatus.passed, ""


def parse_junit(xml_text: str | bytes) -> list[TestOutcome]:
    """Outcomes in document order, one per node id."""
    if isinstance(xml_text, str):
        xml_text = xml_text.encode()
    try:
        xml = JUnitXml.fromstring(xml_text)
    except (JUnitXmlError, SyntaxError, ValueError) as exc:
        raise JUnitParseError(f"unreadable JUnit XML: {exc}") from exc
    suites = [xml] if xml._tag == "testsuite" else list(xml)
    by_id: dict[str, TestOutcome] = {}
    for suite in suites:
        for case in suite:
            exact = case._elem.find("properties/property[@name='forager_nodeid']")
            if exact is not None and exact.get("value"):
                test_id = exact.get("value")
            else:
                test_id = node_id(case._elem.get("file"), case.classname or "", case.name or "")
            status, message = _status(case)
            outcome = TestOutcome(test_id=test_id, status=status, duration=case.time or 0.0, message=message)
            previous = by_id.get(test_id)
            if previous is None or _SEVERITY.index(status) < _SEVERITY.index(previous.status):
                by_id[test_id] = outcome
    return list(by_id.values())
