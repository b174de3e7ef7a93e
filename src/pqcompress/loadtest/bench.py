"""``bench_serving``: every variant of a spec started as a service, timed to ready, warmed up
and driven through every profile; every figure goes into the results store (resumable: a
finished (variant, profile, repeat) is not run again).

A spec (YAML, see recipes/bench_serving_*.yaml and docs/loadtest.md)::

    name: vgg16-cpu
    payloads: {dataset: cifar10, count: 256}     # or {file: image.png}
    prometheus: auto                             # auto | URL | off
    repeats: 1          # load runs per (variant, profile)
    ready_repeats: 3    # start -> /readyz 200 measurements per variant
    warmup_requests: 20
    variants:
      - {name: float32, model: float32.pqz, bits: 32, alpha: 0.0, serve: {runtime: torch}}
      - {name: int8-a1.25, model: a125.pqz, bits: 8, alpha: 1.25, serve: {int8: true}}
    profiles:
      - {name: peak-75, kind: ramp, peak_users: 75, ramp_up_s: 20, hold_s: 40,
         ramp_down_s: 20, user_rps: 0.2}

``serve`` holds ``pqcompress serve`` settings (ServeSettings fields: runtime, threads,
workers, int8, max_in_flight, ...). The first variant (or the one with ``baseline: true``) is
the reference of every ratio in the report. With ``docker: IMAGE`` (or ``--docker``), each
variant runs in that container image instead of a local process.
"""

from __future__ import annotations

import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from pqcompress.errors import ConfigError
from pqcompress.loadtest import monitor
from pqcompress.loadtest.errors import LoadTestError, read_config
from pqcompress.loadtest.payloads import Payload, dataset_payloads, file_payload
from pqcompress.loadtest.profiles import Profile, profile_from_dict
from pqcompress.loadtest.runner import run_loadtest
from pqcompress.loadtest.target import free_port
from pqcompress.results.serving import ServingStore

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_RSS = re.compile(r"^pqc_service_resident_memory_bytes\s+([0-9.eE+]+)", re.M)
CLOSED_LOOP_REQUESTS = 100  # sequential batch-1 requests per variant, before its profiles
_PEAK = re.compile(r"^pqc_service_peak_resident_memory_bytes\s+([0-9.eE+]+)", re.M)
CONTAINER_PORT = 8080


@dataclass(frozen=True)
class VariantSpec:
    name: str
    model: str
    serve: dict[str, Any] = field(default_factory=dict)
    bits: int | None = None
    alpha: float | None = None
    form: str | None = None
    baseline: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name, "variant name")
        for fixed in ("model", "host", "port"):
            if fixed in self.serve:
                raise LoadTestError(
                    f"variant {self.name}: serve.{fixed} is set by the bench; remove it"
                )


@dataclass(frozen=True)
class ProfileSpec:
    name: str
    profile: Profile


@dataclass(frozen=True)
class BenchSpec:
    name: str
    variants: tuple[VariantSpec, ...]
    profiles: tuple[ProfileSpec, ...]
    payloads: dict[str, Any]
    repeats: int = 1
    ready_repeats: int = 3
    warmup_requests: int = 20
    prometheus: str = "auto"
    timeout_s: float = 10.0
    max_in_flight: int = 512
    cooldown_s: float = 3.0
    ready_timeout_s: float = 180.0
    docker: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def baseline(self) -> VariantSpec:
        marked = [v for v in self.variants if v.baseline]
        return marked[0] if marked else self.variants[0]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["profiles"] = [{"name": p.name, **p.profile.to_dict()} for p in self.profiles]
        return out

    @classmethod
    def from_yaml(cls, path: str | Path) -> BenchSpec:
        from pqcompress.yamlio import read_yaml_file

        p = Path(path)
        try:
            data = read_yaml_file(p, "bench spec")
        except Exception as exc:  # ConfigError from the YAML reader: one line
            raise LoadTestError(str(exc)) from None
        return cls.from_dict(data, default_name=p.stem, base=p.parent)

    @classmethod
    def from_dict(
        cls, data: Any, *, default_name: str = "bench", base: Path | None = None
    ) -> BenchSpec:
        if not isinstance(data, Mapping):
            raise LoadTestError(f"a bench spec must be a mapping, got {type(data).__name__}")
        profiles = tuple(_profile(p, i) for i, p in enumerate(_list(data, "profiles")))
        _list(data, "variants")
        if "payloads" not in data or not isinstance(data["payloads"], Mapping):
            raise LoadTestError(
                "the bench spec needs payloads: {dataset: NAME, count: N} or {file: PATH}"
            )
        env = {str(k): str(v) for k, v in (data.get("env") or {}).items()}
        values = {"name": default_name, **data, "profiles": [], "env": env}
        spec = replace(read_config(cls, values, "bench spec"), profiles=profiles)
        spec.check()
        return spec

    def check(self) -> None:
        _check_name(self.name, "bench name")
        for what, names in (
            ("variant", [v.name for v in self.variants]),
            ("profile", [p.name for p in self.profiles]),
        ):
            if len(set(names)) != len(names):
                raise LoadTestError(f"{what} names must be unique, got {names}")
        for key, low, high in (
            ("repeats", 1, 100),
            ("ready_repeats", 0, 100),
            ("warmup_requests", 0, 100_000),
            ("max_in_flight", 1, 10_000),
        ):
            value = getattr(self, key)
            if not isinstance(value, int) or not low <= value <= high:
                raise LoadTestError(f"{key} must be an integer in {low}..{high}, got {value!r}")
        for key in ("timeout_s", "cooldown_s", "ready_timeout_s"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not 0 <= value <= 3600:
                raise LoadTestError(f"{key} must be a number of seconds in 0..3600")
        if sum(v.baseline for v in self.variants) > 1:
            raise LoadTestError("at most one variant may say baseline: true")


def _check_name(value: Any, where: str) -> None:
    if not _NAME.match(str(value)):
        raise LoadTestError(f"{where} {value!r}: use letters, digits, . _ + - (at most 64)")


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list) or not value:
        raise LoadTestError(f"the bench spec needs a non-empty list '{key}'")
    return value


def _profile(data: Any, i: int) -> ProfileSpec:
    if not isinstance(data, Mapping) or "name" not in data:
        raise LoadTestError(f"profiles[{i}] must be a mapping with a name")
    rest = {k: v for k, v in data.items() if k != "name"}
    _check_name(data["name"], f"profiles[{i}].name")
    return ProfileSpec(str(data["name"]), profile_from_dict(rest))


class Service:
    """One variant's service: a local ``pqcompress serve`` process or a container."""

    def __init__(
        self, variant: VariantSpec, port: int, *, docker: str | None, env: dict[str, str]
    ) -> None:
        from pqcompress.serve.settings import ServeSettings

        model = Path(variant.model).resolve()
        if not model.is_file():
            raise LoadTestError(f"variant {variant.name}: model {model} is not a file")
        self.variant = variant
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.docker = docker
        self.name = f"pqc-bench-{variant.name}-{port}".replace("+", "p")
        try:
            inside = ServeSettings(
                model=f"/models/{model.name}" if docker else str(model),
                host="0.0.0.0" if docker else "127.0.0.1",
                port=CONTAINER_PORT if docker else port,
                **variant.serve,
            )
        except ConfigError as exc:
            raise LoadTestError(f"variant {variant.name}: serve settings: {exc}") from None
        self.settings_env = inside.to_env()
        self.model = model
        self.extra_env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def command(self) -> list[str]:
        if self.docker:
            cmd = ["docker", "run", "--rm", "--name", self.name]
            cmd += ["-p", f"127.0.0.1:{self.port}:{CONTAINER_PORT}"]
            cmd += ["-v", f"{self.model.parent}:/models:ro"]
            for k, v in {**self.extra_env, **self.settings_env}.items():
                cmd += ["-e", f"{k}={v}"]
            return [*cmd, self.docker, self.settings_env["PQC_MODEL"]]
        return [sys.executable, "-m", "pqcompress.cli.main", "serve"]

    def start(self, timeout_s: float, log_dir: Path) -> float:
        """Start it and return the seconds until ``/readyz`` first answered 200."""
        env = {**os.environ, **self.extra_env, **(self.settings_env if not self.docker else {})}
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{self.variant.name}.log"
        log = self.log_path.open("ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            self.command(), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        with httpx.Client(timeout=2.0) as client:
            while True:
                if self.proc.poll() is not None:
                    raise LoadTestError(
                        f"variant {self.variant.name}: the service exited "
                        f"({self.proc.returncode}): {self._log_tail()}"
                    )
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return time.monotonic() - t0
                except httpx.HTTPError:
                    pass
                if time.monotonic() - t0 > timeout_s:
                    self.stop()
                    raise LoadTestError(
                        f"variant {self.variant.name}: not ready within {timeout_s:g} s: "
                        f"{self._log_tail()}"
                    )
                time.sleep(0.01)

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return self.log_path.read_text(errors="replace")[-300:].strip().replace("\n", " | ")

    def rss_mib(self, pattern: re.Pattern[str] = _RSS) -> float | None:
        """The service's resident MiB now (its own ``pqc_service_resident_memory_bytes``)."""
        try:
            text = httpx.get(f"{self.url}/metrics", timeout=5.0).text
        except httpx.HTTPError:
            return None
        match = pattern.search(text)
        return round(float(match.group(1)) / 2**20, 2) if match else None

    def peak_mib(self) -> float | None:
        """The service's lifetime peak resident MiB (VmHWM, loading included)."""
        return self.rss_mib(_PEAK)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.docker:
            subprocess.run(["docker", "stop", "-t", "20", self.name], capture_output=True)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None


def warm_up(url: str, payloads: list[Payload], n: int) -> None:
    """``n`` sequential predictions (answers must be 200)."""
    with httpx.Client(base_url=url, timeout=30.0) as client:
        for i in range(n):
            body, ctype = payloads[i % len(payloads)]
            reply = client.post("/v1/predict", content=body, headers={"Content-Type": ctype})
            if reply.status_code != 200:
                raise LoadTestError(
                    f"warm-up request {i} answered {reply.status_code}: {reply.text[:200]}"
                )


def closed_loop(url: str, payloads: list[Payload], n: int) -> dict[str, float]:
    """``n`` sequential batch-1 predictions, one at a time (a closed loop: no queueing): the
    median and p95 latency in ms, the service's own cost per request without load."""
    times = []
    with httpx.Client(base_url=url, timeout=30.0) as client:
        for i in range(n):
            body, ctype = payloads[i % len(payloads)]
            t0 = time.perf_counter()
            reply = client.post("/v1/predict", content=body, headers={"Content-Type": ctype})
            times.append(1000 * (time.perf_counter() - t0))
            if reply.status_code != 200:
                raise LoadTestError(f"closed-loop request {i} answered {reply.status_code}")
    times.sort()
    return {
        "closed_loop_p50_ms": round(times[len(times) // 2], 3),
        "closed_loop_p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 3),
    }


def _model_summary(path: Path) -> dict[str, Any]:
    """Parameters, and for a shrunk file the parameters and MACs before and after, of the
    variant's model file (nothing is decoded)."""
    from pqcompress.codec.portable import model_info

    try:
        info = model_info(path)
    except Exception:  # a .onnx file, or a file the service itself will refuse
        return {}
    shrunk = info.get("shrunk") or {}
    return {
        "params": info.get("params"),
        "params_before_shrink": shrunk.get("params_before"),
        "macs_before_shrink": shrunk.get("macs_before"),
        "macs_after_shrink": shrunk.get("macs_after"),
    }


def spec_payloads(spec: BenchSpec) -> list[Payload]:
    p = spec.payloads
    if "file" in p:
        return [file_payload(p["file"])]
    if "dataset" in p:
        return dataset_payloads(str(p["dataset"]), int(p.get("count", 256)), root=p.get("root"))
    raise LoadTestError("payloads must give dataset (with count) or file")


def machine() -> dict[str, Any]:
    from pqcompress.cpus import cpu_budget, cpu_model

    model = cpu_model()
    return {
        "cpus": os.cpu_count(),
        "cpu_budget": cpu_budget().to_dict(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def run_bench(
    spec: BenchSpec,
    store_path: str | Path,
    *,
    docker: str | None = None,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run (or resume) ``spec`` into the store; return the stored runs of the bench."""
    say = log or (lambda _m: None)
    image = docker or spec.docker
    port = free_port()
    services = [Service(v, port, docker=image, env=spec.env) for v in spec.variants]
    logs = Path(store_path).parent / f"{spec.name}-logs"
    with ServingStore(store_path) as store:
        store.record_bench(spec.name, spec.to_dict(), machine())
        payloads = spec_payloads(spec)
        url = f"http://127.0.0.1:{port}"
        prom: monitor.Prometheus | None = None
        if spec.prometheus == "auto":
            prom = monitor.Prometheus.start(url)
        elif spec.prometheus != "off":
            prom = monitor.Prometheus.connect(spec.prometheus)
        try:
            for svc in services:
                _bench_variant(spec, store, svc, payloads, prom, logs, say)
        finally:
            if prom is not None:
                prom.close()
        return store.runs(spec.name)


def _bench_variant(
    spec: BenchSpec,
    store: ServingStore,
    svc: Service,
    payloads: list[Payload],
    prom: monitor.Prometheus | None,
    logs: Path,
    say: Callable[[str], None],
) -> None:
    v = svc.variant
    file_bytes = svc.model.stat().st_size
    for r in range(store.ready_count(spec.name, v.name), spec.ready_repeats):
        try:
            ready = svc.start(spec.ready_timeout_s, logs)
            rss = svc.rss_mib()
        finally:
            svc.stop()
        store.add_ready(spec.name, v.name, r, ready, rss, file_bytes)
        say(f"{v.name}: ready in {ready:.2f} s ({rss} MiB) [{r + 1}/{spec.ready_repeats}]")
    pending = [
        (p, rep)
        for p in spec.profiles
        for rep in range(spec.repeats)
        if not store.has_run(spec.name, v.name, p.name, rep)
    ]
    if not pending:
        say(f"{v.name}: every profile already measured")
        return
    try:
        ready = svc.start(spec.ready_timeout_s, logs)
        warm_up(svc.url, payloads, spec.warmup_requests)
        say(f"{v.name}: up in {ready:.2f} s, warmed up ({spec.warmup_requests} requests)")
        unloaded = closed_loop(svc.url, payloads, CLOSED_LOOP_REQUESTS)
        say(
            f"{v.name}: closed loop, batch 1: p50 {unloaded['closed_loop_p50_ms']} ms, "
            f"p95 {unloaded['closed_loop_p95_ms']} ms"
        )
        model = _model_summary(svc.model)
        for p, rep in pending:
            if prom is not None:
                prom.wait_target_up()
            say(f"{v.name} / {p.name} (repeat {rep}): {p.profile.duration_s:g} s")
            result = run_loadtest(
                svc.url,
                p.profile,
                payloads,
                prometheus=prom,
                timeout_s=spec.timeout_s,
                max_in_flight=spec.max_in_flight,
                seed=rep,
                log=say,
            )
            s = result.summary
            s["variant"] = asdict(v)
            s["file_bytes"] = file_bytes
            s["model"] = model
            s.update(unloaded)
            s["peak_memory_mib"] = svc.peak_mib()  # lifetime, loading included
            store.add_run(spec.name, v.name, p.name, rep, s, result.history)
            say(
                f"{v.name} / {p.name}: p95 {s['p95_ms']} ms, {s.get('cpu_millicores')} mCPU, "
                f"{s.get('memory_mib')} MiB, errors {s['errors_total']}"
            )
            time.sleep(spec.cooldown_s)
    finally:
        svc.stop()
