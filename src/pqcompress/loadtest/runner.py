"""``run_loadtest``: drive a service with an open-model profile (Locust, in a child process),
optionally read its CPU and memory from Prometheus, and write history and summary files."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pqcompress.atomic import write_text_atomic
from pqcompress.loadtest import monitor
from pqcompress.loadtest.errors import LoadTestError
from pqcompress.loadtest.payloads import Payload
from pqcompress.loadtest.profiles import Profile
from pqcompress.loadtest.results import HISTORY_COLUMNS, history, summarize
from pqcompress.loadtest.target import check_url

PREDICT_PATH = "/v1/predict"
CHILD_GRACE_S = 90.0


@dataclass(frozen=True)
class LoadTestResult:
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    out_dir: Path | None

    @property
    def failed(self) -> bool:
        """True when errors other than documented shedding (503) occurred."""
        return bool(self.summary["undocumented_errors"])


def wait_ready(url: str, timeout_s: float = 30.0) -> None:
    """Until ``GET /readyz`` answers 200, bounded; LoadTestError naming what came back."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        try:
            reply = httpx.get(f"{url}/readyz", timeout=2.0)
            if reply.status_code == 200:
                return
            last = f"HTTP {reply.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        if time.monotonic() >= deadline:
            raise LoadTestError(
                f"the service at {url} is not ready (GET /readyz: {last} after {timeout_s:g} s); "
                "start it with `pqcompress serve MODEL` first"
            )
        time.sleep(0.1)


def open_monitor(
    prometheus: str | monitor.Prometheus | None, url: str
) -> monitor.Prometheus | None:
    """``"auto"``: start a Prometheus scraping ``url``; a URL: use that server; ``"off"``/None:
    no monitoring; a Prometheus instance is used as it is."""
    if prometheus is None or prometheus == "off":
        return None
    if isinstance(prometheus, monitor.Prometheus):
        return prometheus
    if prometheus == "auto":
        return monitor.Prometheus.start(url)
    return monitor.Prometheus.connect(check_url(prometheus))


def run_loadtest(
    url: str,
    profile: Profile,
    payloads: Sequence[Payload],
    *,
    out_dir: str | Path | None = None,
    prometheus: str | monitor.Prometheus | None = "off",
    path: str = PREDICT_PATH,
    timeout_s: float = 10.0,
    max_in_flight: int = 512,
    seed: int = 0,
    ready_timeout_s: float = 30.0,
    log: Callable[[str], None] | None = None,
) -> LoadTestResult:
    """Run ``profile`` against ``url`` + ``path`` and summarise it (results.py); with
    ``out_dir``, write ``history.csv``, ``history.json`` and ``summary.json`` there.

    The service must answer ``/readyz`` within ``ready_timeout_s`` first. Load comes from Locust in a child process;
    the run is bounded by the profile's duration + ``timeout_s`` (+ a grace period to start
    and stop). Prometheus (``"auto"``, a URL, or ``"off"``) adds ``cpu_millicores`` and
    ``memory_mib`` to the summary and per-second columns to the history.
    """
    say = log or (lambda _m: None)
    url = check_url(url)
    if not payloads:
        raise LoadTestError("no payloads: give --payload FILE or --dataset NAME")
    if not (0 < timeout_s <= 600):
        raise LoadTestError(f"timeout_s must be in (0, 600], got {timeout_s}")
    if not (1 <= max_in_flight <= 10_000):
        raise LoadTestError(f"max_in_flight must be in 1..10000, got {max_in_flight}")
    if not path.startswith("/"):
        raise LoadTestError(f"path must start with '/', got {path!r}")
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        if out.exists() and not out.is_dir():
            raise LoadTestError(f"--out {out} exists and is not a directory")
        out.mkdir(parents=True, exist_ok=True)
    wait_ready(url, ready_timeout_s)
    own_monitor = not isinstance(prometheus, monitor.Prometheus)
    prom = open_monitor(prometheus, url)
    try:
        if prom is not None:
            prom.wait_target_up()
        events = _run_child(url, path, profile, payloads, timeout_s, max_in_flight, seed, say)
        started = float(events["started_unix"])
        records = [tuple(r) for r in events["records"]]
        rows = history(records, events["users"], profile.duration_s)
        summary = summarize(records, rows, profile.duration_s)
        summary.update(
            url=url,
            path=path,
            profile=profile.to_dict(),
            started_unix=round(started, 3),
            ended_unix=round(started + profile.duration_s, 3),
            unfinished=int(events["unfinished"]),
            max_in_flight=max_in_flight,
            timeout_s=timeout_s,
            payloads=len(payloads),
        )
        if prom is not None:
            time.sleep(2.5)  # the last scrapes of the run land in the TSDB
            used = monitor.usage(prom, started, started + profile.duration_s)
            _merge_timeline(rows, used.pop("timeline"))
            summary.update(used)
    finally:
        if prom is not None and own_monitor:
            prom.close()
    if out is not None:
        write_outputs(out, summary, rows)
    return LoadTestResult(summary, rows, out)


def _merge_timeline(rows: list[dict[str, Any]], timeline: dict[str, list[Any]]) -> None:
    for key, points in timeline.items():
        by_second = {int(t): v for t, v in points}
        for row in rows:
            row[key] = by_second.get(row["second"])


def write_outputs(out: Path, summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    extra = [k for k in rows[0] if k not in HISTORY_COLUMNS] if rows else []
    columns = [*HISTORY_COLUMNS, *extra]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    write_text_atomic(out / "history.csv", buf.getvalue())
    write_text_atomic(out / "history.json", json.dumps(rows, indent=1) + "\n")
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")


def _run_child(
    url: str,
    path: str,
    profile: Profile,
    payloads: Sequence[Payload],
    timeout_s: float,
    max_in_flight: int,
    seed: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pqc-loadtest-") as tmp:
        work = Path(tmp)
        index, offset = [], 0
        with (work / "payloads.bin").open("wb") as f:
            for body, ctype in payloads:
                f.write(body)
                index.append([offset, len(body), ctype])
                offset += len(body)
        plan = {
            "url": url,
            "path": path,
            "profile": profile.to_dict(),
            "payload_file": str(work / "payloads.bin"),
            "payload_index": index,
            "timeout_s": timeout_s,
            "max_in_flight": max_in_flight,
            "seed": seed,
            "events_file": str(work / "events.json"),
            "progress_s": 5.0,
        }
        (work / "plan.json").write_text(json.dumps(plan))
        limit = profile.duration_s + timeout_s + CHILD_GRACE_S
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        child = subprocess.Popen(
            [sys.executable, "-m", "pqcompress.loadtest._locust", str(work / "plan.json")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        tail: list[str] = []
        deadline = time.monotonic() + limit
        try:
            assert child.stderr is not None
            os.set_blocking(child.stderr.fileno(), False)
            while child.poll() is None:
                if time.monotonic() > deadline:
                    child.kill()
                    raise LoadTestError(
                        f"the load generator did not finish within {limit:.0f} s; stopped it"
                    )
                _drain(child.stderr, tail, say)
                time.sleep(0.2)
            _drain(child.stderr, tail, say)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=30)
        events_file = work / "events.json"
        if child.returncode != 0 or not events_file.is_file():
            detail = " | ".join(tail[-5:]) or f"exit status {child.returncode}"
            raise LoadTestError(f"the load generator failed: {detail}")
        events: dict[str, Any] = json.loads(events_file.read_text())
        return events


def _drain(stream: Any, tail: list[str], say: Callable[[str], None]) -> None:
    while True:
        try:
            line = stream.readline()
        except (BlockingIOError, OSError):
            return
        if not line:
            return
        line = line.rstrip()
        if line.startswith("loadtest "):
            say(line)
        elif line:
            tail.append(line)
            del tail[:-20]
