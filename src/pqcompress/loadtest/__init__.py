"""Load tests under open-model profiles (Locust), monitored by a real Prometheus.

``run_loadtest(url, profile, payloads, out_dir=..., prometheus="auto")`` drives a service and
writes ``history.csv``, ``history.json`` and ``summary.json``; ``bench_serving`` starts each
variant of a spec, times it to ready and runs every profile against it, storing the figures.

Names resolve on first use: profiles, payloads and result kinds need no HTTP client, so
importing this package needs no httpx (the runner, the monitor and the bench import it).
"""

from __future__ import annotations

from pqcompress.lazy import lazy_exports

_EXPORTS = {
    "DOCUMENTED_ERRORS": "pqcompress.loadtest.results",
    "ERROR_KINDS": "pqcompress.loadtest.results",
    "LoadTestError": "pqcompress.loadtest.errors",
    "LoadTestResult": "pqcompress.loadtest.runner",
    "RampProfile": "pqcompress.loadtest.profiles",
    "RateProfile": "pqcompress.loadtest.profiles",
    "dataset_payloads": "pqcompress.loadtest.payloads",
    "error_kind": "pqcompress.loadtest.results",
    "file_payload": "pqcompress.loadtest.payloads",
    "planned_requests": "pqcompress.loadtest.profiles",
    "profile_from_dict": "pqcompress.loadtest.profiles",
    "run_loadtest": "pqcompress.loadtest.runner",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
