"""Reading and adjusting what pytest writes: JUnit counts and properties, Cobertura paths and line rate."""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.config import Project


@dataclass(frozen=True)
class JunitCounts:
    tests: int
    failures: int
    errors: int
    skipped: int

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped


def _suites(root: ET.Element) -> list[ET.Element]:
    return [root] if root.tag == "testsuite" else list(root.iter("testsuite"))


def junit_counts(path: Path) -> JunitCounts:
    root = ET.parse(path).getroot()
    totals = [0, 0, 0, 0]
    for suite in _suites(root):
        for i, key in enumerate(("tests", "failures", "errors", "skipped")):
            totals[i] += int(suite.get(key, "0"))
    return JunitCounts(*totals)


@dataclass(frozen=True)
class JunitOutcomes:
    """Test ids (`module.Class::name`) by outcome; skipped tests are neither passed nor failed."""

    passed: tuple[str, ...]
    failed: tuple[str, ...]
    skipped: tuple[str, ...]


def junit_outcomes(path: Path) -> JunitOutcomes:
    """Every test case of a JUnit report, by outcome (a failure or an error counts as failed)."""
    passed, failed, skipped = [], [], []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}".lstrip(":")
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(name)
        elif case.find("skipped") is not None:
            skipped.append(name)
        else:
            passed.append(name)
    return JunitOutcomes(tuple(passed), tuple(failed), tuple(skipped))


def add_junit_properties(path: Path, properties: dict[str, str]) -> None:
    """Add `<property>` entries to every test suite (where the tests ran, which package, ...)."""
    tree = ET.parse(path)
    for suite in _suites(tree.getroot()):
        holder = suite.find("properties")
        if holder is None:
            holder = ET.Element("properties")
            suite.insert(0, holder)
        for name, value in properties.items():
            ET.SubElement(holder, "property", {"name": name, "value": value})
    tree.write(path, encoding="utf-8", xml_declaration=True)


def mask_secrets_in_reports(project: Project, env: str | None, results: Path) -> list[Path]:
    """Rewrite junit.xml, coverage.xml and htmlcov/ with every value of the environment's store masked (a test
    may print a secret into a failure message, or coverage may quote a source line holding one)."""
    from conveyor.secrets.boundaries import mask_report_files
    from conveyor.secrets.scan import learn_values

    if env:
        with contextlib.suppress(ConveyorError):
            learn_values([project.environment(env).secrets])
    return mask_report_files([results / "junit.xml", results / "coverage.xml", results / "htmlcov"])


def map_coverage_paths(path: Path, source_root: Path, mapping: dict[str, str]) -> float:
    """Point coverage.xml at the project's source: `<source>` becomes `source_root` and packaged file names
    (`inference/model.py`) become project paths (`src/inference/model.py`) by the `mapping` of top-level names.

    Returns the line coverage in percent.
    """
    tree = ET.parse(path)
    root = tree.getroot()
    sources = root.find("sources")
    if sources is not None:
        for source in list(sources):
            sources.remove(source)
        ET.SubElement(sources, "source").text = str(source_root)
    for element in root.iter("class"):
        name = element.get("filename", "")
        head, _, rest = name.partition("/")
        if head in mapping:
            element.set("filename", f"{mapping[head]}/{rest}" if rest else mapping[head])
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return round(float(root.get("line-rate", "0")) * 100, 1)
