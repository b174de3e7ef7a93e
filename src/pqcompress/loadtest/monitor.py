"""CPU and memory of the service under load, read from a real Prometheus server.

The service exports ``pqc_service_cpu_seconds_total`` and ``pqc_service_resident_memory_bytes``
for its whole process tree (uvicorn's supervisor and every worker with ``--workers N``; see
serve/metrics.py), so one scrape target covers all workers. After a run of D seconds ending at
time T, :func:`usage` evaluates at T (``J`` is the scrape job):

- ``cpu_millicores`` = ``1000 * sum(rate(pqc_service_cpu_seconds_total{job="J"}[Ds]))``
  (mean over the run), ``cpu_millicores_peak`` = max over the run of the same with a 5 s
  window;
- ``memory_mib`` = ``sum(max_over_time(pqc_service_resident_memory_bytes{job="J"}[Ds])) /
  2^20`` (peak resident), ``memory_mib_mean`` = the same with ``avg_over_time``;
- with a node exporter scraped as job ``node``: ``node_cpu_millicores`` =
  ``1000 * sum(rate(node_cpu_seconds_total{job="node",mode!="idle"}[Ds]))`` (the machine).

``Prometheus.start`` runs the ``prometheus`` binary (Debian package ``prometheus``) with a
generated configuration scraping the service every second; ``Prometheus.connect`` uses a
server that already scrapes it.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from pqcompress.loadtest.errors import LoadTestError
from pqcompress.loadtest.target import free_port

JOB = "pqcompress"
NODE_JOB = "node"
NODE_EXPORTER = "127.0.0.1:9100"
CPU_METRIC = "pqc_service_cpu_seconds_total"
MEMORY_METRIC = "pqc_service_resident_memory_bytes"
MIB = 1024 * 1024


def _answers(address: str) -> bool:
    try:
        return httpx.get(f"http://{address}/metrics", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def scrape_config(target: str, *, interval_s: float, node_exporter: str | None) -> str:
    """The generated prometheus.yml: the service (job ``pqcompress``) and, when given, a node
    exporter (job ``node``)."""
    lines = [
        f"global: {{scrape_interval: {interval_s:g}s, evaluation_interval: {interval_s:g}s}}",
        "scrape_configs:",
        f"  - job_name: {JOB}",
        f"    static_configs: [{{targets: ['{target}']}}]",
    ]
    if node_exporter:
        lines += [
            f"  - job_name: {NODE_JOB}",
            f"    static_configs: [{{targets: ['{node_exporter}']}}]",
        ]
    return "\n".join(lines) + "\n"


class Prometheus:
    """A Prometheus server: one this process started (``start``) or an existing one."""

    def __init__(
        self,
        url: str,
        *,
        job: str = JOB,
        process: subprocess.Popen[bytes] | None = None,
        workdir: Path | None = None,
        node: bool = False,
    ) -> None:
        self.url = url.rstrip("/")
        self.job = job
        self.process = process
        self.workdir = workdir
        self.node = node
        self.client = httpx.Client(base_url=self.url, timeout=10.0)

    @classmethod
    def start(
        cls, service_url: str, *, interval_s: float = 1.0, timeout_s: float = 60.0
    ) -> Prometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            raise LoadTestError(
                "--prometheus auto needs the prometheus binary (Debian: apt-get install "
                "prometheus); or pass --prometheus URL of a server that scrapes the service, "
                "or --prometheus off"
            )
        target = urlsplit(service_url).netloc
        node = NODE_EXPORTER if _answers(NODE_EXPORTER) else None
        workdir = Path(tempfile.mkdtemp(prefix="pqc-prometheus-"))
        (workdir / "prometheus.yml").write_text(
            scrape_config(target, interval_s=interval_s, node_exporter=node)
        )
        port = free_port()
        log = (workdir / "prometheus.log").open("wb")
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        prom = cls(
            f"http://127.0.0.1:{port}", process=process, workdir=workdir, node=node is not None
        )
        try:
            prom.wait_ready(timeout_s)
        except BaseException:
            prom.close()
            raise
        return prom

    @classmethod
    def connect(cls, url: str, *, job: str = JOB) -> Prometheus:
        prom = cls(url, job=job)
        try:
            prom.client.get("/-/ready").raise_for_status()
        except httpx.HTTPError as exc:
            prom.close()
            raise LoadTestError(
                f"the Prometheus server at {url} does not answer /-/ready ({exc}); expected a "
                "running server that scrapes the service"
            ) from None
        return prom

    def _failed(self) -> str:
        if self.workdir is not None and (self.workdir / "prometheus.log").is_file():
            tail = (self.workdir / "prometheus.log").read_text(errors="replace")[-400:]
            return f"prometheus exited: {tail.strip()}"
        return "prometheus exited"

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise LoadTestError(self._failed())
            try:
                if self.client.get("/-/ready").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise LoadTestError(f"Prometheus at {self.url} was not ready within {timeout_s:g} s")

    def wait_target_up(self, timeout_s: float = 30.0) -> None:
        """Until the service target has been scraped (``up == 1``), bounded."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise LoadTestError(self._failed())
            try:
                if self.query(f'max(up{{job="{self.job}"}})') == 1.0:
                    return
            except LoadTestError:
                pass
            time.sleep(0.25)
        raise LoadTestError(
            f"Prometheus did not scrape job '{self.job}' within {timeout_s:g} s; is the "
            "service's /metrics reachable?"
        )

    def query(self, expr: str, at: float | None = None) -> float | None:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        result = self._get("/api/v1/query", params)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return value if math.isfinite(value) else None

    def query_range(
        self, expr: str, start: float, end: float, step_s: float = 1.0
    ) -> list[tuple[float, float]]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step_s}
        result = self._get("/api/v1/query_range", params)
        if not result:
            return []
        return [(float(t), float(v)) for t, v in result[0]["values"] if math.isfinite(float(v))]

    def _get(self, path: str, params: dict[str, Any]) -> list[Any]:
        try:
            reply = self.client.get(path, params=params)
            data = reply.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise LoadTestError(f"Prometheus query failed: {exc}") from None
        if data.get("status") != "success":
            raise LoadTestError(f"Prometheus refused the query {params['query']!r}: {data}")
        result: list[Any] = data["data"]["result"]
        return result

    def close(self) -> None:
        self.client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def queries(job: str, window_s: int) -> dict[str, str]:
    """The PromQL expressions of :func:`usage` (also written into the summary)."""
    sel = f'{{job="{job}"}}'
    return {
        "cpu_millicores": f"1000 * sum(rate({CPU_METRIC}{sel}[{window_s}s]))",
        "cpu_millicores_timeline": f"1000 * sum(rate({CPU_METRIC}{sel}[5s]))",
        "memory_mib": f"sum(max_over_time({MEMORY_METRIC}{sel}[{window_s}s])) / {MIB}",
        "memory_mib_mean": f"sum(avg_over_time({MEMORY_METRIC}{sel}[{window_s}s])) / {MIB}",
        "memory_mib_timeline": f"sum({MEMORY_METRIC}{sel}) / {MIB}",
        "node_cpu_millicores": (
            f'1000 * sum(rate(node_cpu_seconds_total{{job="{NODE_JOB}",mode!="idle"}}'
            f"[{window_s}s]))"
        ),
    }


def usage(prom: Prometheus, start: float, end: float) -> dict[str, Any]:
    """CPU millicores and resident MiB of the service between ``start`` and ``end`` (Unix s),
    with per-second timelines; the queries used are returned under ``queries``."""
    window = max(2, math.ceil(end - start))
    q = queries(prom.job, window)

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    cpu_line = prom.query_range(q["cpu_millicores_timeline"], start, end)
    mem_line = prom.query_range(q["memory_mib_timeline"], start, end)
    out: dict[str, Any] = {
        "cpu_millicores": rounded(prom.query(q["cpu_millicores"], end)),
        "cpu_millicores_peak": rounded(max((v for _, v in cpu_line), default=None)),
        "memory_mib": rounded(prom.query(q["memory_mib"], end)),
        "memory_mib_mean": rounded(prom.query(q["memory_mib_mean"], end)),
        "timeline": {
            "cpu_millicores": [(round(t - start, 1), round(v, 1)) for t, v in cpu_line],
            "memory_mib": [(round(t - start, 1), round(v, 1)) for t, v in mem_line],
        },
        "queries": {k: v for k, v in q.items() if prom.node or not k.startswith("node")},
    }
    if prom.node:
        out["node_cpu_millicores"] = rounded(prom.query(q["node_cpu_millicores"], end))
    return out
