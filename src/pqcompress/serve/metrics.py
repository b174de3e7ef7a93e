"""Prometheus metrics of one service: requests, latency, in-flight, model load, model info, process."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
ROOT_PID_ENV = "PQC_SERVICE_ROOT_PID"


class ServiceTreeCollector:
    """``pqc_service_cpu_seconds_total``, ``pqc_service_resident_memory_bytes`` and
    ``pqc_service_peak_resident_memory_bytes``: CPU time, resident memory and its lifetime
    peak of the whole service (the process named by ``PQC_SERVICE_ROOT_PID``,
    uvicorn's supervisor with ``--workers N``, else this process, and all its descendants),
    whichever worker answers the scrape. Linux only (nothing is exported elsewhere)."""

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from pqcompress import proctree

        try:
            root = int(os.environ.get(ROOT_PID_ENV, "") or os.getpid())
        except ValueError:
            root = os.getpid()
        usage = proctree.tree_usage(root) or proctree.tree_usage(os.getpid())
        if usage is None:
            return
        cpu, rss = usage
        yield CounterMetricFamily(
            "pqc_service_cpu_seconds",
            "User + system CPU seconds of the service's process tree (all workers)",
            value=cpu,
        )
        yield GaugeMetricFamily(
            "pqc_service_resident_memory_bytes",
            "Resident memory of the service's process tree (all workers)",
            value=rss,
        )
        peak = proctree.tree_peak_rss(root) or proctree.tree_peak_rss(os.getpid())
        if peak is not None:
            yield GaugeMetricFamily(
                "pqc_service_peak_resident_memory_bytes",
                "Lifetime peak resident memory (VmHWM, loading included) of the service's "
                "processes, summed over them",
                value=peak,
            )


class ServiceMetrics:
    """The service's metrics in their own registry (several apps can live in one process).

    With ``PROMETHEUS_MULTIPROC_DIR`` set (``--workers N`` sets it) the exposition aggregates
    all workers through prometheus_client's multiprocess mode; ``process_*`` metrics are then
    those of the worker that answers the scrape, while ``pqc_service_*`` cover every worker.
    """

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        reg = None if self.multiprocess else CollectorRegistry(auto_describe=True)
        self.registry = reg
        gauge_mode: dict[str, Any] = {"multiprocess_mode": "livesum"} if self.multiprocess else {}
        max_mode: dict[str, Any] = {"multiprocess_mode": "max"} if self.multiprocess else {}
        self.requests = Counter(
            "pqc_http_requests",
            "HTTP requests answered, by route, method and status code",
            ("route", "method", "status"),
            registry=reg,
        )
        self.latency = Histogram(
            "pqc_http_request_duration_seconds",
            "Time from receiving a request to sending the whole response",
            ("route", "method"),
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.in_flight = Gauge(
            "pqc_http_requests_in_flight", "Requests being handled now", registry=reg, **gauge_mode
        )
        self.rejected = Counter(
            "pqc_predict_rejected",
            "Prediction requests refused, by reason (the error code of the JSON answer)",
            ("reason",),
            registry=reg,
        )
        self.samples = Counter(
            "pqc_predict_samples", "Inputs (images or tensor rows) predicted", registry=reg
        )
        self.load_seconds = Gauge(
            "pqc_model_load_seconds", "Seconds spent loading the model", registry=reg, **max_mode
        )
        self.warmup_seconds = Gauge(
            "pqc_model_warmup_seconds",
            "Seconds spent on the warm-up inference",
            registry=reg,
            **max_mode,
        )
        self.ready = Gauge(
            "pqc_model_ready", "1 once the model is loaded and warmed up", registry=reg,
            **({"multiprocess_mode": "livesum"} if self.multiprocess else {}),
        )  # fmt: skip
        self.info = None
        if not self.multiprocess:  # Info is not supported in multiprocess mode
            self.info = Info("pqc_model", "The served model (manifest summary)", registry=reg)
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)
            assert reg is not None
            reg.register(ServiceTreeCollector())
        self.model_labels = Gauge(
            "pqc_model_labels",
            "Always 1; the labels describe the served model",
            ("architecture", "form", "bits", "alpha", "runtime", "int8", "format"),
            registry=reg,
            **max_mode,
        )

    def set_model(self, info: dict[str, Any], load_s: float, warmup_s: float) -> None:
        labels = model_labels(info)
        self.load_seconds.set(load_s)
        self.warmup_seconds.set(warmup_s)
        self.model_labels.labels(**labels).set(1)
        if self.info is not None:
            self.info.info(labels)
        self.ready.set(1)

    def exposition(self) -> bytes:
        if self.registry is not None:
            return generate_latest(self.registry)
        reg = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(reg)
        ProcessCollector(registry=reg)
        reg.register(ServiceTreeCollector())
        return generate_latest(reg)


def model_labels(info: dict[str, Any]) -> dict[str, str]:
    """Low-cardinality labels of the served model from its summary."""
    comp = info.get("compression") or {}

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    arch = info.get("architecture")
    return {
        "architecture": text(arch.get("name") if isinstance(arch, dict) else arch),
        "form": text(comp.get("form")),
        "bits": text(comp.get("bits")),
        "alpha": text(comp.get("alpha")),
        "runtime": text(info.get("runtime")),
        "int8": "true" if info.get("int8") else "false",
        "format": text(info.get("format")),
    }
