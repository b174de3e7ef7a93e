"""The same open-model profile as a JMeter test plan, for teams that run JMeter.

The plan has one Open Model Thread Group (JMeter >= 5.5) whose schedule is the profile's
arrival rate (users x per-user rate): ``rate(0/sec) random_arrivals(UP sec) rate(R/sec)
random_arrivals(HOLD sec) rate(R/sec) random_arrivals(DOWN sec) rate(0/sec)`` for a ramp,
``rate(R/sec) random_arrivals(D sec)`` for a constant rate. One HTTP sampler POSTs the payload
file as the raw body (``Content-Type`` of the payload), with connect and response timeouts,
and a summary report listener writes a CSV of the samples.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pqcompress.atomic import write_text_atomic
from pqcompress.loadtest.profiles import Profile, RampProfile
from pqcompress.loadtest.target import check_url

JMETER_VERSION = "5.6.3"


def schedule(profile: Profile) -> str:
    """The Open Model Thread Group schedule string of a profile."""

    def rate(r: float) -> str:
        return f"rate({r:g}/sec)"

    def arrivals(s: float) -> str:
        return f"random_arrivals({s:g} sec)"

    if isinstance(profile, RampProfile):
        peak = profile.peak_rps()
        parts = [rate(0)]
        if profile.ramp_up_s:
            parts += [arrivals(profile.ramp_up_s), rate(peak)]
        else:
            parts = [rate(peak)]
        if profile.hold_s:
            parts += [arrivals(profile.hold_s), rate(peak)]
        if profile.ramp_down_s:
            parts += [arrivals(profile.ramp_down_s), rate(0)]
        return " ".join(parts)
    return f"{rate(profile.peak_rps())} {arrivals(profile.duration_s)}"


def _element(parent: ET.Element, tag: str, gui: str, name: str) -> ET.Element:
    """A test element (its test class is its tag) with its GUI class and its name."""
    return ET.SubElement(parent, tag, guiclass=gui, testclass=tag, testname=name)


def _prop(parent: ET.Element, kind: str, name: str, value: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, kind, name=name)
    if value is not None:
        el.text = value
    return el


def build_plan(
    profile: Profile,
    url: str,
    payload: Path,
    content_type: str,
    *,
    path: str = "/v1/predict",
    timeout_s: float = 10.0,
) -> ET.ElementTree:
    parts = urlsplit(check_url(url))
    assert parts.hostname is not None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    root = ET.Element("jmeterTestPlan", version="1.2", properties="5.0", jmeter=JMETER_VERSION)
    top = ET.SubElement(root, "hashTree")
    plan = _element(top, "TestPlan", "TestPlanGui", "pqcompress open-model load")
    _prop(plan, "boolProp", "TestPlan.functional_mode", "false")
    _prop(plan, "boolProp", "TestPlan.serialize_threadgroups", "false")
    plan_tree = ET.SubElement(top, "hashTree")
    group = _element(
        plan_tree, "OpenModelThreadGroup", "OpenModelThreadGroupGui", f"{profile.kind} profile"
    )
    _prop(group, "stringProp", "OpenModelThreadGroup.schedule", schedule(profile))
    _prop(group, "stringProp", "OpenModelThreadGroup.random_seed", "0")
    _prop(group, "stringProp", "ThreadGroup.on_sample_error", "continue")
    group_tree = ET.SubElement(plan_tree, "hashTree")
    sampler = _element(group_tree, "HTTPSamplerProxy", "HttpTestSampleGui", "POST predict")
    files = _prop(sampler, "elementProp", "HTTPsampler.Files")
    files.set("elementType", "HTTPFileArgs")
    coll = _prop(files, "collectionProp", "HTTPFileArgs.files")
    arg = _prop(coll, "elementProp", str(payload))
    arg.set("elementType", "HTTPFileArg")
    _prop(arg, "stringProp", "File.path", str(payload))
    _prop(arg, "stringProp", "File.paramname", "")
    _prop(arg, "stringProp", "File.mimetype", content_type)
    for name, value in (
        ("HTTPSampler.domain", parts.hostname),
        ("HTTPSampler.port", str(port)),
        ("HTTPSampler.protocol", parts.scheme),
        ("HTTPSampler.path", path),
        ("HTTPSampler.method", "POST"),
        ("HTTPSampler.connect_timeout", str(int(timeout_s * 1000))),
        ("HTTPSampler.response_timeout", str(int(timeout_s * 1000))),
    ):
        _prop(sampler, "stringProp", name, value)
    _prop(sampler, "boolProp", "HTTPSampler.use_keepalive", "true")
    _prop(sampler, "boolProp", "HTTPSampler.follow_redirects", "false")
    sampler_tree = ET.SubElement(group_tree, "hashTree")
    headers = _element(sampler_tree, "HeaderManager", "HeaderPanel", "Content-Type")
    hcoll = _prop(headers, "collectionProp", "HeaderManager.headers")
    header = _prop(hcoll, "elementProp", "")
    header.set("elementType", "Header")
    _prop(header, "stringProp", "Header.name", "Content-Type")
    _prop(header, "stringProp", "Header.value", content_type)
    ET.SubElement(sampler_tree, "hashTree")
    report = _element(group_tree, "ResultCollector", "SummaryReport", "samples")
    _prop(report, "boolProp", "ResultCollector.error_logging", "false")
    _prop(report, "stringProp", "filename", "samples.csv")
    ET.SubElement(group_tree, "hashTree")
    ET.indent(root)
    return ET.ElementTree(root)


def write_jmx(out: str | Path, profile: Profile, *plan: Any, **options: Any) -> Path:
    """Write the JMeter plan of ``profile`` to ``out`` (atomically) and return its path;
    ``plan`` and ``options`` are :func:`build_plan`'s (url, payload, content type; path,
    timeout_s)."""
    tree = build_plan(profile, *plan, **options)
    root = tree.getroot()
    assert root is not None
    text = ET.tostring(root, encoding="unicode", xml_declaration=False)
    dest = Path(out)
    write_text_atomic(dest, '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n")
    return dest
