"""`footprint check` verdicts as text, JSON, Markdown (GitHub step summary) and JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict
from typing import Any

from footprint.gate.budget import FAIL, WARN, Evaluation
from footprint.schemas import SCHEMA_VERSION
from footprint.units import human

STEP_SUMMARY_LIMIT = 900 * 1024  # GitHub allows 1 MiB per step summary
ICON = {"pass": "✅", "warn": "⚠️", "fail": "❌", "report": "📋"}


def check_dict(image: str, e: Evaluation, failed: bool, mode: str) -> dict[str, Any]:
    verdicts = e.verdicts
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "check",
        "image": image,
        "mode": mode,
        "result": "report" if mode == "report" else "fail" if failed else "pass",
        "counts": {s: sum(v.status == s for v in verdicts) for s in ("pass", "warn", "fail")},
        "verdicts": [asdict(v) for v in verdicts],
        "warnings": list(e.warnings),
    }


def _value(v: dict[str, Any]) -> str:
    return human(v["value"]) + (f" / {human(v['threshold'])}" if v["threshold"] is not None else "")


def check_text(doc: dict[str, Any]) -> str:
    c = doc["counts"]
    lines = [
        f"{doc['image']}: {doc['result'].upper()} ({c['pass']} pass, {c['warn']} warn, "
        f"{c['fail']} fail; mode {doc['mode']})"
    ]
    for v in doc["verdicts"]:
        lines.append(f"  {v['status']:<4}  {v['name']:<40} {_value(v):>24}  {v['message']}")
    lines += [f"warning: {w}" for w in doc["warnings"]]
    return "\n".join(lines) + "\n"


def check_markdown(doc: dict[str, Any]) -> str:
    c = doc["counts"]
    out = [
        f"### footprint check: {ICON[doc['result']]} {doc['result']} — `{doc['image']}`",
        "",
        f"{c['pass']} pass, {c['warn']} warn, {c['fail']} fail (mode {doc['mode']})",
        "",
        "| | check | value / threshold | detail |",
        "| --- | --- | ---: | --- |",
    ]
    rows = sorted(doc["verdicts"], key=lambda v: {"fail": 0, "warn": 1, "pass": 2}[v["status"]])
    for v in rows:
        out.append(f"| {ICON[v['status']]} | {v['name']} | {_value(v)} | {v['message']} |")
    if doc["warnings"]:
        out += ["", *(f"> ⚠️ {w}" for w in doc["warnings"])]
    text = "\n".join(out) + "\n"
    if len(text.encode()) > STEP_SUMMARY_LIMIT:
        text = text.encode()[:STEP_SUMMARY_LIMIT].decode(errors="ignore") + "\n… (cut)\n"
    return text


def append_step_summary(doc: dict[str, Any], path: str | None) -> str | None:
    """Append the Markdown table to GitHub's step summary at `path`; a warning if it cannot
    be (the verdict still stands)."""
    if not path:
        return None
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(check_markdown(doc))
    except OSError as e:
        return f"cannot append to {path}: {e.strerror}"
    return None


def check_junit(doc: dict[str, Any]) -> str:
    """One testcase per budget line; fail -> <failure>, warn -> <system-out>."""
    suite = ET.Element(
        "testsuite",
        name="footprint",
        tests=str(len(doc["verdicts"])),
        failures=str(doc["counts"]["fail"]),
        errors="0",
        skipped="0",
    )
    for v in doc["verdicts"]:
        case = ET.SubElement(
            suite, "testcase", classname=f"footprint.{doc['image']}", name=v["name"]
        )
        if v["status"] == FAIL:
            ET.SubElement(case, "failure", message=v["message"], type="budget").text = v["message"]
        elif v["status"] == WARN:
            ET.SubElement(case, "system-out").text = f"warning: {v['message']}"
    root = ET.Element("testsuites")
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
