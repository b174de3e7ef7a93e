"""Load tests under open-model profiles (Locust), monitored by a real Prometheus.

``run_loadtest(url, profile, payloads, out_dir=..., prometheus="auto")`` drives a service and
writes ``history.csv``, ``history.json`` and ``summary.json``; ``bench_serving`` starts each
variant of a spec, times it to ready and runs every profile against it, storing the figures.
"""

from pqcompress.loadtest.errors import LoadTestError
from pqcompress.loadtest.payloads import dataset_payloads, file_payload
from pqcompress.loadtest.profiles import RampProfile, RateProfile, profile_from_dict
from pqcompress.loadtest.results import DOCUMENTED_ERRORS, ERROR_KINDS, error_kind
from pqcompress.loadtest.runner import LoadTestResult, run_loadtest

__all__ = [
    "DOCUMENTED_ERRORS",
    "ERROR_KINDS",
    "LoadTestError",
    "LoadTestResult",
    "RampProfile",
    "RateProfile",
    "dataset_payloads",
    "error_kind",
    "file_payload",
    "profile_from_dict",
    "run_loadtest",
]
