"""``pqcompress loadtest`` and ``pqcompress bench-serving``: open-model load, monitored."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from pqcompress.cli.options import add_output


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "loadtest",
        help="drive a service with an open-model load profile (Locust), p95 / CPU / memory",
        description="Open-model load (arrivals never wait for answers) against a running "
        "`pqcompress serve`, headless, through Locust. Writes OUT/history.csv, "
        "OUT/history.json and OUT/summary.json; exits 1 when errors other than documented "
        "shedding (503) occur. docs/loadtest.md.",
    )
    p.add_argument("url", nargs="?", default="http://127.0.0.1:8080", metavar="URL")
    p.add_argument("--profile", choices=("ramp", "rate"), default="ramp")
    p.add_argument("--peak-users", type=int, default=75, help="ramp: users at the peak")
    p.add_argument("--ramp-up", type=float, default=30.0, metavar="S", help="ramp: seconds up")
    p.add_argument("--hold", type=float, default=60.0, metavar="S", help="ramp: seconds at peak")
    p.add_argument("--ramp-down", type=float, default=30.0, metavar="S", help="ramp: seconds down")
    p.add_argument(
        "--user-rps", type=float, default=1.0, help="ramp: requests/s of each user (Poisson)"
    )
    p.add_argument("--rps", type=float, default=None, help="rate: arrivals per second")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="rate: seconds")
    p.add_argument("--payload", type=Path, action="append", default=[], metavar="FILE")
    p.add_argument("--dataset", default=None, help="send test images of this dataset")
    p.add_argument("--data-root", default=None)
    p.add_argument("--payload-count", type=int, default=256)
    p.add_argument(
        "--from-spec",
        action="store_true",
        help="make JSON bodies from the served model's input spec (GET URL/v1/model): token "
        "ids in range, masks of ones, floats N(0, 1)",
    )
    p.add_argument(
        "--axis",
        action="append",
        default=[],
        metavar="NAME=SIZE",
        help="--from-spec: the size of a dynamic axis, e.g. --axis seq=128 (default 8)",
    )
    add_output(
        p, type=Path, metavar="DIR", help="write DIR/history.csv, history.json and summary.json"
    )
    p.add_argument(
        "--prometheus",
        default=None,
        metavar="auto|URL|off",
        help="auto: start a Prometheus scraping the service (default when the binary is "
        "installed); URL: a server that scrapes it; off: no CPU/memory figures",
    )
    p.add_argument("--prometheus-job", default="pqcompress", help="scrape job of the service")
    p.add_argument("--path", default="/v1/predict")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="per request")
    p.add_argument("--max-in-flight", type=int, default=512)
    p.add_argument(
        "--ready-timeout", type=float, default=30.0, metavar="S", help="wait for /readyz 200"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--jmx",
        type=Path,
        default=None,
        metavar="PLAN.jmx",
        help="write the profile as a JMeter test plan (open-model thread group) and exit",
    )
    p.set_defaults(func=_loadtest)


def profile_from_args(args: Any) -> Any:
    from pqcompress.loadtest import LoadTestError, RampProfile, RateProfile

    if args.profile == "rate":
        if args.rps is None or args.duration is None:
            raise LoadTestError("--profile rate needs --rps R and --duration S")
        return RateProfile(rps=args.rps, duration_s=args.duration)
    if args.rps is not None or args.duration is not None:
        raise LoadTestError("--rps and --duration belong to --profile rate")
    return RampProfile(
        peak_users=args.peak_users,
        ramp_up_s=args.ramp_up,
        hold_s=args.hold,
        ramp_down_s=args.ramp_down,
        user_rps=args.user_rps,
    )


def _payloads(args: Any) -> list[tuple[bytes, str]]:
    from pqcompress.loadtest import LoadTestError, dataset_payloads, file_payload
    from pqcompress.loadtest.payloads import spec_payloads

    given = [bool(args.payload), bool(args.dataset), bool(args.from_spec)]
    if sum(given) > 1:
        raise LoadTestError("give one of --payload FILE, --dataset NAME or --from-spec")
    if args.payload:
        return [file_payload(f) for f in args.payload]
    if args.dataset:
        return dataset_payloads(args.dataset, args.payload_count, root=args.data_root)
    if args.from_spec:
        return spec_payloads(
            args.url,
            args.payload_count,
            sizes=_axes(args.axis),
            seed=args.seed,
            ready_timeout_s=args.ready_timeout,
        )
    raise LoadTestError(
        "no payloads: give --dataset NAME (its test samples), --payload FILE or --from-spec"
    )


def _axes(items: list[str]) -> dict[str, int]:
    from pqcompress.loadtest import LoadTestError

    out = {}
    for item in items:
        name, _, size = item.partition("=")
        if not name or not size.isdigit() or int(size) < 1:
            raise LoadTestError(f"--axis {item!r}: expected NAME=SIZE, e.g. seq=128")
        out[name] = int(size)
    return out


def _loadtest(args: Any) -> int:
    from pqcompress.loadtest import run_loadtest
    from pqcompress.loadtest.monitor import Prometheus

    profile = profile_from_args(args)
    if args.jmx is not None:
        return _write_jmx(args, profile)
    payloads = _payloads(args)
    prometheus = args.prometheus
    if prometheus is None:
        prometheus = "auto" if shutil.which("prometheus") else "off"
        if prometheus == "off":
            print("note: no prometheus binary; CPU and memory are not measured (--prometheus)")
    if prometheus not in ("auto", "off"):
        prometheus = Prometheus.connect(prometheus, job=args.prometheus_job)
    try:
        result = run_loadtest(
            args.url,
            profile,
            payloads,
            out_dir=args.out,
            prometheus=prometheus,
            path=args.path,
            timeout_s=args.timeout,
            max_in_flight=args.max_in_flight,
            seed=args.seed,
            ready_timeout_s=args.ready_timeout,
            log=print,
        )
    finally:
        if isinstance(prometheus, Prometheus):
            prometheus.close()
    s = result.summary
    line = (
        f"{s['requests']} requests, {s['throughput_rps']} ok/s, p50 {s['p50_ms']} ms, "
        f"p95 {s['p95_ms']} ms (sd {s['p95_sd_ms']}), p99 {s['p99_ms']} ms"
    )
    if s.get("cpu_millicores") is not None:
        line += f", {s['cpu_millicores']} mCPU, {s['memory_mib']} MiB"
    print(line)
    errors = {k: v for k, v in s["errors"].items() if v}
    if errors:
        print("errors: " + ", ".join(f"{k} {v}" for k, v in errors.items()))
    if args.out is not None:
        print(f"wrote {args.out}/summary.json, history.csv, history.json")
    if result.failed:
        print(f"failed: {s['undocumented_errors']} errors beyond documented shedding (503)")
        return 1
    return 0


def _write_jmx(args: Any, profile: Any) -> int:
    from pqcompress.loadtest import LoadTestError
    from pqcompress.loadtest.jmx import write_jmx
    from pqcompress.loadtest.payloads import file_payload

    if len(args.payload) == 1:
        _, ctype = file_payload(args.payload[0])  # refuses a missing, empty or odd file
        payload = args.payload[0].resolve()
    elif args.dataset:
        body, ctype = _payloads(args)[0]
        payload = args.jmx.with_name(args.jmx.stem + "-payload.png").resolve()
        payload.write_bytes(body)
    else:
        raise LoadTestError("--jmx needs one --payload FILE or --dataset NAME for the body")
    path = write_jmx(
        args.jmx, profile, args.url, payload, ctype, path=args.path, timeout_s=args.timeout
    )
    print(f"wrote {path} (JMeter >= 5.5 open-model thread group; body {payload})")
    return 0


def register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench-serving",
        help="start each variant of SPEC.yaml as a service, time it to ready, load it",
        description="For each variant of SPEC.yaml: start the service (a local process, or "
        "the container image with --docker), time start to /readyz 200, warm up, run every "
        "profile with Prometheus monitoring, stop it, and store every figure in the results "
        "store (rerun to resume). Render with `pqcompress report RESULTS.db`. "
        "docs/loadtest.md.",
    )
    p.add_argument("spec", metavar="SPEC.yaml")
    p.add_argument("--store", required=True, metavar="RESULTS.db")
    p.add_argument(
        "--docker",
        default=None,
        metavar="IMAGE",
        help="run each variant in this image (needs a running Docker daemon)",
    )
    p.set_defaults(func=_bench)


def _bench(args: Any) -> int:
    from pqcompress.loadtest.bench import BenchSpec, run_bench

    spec = BenchSpec.from_yaml(args.spec)
    if args.docker and shutil.which("docker") is None:
        from pqcompress.loadtest import LoadTestError

        raise LoadTestError("--docker needs the docker command and a running daemon")
    runs = run_bench(spec, args.store, docker=args.docker, log=print)
    print(f"{len(runs)} load runs of bench '{spec.name}' in {args.store}")
    bad = [r for r in runs if r["summary"]["undocumented_errors"]]
    for r in bad:
        print(
            f"errors: {r['variant']} / {r['profile']}: {r['summary']['undocumented_errors']} "
            "beyond documented shedding"
        )
    return 1 if bad else 0
