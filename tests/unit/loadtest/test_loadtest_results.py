"""loadtest.results: one rule for error kinds; history and summary of known records."""

from __future__ import annotations

import numpy as np
import pytest

from pqcompress.loadtest import DOCUMENTED_ERRORS, error_kind
from pqcompress.loadtest.results import history, summarize


@pytest.mark.parametrize(
    "status, client, kind",
    [
        (200, "", None),
        (204, "", None),
        (503, "", "shed_503"),
        (504, "", "timeout_504"),
        (422, "", "4xx"),
        (404, "", "4xx"),
        (500, "", "5xx"),
        (502, "", "5xx"),
        (0, "connection", "connection"),
        (0, "client_timeout", "client_timeout"),
        (0, "client_overload", "client_overload"),
        (0, "", "connection"),
        (0, "weird", "connection"),
    ],
)
def test_error_kind(status, client, kind):
    assert error_kind(status, client) == kind


def test_only_shedding_is_documented():
    assert {"shed_503"} == DOCUMENTED_ERRORS


def test_history_and_summary_of_known_records():
    rng = np.random.default_rng(0)
    records = []
    for s in range(4):  # 20 answers a second, latency 10..29 ms
        for i in range(20):
            records.append((s + i / 20, 10.0 + i + s, 200, ""))
    records += [(1.5, 5.0, 503, ""), (2.5, 0.0, 0, "connection"), (3.2, 3.0, 422, "")]
    rng.shuffle(records)
    rows = history([tuple(r) for r in records], [(0.1, 2), (1.2, 4), (1.8, 5), (3.5, 1)], 4.0)
    assert [r["second"] for r in rows] == [0, 1, 2, 3]
    assert [r["users"] for r in rows] == [2, 5, 0, 1]
    assert [r["requests"] for r in rows] == [20, 21, 21, 21]
    assert [r["errors"] for r in rows] == [0, 1, 1, 1]
    assert rows[0]["p50_ms"] == pytest.approx(np.percentile(np.arange(10, 30), 50))
    summary = summarize(records, rows, 4.0)
    assert summary["requests"] == 83 and summary["ok"] == 80
    assert summary["throughput_rps"] == 20.0 and summary["offered_rps"] == 20.75
    ok = [r[1] for r in records if r[2] == 200]
    assert summary["p95_ms"] == pytest.approx(np.percentile(ok, 95), abs=1e-3)
    per_second = [r["p95_ms"] for r in rows]
    assert summary["p95_sd_ms"] == pytest.approx(np.std(per_second, ddof=1), abs=1e-3)
    assert summary["errors"]["shed_503"] == 1 and summary["errors"]["connection"] == 1
    assert summary["errors"]["4xx"] == 1 and summary["errors_total"] == 3
    assert summary["undocumented_errors"] == 2  # the 503 is documented shedding


def test_summary_of_nothing_has_no_percentiles():
    rows = history([], [], 2.0)
    summary = summarize([], rows, 2.0)
    assert len(rows) == 2 and summary["requests"] == 0
    assert summary["p95_ms"] is None and summary["p95_sd_ms"] is None
