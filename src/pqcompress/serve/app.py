"""The FastAPI app: /v1/predict, /v1/model, /healthz, /readyz, /metrics, limits and JSON errors.

``create_app(settings)`` returns the app; the model is loaded and warmed up in a background
thread once the server starts (so /healthz answers at once and /readyz says 503 until ready).
A load failure is logged and, under :func:`pqcompress.serve.server.serve`, stops the process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from pqcompress import __version__
from pqcompress.serve import schemas
from pqcompress.serve.bodies import (
    ACCEPTED,
    NPZ_TYPES,
    _batch_of_images,
    _json_tensor,
    _multipart_files,
    _npy_tensor,
    _predict_body,
    named_inputs,
    read_body,
)
from pqcompress.serve.budget import (
    MemoryBudget,
    Reservation,
    cgroup_memory_limit,
    derive_budget,
    resident_bytes,
)
from pqcompress.serve.errors import ModelLoadError, RequestError, error_response
from pqcompress.serve.metrics import ServiceMetrics, model_labels
from pqcompress.serve.middleware import PREDICT, ObserveMiddleware
from pqcompress.serve.preprocess import IMAGE_TYPES, softmax
from pqcompress.serve.runtime import ServedModel, load_served_model
from pqcompress.serve.settings import ServeSettings

log = logging.getLogger("pqcompress.serve")

_ERRORS = {
    code: {"model": schemas.ErrorResponse}
    for code in (400, 404, 405, 408, 413, 415, 422, 503, 504)
}  # fmt: skip


@dataclass
class ServiceState:
    """What the routes share: settings, metrics, the model once ready, lifecycle flags."""

    settings: ServeSettings
    metrics: ServiceMetrics
    model: ServedModel | None = None
    load_error: str | None = None
    draining: bool = False
    predicting: int = 0
    orphans: int = 0  # inferences still running whose request already ended (504, disconnect)
    on_fatal: Callable[[], None] | None = None
    executor: concurrent.futures.ThreadPoolExecutor | None = None
    threads: dict[str, Any] | None = None
    budget: MemoryBudget | None = None  # bytes requests may hold at once (set when ready)

    @property
    def ready(self) -> bool:
        return self.model is not None and not self.draining


def create_app(settings: ServeSettings, *, load_model: bool = True) -> FastAPI:
    """The service for ``settings``; ``load_model=False`` builds it without a model (OpenAPI)."""
    state = ServiceState(settings, ServiceMetrics())
    state.threads = thread_plan(settings)
    # threads start on first use; the executor bounds the inferences that run at once
    state.executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=state.threads["inference_threads"], thread_name_prefix="pqc-infer"
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_load(state)) if load_model else None
        yield
        if task is not None and not task.done():
            task.cancel()
        if state.executor is not None:
            # queued inferences are dropped; running ones finish while the loop still runs
            # (their results land on it), so nothing calls back into a closed loop
            shutdown = asyncio.to_thread(state.executor.shutdown, wait=True, cancel_futures=True)
            try:
                await asyncio.wait_for(shutdown, timeout=state.settings.drain_timeout_s)
            except asyncio.TimeoutError:
                log.warning(
                    "inferences still running after %ss; exiting", state.settings.drain_timeout_s
                )
        if state.metrics.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())

    app = FastAPI(
        title="pqcompress inference service",
        version=__version__,
        description="Predictions of one compressed model (.pqz or .onnx): images or tensors in, "
        "labels, class names and probabilities out. Errors are JSON {error: {code, message, "
        "status}}.",
        lifespan=lifespan,
    )
    app.state.service = state
    _document_model_inputs(app, state)
    _add_error_handlers(app, state)
    _add_routes(app, state)
    app.add_middleware(ObserveMiddleware, state=state, routes=app.router.routes)
    return app


def _document_model_inputs(app: FastAPI, state: ServiceState) -> None:
    """/openapi.json of a served model with named inputs documents them: the JSON body's
    ``inputs`` becomes an object with one nested array per input (dtype, shape)."""
    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        spec = base_openapi()
        model = state.model
        if model is None or not model.named_inputs:
            return spec
        spec = json.loads(json.dumps(spec))  # the cached base document stays model-free
        body = spec["paths"][PREDICT]["post"]["requestBody"]["content"]["application/json"]
        body["schema"]["properties"]["inputs"] = {
            "type": "object",
            "description": "the model's inputs by name (GET /v1/model: inputs)",
            "properties": {
                s.name: {
                    "type": "array",
                    "description": f"{s.dtype}, shape {list(s.shape)} (batch first; named "
                    "axes are dynamic)",
                }
                for s in model.inputs
            },
            "required": [s.name for s in model.inputs],
            "additionalProperties": False,
        }
        body["schema"]["x-pqcompress-inputs"] = [s.to_dict() for s in model.inputs]
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def thread_plan(settings: ServeSettings) -> dict[str, Any]:
    """The service's thread sizes: ``threads`` (intra-op, per inference) and
    ``inference_threads`` (inferences at once; by default the CPUs the process may use, from
    its affinity mask and cgroup quota), with the CPU budget they were sized from."""
    from pqcompress.cpus import cpu_budget

    budget = cpu_budget()
    workers = settings.inference_threads or budget.threads
    return {
        "threads": settings.threads,
        "inference_threads": workers,
        "inference_threads_source": "setting" if settings.inference_threads else budget.source,
        "cpu_budget": budget.to_dict(),
    }


def request_budget(settings: ServeSettings) -> MemoryBudget:
    """The memory budget of requests: the setting, else derived from the memory limit (the
    setting, else the cgroup's) and the resident size now (model loaded and warm)."""
    if settings.request_memory_bytes:
        return MemoryBudget(settings.request_memory_bytes, "request_memory_bytes")
    limit = settings.memory_limit_bytes or cgroup_memory_limit()
    total, source = derive_budget(limit, resident_bytes())
    return MemoryBudget(total, source)


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers (``--workers N``): settings from ``PQC_*`` variables."""
    return create_app(ServeSettings.from_env())


async def _load(state: ServiceState) -> None:
    try:
        model = await asyncio.to_thread(load_served_model, state.settings)
    except ModelLoadError as exc:
        state.load_error = str(exc)
    except Exception as exc:  # pragma: no cover - load_served_model wraps what it can
        state.load_error = f"cannot load model '{state.settings.model}': {exc!r}"
    else:
        state.metrics.set_model(model.info, model.load_s, model.warmup_s)
        model.info["threads"] = state.threads
        state.budget = request_budget(state.settings)
        model.info["memory"] = {
            "limit_bytes": state.settings.memory_limit_bytes or cgroup_memory_limit(),
            "request_budget_bytes": state.budget.total,
            "request_budget_source": state.budget.source,
        }
        state.model = model
        labels = model_labels(model.info)
        plan = state.threads or {}
        log.info(
            "model %s (%s, %s%s) ready: loaded in %.3f s, warm-up %.3f s; %s inference "
            "thread(s) (%s) x %s intra-op; requests may hold %.1f MiB at once (%s)",
            state.settings.model,
            labels["architecture"] or "unknown architecture",
            state.settings.runtime,
            ", int8 kernels" if model.info.get("int8") else "",
            model.load_s,
            model.warmup_s,
            plan.get("inference_threads"),
            plan.get("inference_threads_source"),
            plan.get("threads"),
            state.budget.total / 2**20,
            state.budget.source,
        )
        return
    log.error("%s", state.load_error)
    if state.on_fatal is not None:
        state.on_fatal()


def _add_error_handlers(app: FastAPI, state: ServiceState) -> None:
    @app.exception_handler(RequestError)
    async def _requesterror_response(request: Request, exc: RequestError) -> JSONResponse:
        state.metrics.rejected.labels(exc.code).inc()
        headers = {"Retry-After": str(state.settings.retry_after_s)} if exc.status == 503 else None
        return JSONResponse(exc.to_dict(), exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _httperror_response(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.url.path}; see /docs or /openapi.json"
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", str(exc.errors())[:500])


def _add_routes(app: FastAPI, state: ServiceState) -> None:
    settings = state.settings

    @app.get("/healthz", response_model=schemas.Status, tags=["probes"])
    async def healthz() -> dict[str, str]:
        """The process is alive (liveness probe)."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=schemas.Status,
        responses={503: {"model": schemas.Status}},
        tags=["probes"],
    )
    async def readyz() -> Any:
        """200 once the model is loaded and warmed up; 503 while loading, failed or draining."""
        if state.ready:
            return {"status": "ready"}
        if state.draining:
            status, detail = "draining", "shutting down"
        elif state.load_error:
            status, detail = "failed", state.load_error
        else:
            status, detail = "loading", "the model is being loaded and warmed up"
        return JSONResponse({"status": status, "detail": detail}, 503)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
        tags=["probes"],
    )
    async def metrics() -> Response:
        """Prometheus text exposition."""
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/model", response_model=schemas.ModelSummary, responses=_ERRORS, tags=["model"])
    async def model_info() -> Any:
        """The served model's manifest summary and the runtime in use."""
        return _require_model(state).info

    @app.post(
        PREDICT,
        response_model=schemas.PredictResponse,
        response_model_exclude_none=True,
        responses=_ERRORS,
        tags=["model"],
        openapi_extra={"requestBody": _predict_body()},
    )
    async def predict(request: Request) -> Any:
        """Predict one or several inputs: images or a tensor batch (labels and
        probabilities), or a model's named inputs (JSON by name, .npz), answered with labels
        for class logits, else with its output tensors by name."""
        try:
            return await asyncio.wait_for(_predict(request, state), settings.request_timeout_s)
        except asyncio.TimeoutError:
            raise RequestError(
                504,
                "timeout",
                f"the request took longer than the {settings.request_timeout_s:g} s limit",
            ) from None

    if settings.debug:

        @app.get("/debug/runtime", include_in_schema=False)
        async def debug_runtime() -> dict[str, Any]:
            mods = ("torch", "numba", "onnxruntime", "onnx")
            return {"pid": os.getpid(), "modules": {m: m in sys.modules for m in mods}}


def _require_model(state: ServiceState) -> ServedModel:
    if state.model is None or state.draining:
        raise RequestError(503, "not_ready", "the model is not loaded yet (see /readyz)")
    return state.model


async def _predict(request: Request, state: ServiceState) -> dict[str, Any]:
    model = _require_model(state)
    settings = state.settings
    ctype = request.headers.get("content-type", "")
    media = ctype.split(";")[0].strip().lower()
    if media not in ACCEPTED:
        raise RequestError(
            415,
            "unsupported_content_type",
            f"Content-Type {media or '(none)'!r} is not accepted; use one of {', '.join(ACCEPTED)}",
        )
    reservation = Reservation(state.budget)
    try:
        body = await read_body(request, settings, reservation)
        # the in-flight limit counts inferences, not bodies still arriving (a slow client
        # holds no slot; memory is bounded by the budget)
        busy = state.predicting + state.orphans
        if busy >= settings.max_in_flight:
            raise RequestError(
                503,
                "overloaded",
                f"{busy} predictions are in flight, the limit is {settings.max_in_flight}; "
                f"retry after {settings.retry_after_s} s",
            )
        state.predicting += 1
        try:
            return await _infer(request, state, model, media, body, reservation)
        finally:
            state.predicting -= 1
    finally:
        reservation.close()


async def _infer(
    request: Request,
    state: ServiceState,
    model: ServedModel,
    media: str,
    body: bytes,
    reservation: Reservation,
) -> dict[str, Any]:
    settings = state.settings
    if model.named_inputs:
        return await _infer_named(request, state, model, media, body, reservation)
    if media in NPZ_TYPES:
        raise RequestError(
            415,
            "unsupported_content_type",
            "this model takes one tensor: send it as .npy, JSON, or an image, not an .npz archive",
        )
    if media == "multipart/form-data":
        parts = await _multipart_files(request, body, settings.max_batch)
        work = lambda: _batch_of_images(model, parts, reservation)  # noqa: E731
    elif media in IMAGE_TYPES:
        work = lambda: model.preprocessing.image(body, reserve=reservation.add)[None]  # noqa: E731
    elif media == "application/json":
        work = lambda: _json_tensor(model, body, settings.max_batch, reservation)  # noqa: E731
    else:
        work = lambda: _npy_tensor(model, body, settings.max_batch, reservation)  # noqa: E731

    def run() -> tuple[np.ndarray, np.ndarray]:
        x = work()
        if settings.debug_delay_s:
            time.sleep(settings.debug_delay_s)
        return np.asarray(model.logits(x), dtype=np.float32), x

    logits, x = await _in_executor(state, run)
    state.metrics.samples.inc(len(logits))
    check_finite_output(logits, x)
    return _classification(model, logits, settings.runtime)


async def _in_executor(state: ServiceState, fn: Callable[[], Any]) -> Any:
    """``fn()`` on the inference threads; a request cancelled while it runs leaves it running
    to its end (counted as an orphan, so the in-flight limit still sees it)."""
    loop = asyncio.get_running_loop()
    assert state.executor is not None
    job = state.executor.submit(fn)
    try:
        return await asyncio.shield(asyncio.wrap_future(job))
    except asyncio.CancelledError:  # a timeout (504) or a disconnect while waiting
        if not job.cancel():  # already running: it occupies a thread until it ends
            state.orphans += 1
            job.add_done_callback(lambda _j: _call_soon(loop, _orphan_done, state))
        raise


def _classification(model: ServedModel, logits: np.ndarray, runtime: str) -> dict[str, Any]:
    probs = softmax(logits)
    labels = [int(i) for i in probs.argmax(axis=1)]
    names = [model.class_names[i] for i in labels]
    return {
        "predictions": [
            {
                "label": lab,
                "class_name": name,
                "probability": float(p[lab]),
                "probabilities": [float(v) for v in p],
            }
            for lab, name, p in zip(labels, names, probs)
        ],
        "labels": labels,
        "class_names": names,
        "runtime": runtime,
    }


async def _infer_named(
    request: Request,
    state: ServiceState,
    model: ServedModel,
    media: str,
    body: bytes,
    reservation: Reservation,
) -> dict[str, Any]:
    """A model with named inputs: JSON by name, .npz or (one input) .npy, validated against
    its spec; class logits answered as labels, other outputs as tensors."""
    settings = state.settings
    if media == "multipart/form-data" or media in IMAGE_TYPES:
        named_inputs(model, media, body, settings, reservation)  # raises the 415

    def run() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        feed = named_inputs(model, media, body, settings, reservation)
        if settings.debug_delay_s:
            time.sleep(settings.debug_delay_s)
        try:
            outs = model.infer(feed)
        except Exception as exc:  # inputs the spec allows but the model refuses
            detail = " ".join(str(exc).split())[:300]
            raise RequestError(
                422, "inference_failed", f"the model cannot run these inputs: {detail}"
            ) from None
        return {k: np.asarray(v) for k, v in outs.items()}, feed

    outs, feed = await _in_executor(state, run)
    batch = len(next(iter(feed.values())))
    state.metrics.samples.inc(batch)
    bad = [o for o in outs.values() if o.dtype.kind == "f" and not np.isfinite(o).all()]
    if bad:
        check_finite_output(bad[0], np.concatenate([v.ravel() for v in feed.values()]))
    if model.classifier:
        (logits,) = outs.values()
        return _classification(model, logits.astype(np.float32), settings.runtime)
    return {
        "outputs": {name: out.tolist() for name, out in outs.items()},
        "runtime": settings.runtime,
    }


def check_finite_output(logits: np.ndarray, x: np.ndarray) -> None:
    """422 naming the inputs' range when the model's output is not finite (inputs far outside
    what it was trained on overflow it): never a 200 whose probabilities are null."""
    if np.isfinite(logits).all():
        return
    low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    raise RequestError(
        422,
        "non_finite_output",
        f"the model's output is not finite for these inputs (their values span {low:.3g} .. "
        f"{high:.3g}); send inputs in the range the model was trained on (normalized as its "
        "preprocessing says)",
    )


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    """``loop.call_soon_threadsafe`` that does nothing once the loop is closed (an inference
    that outlived its request and the server)."""
    with contextlib.suppress(RuntimeError):
        if not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)


def _orphan_done(state: ServiceState) -> None:
    state.orphans -= 1
