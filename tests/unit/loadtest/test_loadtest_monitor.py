"""loadtest.monitor: the generated Prometheus configuration and the PromQL it evaluates."""

from __future__ import annotations

import pytest
import yaml

# the monitor (pqcompress.loadtest.monitor) talks to Prometheus with httpx: each test is
# skipped on its own without it, and the module is imported inside the tests
pytestmark = pytest.mark.requires("httpx")


def test_scrape_config_targets_the_service_and_an_optional_node_exporter():
    from pqcompress.loadtest.monitor import scrape_config

    plain = yaml.safe_load(scrape_config("127.0.0.1:8080", interval_s=1.0, node_exporter=None))
    assert plain["global"]["scrape_interval"] == "1s"
    (job,) = plain["scrape_configs"]
    assert job["job_name"] == "pqcompress"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8080"]}]
    both = yaml.safe_load(scrape_config("h:1", interval_s=0.5, node_exporter="127.0.0.1:9100"))
    assert [j["job_name"] for j in both["scrape_configs"]] == ["pqcompress", "node"]
    assert both["global"]["scrape_interval"] == "0.5s"


def test_queries_cover_the_whole_window_of_the_service_tree_metrics():
    from pqcompress.loadtest.monitor import queries

    q = queries("svc", 61)
    assert q["cpu_millicores"] == (
        '1000 * sum(rate(pqc_service_cpu_seconds_total{job="svc"}[61s]))'
    )
    assert q["memory_mib"] == (
        'sum(max_over_time(pqc_service_resident_memory_bytes{job="svc"}[61s])) / 1048576'
    )
    assert "[5s]" in q["cpu_millicores_timeline"] and 'mode!="idle"' in q["node_cpu_millicores"]
