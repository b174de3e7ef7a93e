"""loadtest.jmx: the JMeter plan is well-formed XML with an open-model thread group whose
schedule says the profile's arrival rate, and a sampler that posts the payload."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from pqcompress.loadtest import LoadTestError, RampProfile, RateProfile
from pqcompress.loadtest.jmx import schedule, write_jmx

# JMeter's open model schedule grammar: rate(N/unit) and random_arrivals(T unit) steps
STEP = r"(rate\([0-9.]+/(sec|min)\)|random_arrivals\([0-9.]+ (sec|min)\))"


def test_schedules():
    ramp = RampProfile(peak_users=75, ramp_up_s=20, hold_s=40, ramp_down_s=10, user_rps=0.2)
    assert schedule(ramp) == (
        "rate(0/sec) random_arrivals(20 sec) rate(15/sec) random_arrivals(40 sec) "
        "rate(15/sec) random_arrivals(10 sec) rate(0/sec)"
    )
    assert (
        schedule(RateProfile(rps=12.5, duration_s=30)) == "rate(12.5/sec) random_arrivals(30 sec)"
    )
    flat = RampProfile(peak_users=2, ramp_up_s=0, hold_s=5, ramp_down_s=0)
    assert schedule(flat) == "rate(2/sec) random_arrivals(5 sec) rate(2/sec)"


def _props(el: ET.Element) -> dict[str, str]:
    return {p.get("name"): (p.text or "") for p in el if p.tag.endswith("Prop")}


def test_plan_is_valid_jmeter_xml(tmp_path):
    payload = tmp_path / "x.png"
    payload.write_bytes(b"\x89PNG")
    profile = RampProfile(peak_users=5, ramp_up_s=2, hold_s=3, ramp_down_s=2, user_rps=1)
    path = write_jmx(tmp_path / "plan.jmx", profile, "http://127.0.0.1:9000", payload, "image/png")
    root = ET.parse(path).getroot()
    assert root.tag == "jmeterTestPlan"
    # JMeter's tree: every element is followed by the hashTree of its children
    top = root.find("hashTree")
    assert [c.tag for c in top] == ["TestPlan", "hashTree"]
    group = root.find(".//OpenModelThreadGroup")
    assert group is not None and group.get("testclass") == "OpenModelThreadGroup"
    sched = _props(group)["OpenModelThreadGroup.schedule"]
    assert re.fullmatch(f"{STEP}( {STEP})*", sched), sched
    assert sched == schedule(profile)
    sampler = root.find(".//HTTPSamplerProxy")
    props = _props(sampler)
    assert props["HTTPSampler.domain"] == "127.0.0.1" and props["HTTPSampler.port"] == "9000"
    assert props["HTTPSampler.path"] == "/v1/predict" and props["HTTPSampler.method"] == "POST"
    file_arg = sampler.find(".//elementProp[@elementType='HTTPFileArg']")
    assert _props(file_arg)["File.path"] == str(payload)
    assert _props(file_arg)["File.mimetype"] == "image/png"
    header = root.find(".//elementProp[@elementType='Header']")
    assert _props(header) == {"Header.name": "Content-Type", "Header.value": "image/png"}


def test_plan_refuses_a_bad_url(tmp_path):
    with pytest.raises(LoadTestError, match="not usable"):
        write_jmx(tmp_path / "p.jmx", RateProfile(rps=1, duration_s=1), "ftp:/x", tmp_path, "a")
