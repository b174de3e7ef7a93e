"""Run the service on uvicorn: one process (default) or ``workers`` processes; SIGTERM drains.

One worker: the app loads the model after the socket is bound (/healthz answers, /readyz is
503 until warm); a load failure stops the server and :func:`serve` raises ModelLoadError.
Several workers: the model is loaded once first (fail fast), then uvicorn's supervisor starts
the workers from ``PQC_*`` variables, and metrics go through prometheus multiprocess mode.
SIGTERM stops accepting connections, lets in-flight requests finish (up to
``drain_timeout_s``) and returns 0.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
from types import FrameType
from typing import Any

import uvicorn

from pqcompress.errors import PQCError
from pqcompress.serve.app import create_app
from pqcompress.serve.errors import ModelLoadError
from pqcompress.serve.metrics import MULTIPROC_ENV, ROOT_PID_ENV
from pqcompress.serve.protocol import HeaderTimeoutH11Protocol, protocol_for
from pqcompress.serve.runtime import check_model_file, load_served_model
from pqcompress.serve.settings import ServeSettings


class _DrainingServer(uvicorn.Server):
    """uvicorn.Server that marks the service as draining (/readyz 503) when asked to stop."""

    def __init__(self, config: uvicorn.Config, state: Any) -> None:
        super().__init__(config)
        self.service_state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.service_state.draining = True
        super().handle_exit(sig, frame)


def _uvicorn_kwargs(settings: ServeSettings) -> dict[str, Any]:
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": settings.access_log,
        "timeout_graceful_shutdown": settings.drain_timeout_s,
        "timeout_keep_alive": settings.keep_alive_s,
        # one process: the timeout rides on the class; workers read PQC_HEADER_TIMEOUT_S
        "http": (
            protocol_for(settings.header_timeout_s)
            if settings.workers == 1
            else HeaderTimeoutH11Protocol
        ),
        "lifespan": "on",
        "server_header": False,
        "log_config": _log_config(settings.log_level),
    }


def _log_config(level: str) -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    cfg = {**LOGGING_CONFIG, "loggers": dict(LOGGING_CONFIG["loggers"])}
    cfg["loggers"]["pqcompress"] = {"handlers": ["default"], "level": level.upper()}
    return cfg


def serve(settings: ServeSettings) -> int:
    """Serve until SIGTERM/SIGINT; 0 after a clean drain. ModelLoadError if the model fails."""
    check_model_file(settings.model)
    os.environ[ROOT_PID_ENV] = str(os.getpid())  # pqc_service_* metrics: this process's tree
    if settings.workers > 1:
        return _serve_workers(settings)
    app = create_app(settings)
    state = app.state.service
    server = _DrainingServer(uvicorn.Config(app, **_uvicorn_kwargs(settings)), state)

    def fatal() -> None:
        server.should_exit = True

    state.on_fatal = fatal
    # uvicorn re-raises SIGTERM after its graceful shutdown; with this handler in place the
    # re-raised signal is a no-op and the process exits 0 after draining.
    previous = signal.signal(signal.SIGTERM, _after_drain)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if state.load_error:
        raise ModelLoadError(state.load_error)
    if not server.started:
        raise PQCError(f"the server could not start on {settings.host}:{settings.port}")
    return 0


def _after_drain(sig: int, frame: FrameType | None) -> None:
    logging.getLogger("pqcompress.serve").info("drained; exiting")


def _serve_workers(settings: ServeSettings) -> int:
    model = load_served_model(settings)  # refuse a bad model before starting any worker
    del model
    if not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="pqc-metrics-")
    os.environ.update(settings.to_env())
    previous = signal.signal(signal.SIGTERM, _after_drain)
    try:
        uvicorn.run(
            "pqcompress.serve.app:app_from_env",
            factory=True,
            workers=settings.workers,
            **_uvicorn_kwargs(settings),
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
