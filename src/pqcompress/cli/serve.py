"""``pqcompress serve``: run the HTTP inference service for a .pqz or .onnx model."""

from __future__ import annotations

import argparse

from pqcompress.cli.options import add_factory
from pqcompress.serve.choices import LOG_LEVELS, RUNTIMES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a .pqz (or .onnx) model over HTTP: /v1/predict, /v1/model, /metrics",
        description="Run the inference service (docs/serving.md). Every option can also be set "
        "by a PQC_<OPTION> environment variable (e.g. PQC_MAX_BATCH=16); flags win.",
    )
    p.add_argument("model", metavar="MODEL", nargs="?", default=None, help="a .pqz or .onnx file")
    p.add_argument("--runtime", choices=RUNTIMES, default=None, help="default onnxruntime")
    p.add_argument("--host", default=None, help="default 127.0.0.1 (0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=None, help="default 8080")
    p.add_argument("--workers", type=int, default=None, help="processes (default 1)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default 1)")
    p.add_argument(
        "--inference-threads",
        type=int,
        default=None,
        help="inferences at once (default: the CPUs the process may use, cgroup quota included)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--int8", dest="int8", action="store_const", const=True, default=None,
        help="require int8 kernels, ONNX Runtime only (default: when the model's form allows it)",
    )  # fmt: skip
    g.add_argument("--no-int8", dest="int8", action="store_const", const=False, help="float graph")
    p.add_argument("--max-body-bytes", type=int, default=None, help="default 8 MiB")
    p.add_argument("--max-batch", type=int, default=None, help="inputs per request (default 64)")
    p.add_argument(
        "--max-dim",
        type=int,
        default=None,
        help="a model with named inputs: the longest dynamic axis but the batch, e.g. a "
        "sequence (default 4096)",
    )
    p.add_argument("--request-timeout", dest="request_timeout_s", type=float, default=None)
    p.add_argument("--max-in-flight", type=int, default=None, help="default 32; then 503")
    p.add_argument("--drain-timeout", dest="drain_timeout_s", type=float, default=None)
    p.add_argument(
        "--header-timeout",
        dest="header_timeout_s",
        type=float,
        default=None,
        help="close a connection whose request head is not complete after S seconds (10)",
    )
    p.add_argument(
        "--keep-alive",
        dest="keep_alive_s",
        type=float,
        default=None,
        help="close an idle kept-alive connection after S seconds (5)",
    )
    p.add_argument("--log-level", choices=LOG_LEVELS, default=None)
    p.add_argument("--access-log", action="store_const", const=True, default=None)
    p.add_argument(
        "--ort-weights",
        choices=("external", "embedded"),
        default=None,
        help="external (default): the decoded weights go to ONNX Runtime as OrtValues "
        "(add_external_initializers); embedded: a serialized model with the weights inside",
    )
    add_factory(
        p,
        help="--runtime torch: your own model's factory, for a .pqz saved from it (opening a "
        "file never imports code; PQC_FACTORY)",
    )
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from pqcompress.serve.server import serve
    from pqcompress.serve.settings import ServeSettings

    fields = (
        "model", "runtime", "host", "port", "workers", "threads", "inference_threads", "int8",
        "max_body_bytes", "max_dim",
        "max_batch", "request_timeout_s", "max_in_flight", "drain_timeout_s", "header_timeout_s",
        "keep_alive_s", "log_level", "access_log", "ort_weights", "factory",
    )  # fmt: skip
    settings = ServeSettings.from_env(**{f: getattr(args, f) for f in fields})
    return serve(settings)
