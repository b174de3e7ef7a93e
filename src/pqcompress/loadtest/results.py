"""From the records of one load test to its per-second history and its summary.

One home for the error rule: :func:`error_kind` files every answer that is not a success under
one kind; ``shed_503`` (the service's documented load shedding: ``503`` with ``Retry-After``
when its in-flight limit is reached) is the only kind that does not fail a run.

Latency is measured from the arrival (the moment the open-model user decided to send) to the
whole answer, so time spent waiting for a client connection counts too. Percentiles are over
successful (2xx) answers; seconds are bucketed by arrival time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

ERROR_KINDS = (
    "connection",
    "4xx",
    "shed_503",
    "timeout_504",
    "5xx",
    "client_timeout",
    "client_overload",
)
DOCUMENTED_ERRORS = frozenset({"shed_503"})
HISTORY_COLUMNS = (
    "second",
    "users",
    "requests",
    "ok",
    "errors",
    "p50_ms",
    "p95_ms",
    "p99_ms",
)
MIN_ANSWERS_FOR_SD = 5

Record = tuple[float, float, int, str]  # arrival s, latency ms, HTTP status (0: none), kind


def error_kind(status: int, client_kind: str = "") -> str | None:
    """None for a success, else the error kind of an answer (or of no answer)."""
    if client_kind:
        return client_kind if client_kind in ERROR_KINDS else "connection"
    if 200 <= status < 300:
        return None
    if status == 503:
        return "shed_503"
    if status == 504:
        return "timeout_504"
    if 400 <= status < 500:
        return "4xx"
    if status >= 500:
        return "5xx"
    return "connection"  # no status and no client kind: nothing usable came back


def _pct(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values.size else None


def history(
    records: Sequence[Record], users: Sequence[tuple[float, int]], duration_s: float
) -> list[dict[str, Any]]:
    """One row per second of the profile (and any second an arrival fell into)."""
    seconds = max([1, math.ceil(duration_s), *(int(r[0]) + 1 for r in records)])
    lat: list[list[float]] = [[] for _ in range(seconds)]
    sent = [0] * seconds
    bad = [0] * seconds
    for t, ms, status, kind in records:
        s = min(max(int(t), 0), seconds - 1)
        sent[s] += 1
        if error_kind(status, kind) is None:
            lat[s].append(ms)
        else:
            bad[s] += 1
    active = [0] * seconds
    for t, n in users:
        s = int(t)
        if 0 <= s < seconds:
            active[s] = max(active[s], int(n))
    rows = []
    for s in range(seconds):
        values = np.asarray(lat[s], dtype=np.float64)
        rows.append(
            {
                "second": s,
                "users": active[s],
                "requests": sent[s],
                "ok": int(values.size),
                "errors": bad[s],
                "p50_ms": _pct(values, 50),
                "p95_ms": _pct(values, 95),
                "p99_ms": _pct(values, 99),
            }
        )
    return rows


def summarize(
    records: Sequence[Record],
    rows: Sequence[dict[str, Any]],
    duration_s: float,
) -> dict[str, Any]:
    """The summary of one run: counts, throughput, latency percentiles and errors by kind.

    ``p95_sd_ms`` is the standard deviation of the per-second p95 over the seconds with at
    least 5 successful answers (how steady the tail is during the run); None with fewer than
    two such seconds.
    """
    errors = dict.fromkeys(ERROR_KINDS, 0)
    ok_ms = []
    for _t, ms, status, kind in records:
        k = error_kind(status, kind)
        if k is None:
            ok_ms.append(ms)
        else:
            errors[k] += 1
    values = np.asarray(ok_ms, dtype=np.float64)
    per_second = [r["p95_ms"] for r in rows if r["ok"] >= MIN_ANSWERS_FOR_SD]
    undocumented = sum(n for k, n in errors.items() if k not in DOCUMENTED_ERRORS)
    return {
        "requests": len(records),
        "ok": int(values.size),
        "duration_s": float(duration_s),
        "offered_rps": round(len(records) / duration_s, 3) if duration_s > 0 else None,
        "throughput_rps": round(values.size / duration_s, 3) if duration_s > 0 else None,
        "p50_ms": _pct(values, 50),
        "p95_ms": _pct(values, 95),
        "p99_ms": _pct(values, 99),
        "p95_sd_ms": (
            round(float(np.std(per_second, ddof=1)), 3) if len(per_second) >= 2 else None
        ),
        "mean_ms": round(float(values.mean()), 3) if values.size else None,
        "max_ms": round(float(values.max()), 3) if values.size else None,
        "errors": errors,
        "errors_total": sum(errors.values()),
        "undocumented_errors": undocumented,
        "peak_users": max((r["users"] for r in rows), default=0),
    }
