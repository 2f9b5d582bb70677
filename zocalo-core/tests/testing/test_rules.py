"""The conformance suite tests exactly the rules of the protocol page."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from zocalo_core.testing import TransportConformance
from zocalo_core.testing._helpers import CAPABILITY_MARKER
from zocalo_core.testing.conformance import ConformanceBase
from zocalo_core.transport import Capability

PROTOCOL_PAGE = Path(__file__).resolve().parents[3] / "docs" / "transport.md"
RULE = re.compile(r"\b([A-Z]+-\d+)\b")


def page_rules() -> set[str]:
    page = PROTOCOL_PAGE.read_text(encoding="utf-8")
    return set(re.findall(r"^- \*\*([A-Z]+-\d+)\*\*", page, flags=re.MULTILINE))


def suite_tests() -> dict[str, str]:
    """Every test of the suite, by name, with its docstring."""
    return {
        name: inspect.getdoc(member) or ""
        for name, member in inspect.getmembers(TransportConformance)
        if name.startswith("test_")
    }


def rule_classes() -> list[type]:
    return [
        cls
        for cls in TransportConformance.__mro__[1:]
        if issubclass(cls, ConformanceBase) and cls is not ConformanceBase
    ]


def test_the_page_has_rules() -> None:
    assert len(page_rules()) > 60


def test_every_rule_has_a_test() -> None:
    cited = {rule for doc in suite_tests().values() for rule in RULE.findall(doc)}
    assert sorted(page_rules() - cited) == []


def test_every_test_cites_a_rule_of_the_page() -> None:
    rules = page_rules()
    for name, doc in suite_tests().items():
        cited = RULE.findall(doc.split(":")[0])
        assert cited, f"{name} cites no rule"
        assert set(cited) <= rules, f"{name} cites {cited}, not on the page"


def test_no_rule_test_hides_another() -> None:
    names = [
        name for cls in rule_classes() for name in vars(cls) if name.startswith("test_")
    ]
    assert len(names) == len(set(names))
    assert set(names) == set(suite_tests())


def test_every_capability_has_tests_that_need_it() -> None:
    needed = {
        capability
        for name in suite_tests()
        for marker in getattr(getattr(TransportConformance, name), "pytestmark", [])
        if marker.name == CAPABILITY_MARKER
        for capability in marker.args
    }
    assert needed == set(Capability)


def test_rule_groups_of_capabilities_are_marked() -> None:
    """A test of a capability's rule group is marked with that capability."""
    page = PROTOCOL_PAGE.read_text(encoding="utf-8")
    groups = dict(re.findall(r"^\| `([a-z-]+)` \| \[([A-Z]+)\]", page, flags=re.M))
    assert set(groups) == {capability.value for capability in Capability}
    for name, doc in suite_tests().items():
        group = doc.split("-")[0]
        marks = getattr(getattr(TransportConformance, name), "pytestmark", [])
        needed = {c.value for m in marks if m.name == CAPABILITY_MARKER for c in m.args}
        for capability, capability_group in groups.items():
            if group == capability_group and capability != "prefetch":
                assert capability in needed, name
