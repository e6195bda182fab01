"""One JUnit XML writer for the evidence and the migration review, as Jenkins and GitLab read it.

A case is a dict: classname, name, and optionally time (seconds), and one outcome - failure, error or
skipped - with its message (text for people, never a Python repr), or system_out for a passing case's
detail. The suite's counts are computed from the cases, so they always agree with them.
"""
from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

OUTCOMES = ("failure", "error", "skipped")
MESSAGE_LIMIT = 500  # a message attribute is a line; the whole text goes in the element's body


def case(classname: str, name: str, *, time: float | None = None, failure: str | None = None,
         error: str | None = None, skipped: str | None = None, system_out: str | None = None) -> dict[str, Any]:
    return {"classname": classname, "name": name, "time": time, "failure": failure, "error": error,
            "skipped": skipped, "system_out": system_out}


def _element(c: dict[str, Any]) -> ET.Element:
    attrs = {"classname": str(c["classname"]), "name": str(c["name"])}
    if c.get("time") is not None:
        attrs["time"] = f"{float(c['time']):.3f}"
    element = ET.Element("testcase", attrs)
    for outcome in OUTCOMES:
        text = c.get(outcome)
        if text is not None:
            text = str(text)
            child = ET.SubElement(element, outcome, message=text.splitlines()[0][:MESSAGE_LIMIT] if text else "")
            if outcome != "skipped":
                child.set("type", outcome)
                child.text = text
            break
    else:
        if c.get("system_out"):
            ET.SubElement(element, "system-out").text = str(c["system_out"])
    return element


def suite(name: str, cases: list[dict[str, Any]], *, timestamp: str | None = None) -> str:
    """The <testsuite> document: tests, failures, errors and skipped counted from the cases."""
    counts = {outcome: sum(1 for c in cases if c.get(outcome) is not None) for outcome in OUTCOMES}
    attrs = {"name": name, "tests": str(len(cases)), "failures": str(counts["failure"]),
             "errors": str(counts["error"]), "skipped": str(counts["skipped"]),
             "time": f"{sum(float(c.get('time') or 0) for c in cases):.3f}"}
    if timestamp:
        attrs["timestamp"] = timestamp[:19]  # xs:dateTime without the zone, as the schema's
    root = ET.Element("testsuite", attrs)
    root.extend(_element(c) for c in cases)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
