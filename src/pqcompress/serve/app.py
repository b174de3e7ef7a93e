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
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from pqcompress import __version__
from pqcompress.serve import schemas
from pqcompress.serve.errors import ModelLoadError, RequestError
from pqcompress.serve.metrics import ServiceMetrics, model_labels
from pqcompress.serve.preprocess import IMAGE_TYPES, check_batch, softmax
from pqcompress.serve.runtime import ServedModel, load_served_model
from pqcompress.serve.settings import ServeSettings

log = logging.getLogger("pqcompress.serve")

PREDICT = "/v1/predict"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
CLIENT_CLOSED = 499  # the status label of a request whose client disconnected (nginx's code)
NPY_TYPES = ("application/x-npy", "application/octet-stream")
ACCEPTED = (*IMAGE_TYPES, "multipart/form-data", "application/json", *NPY_TYPES)
_ERRORS = {
    code: {"model": schemas.ErrorResponse}
    for code in (400, 404, 405, 413, 415, 422, 503, 504)
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
            state.executor.shutdown(wait=False, cancel_futures=True)
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
    _add_error_handlers(app, state)
    _add_routes(app, state)
    app.add_middleware(ObserveMiddleware, state=state, routes=app.router.routes)
    return app


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
        state.model = model
        labels = model_labels(model.info)
        plan = state.threads or {}
        log.info(
            "model %s (%s, %s%s) ready: loaded in %.3f s, warm-up %.3f s; %s inference "
            "thread(s) (%s) x %s intra-op",
            state.settings.model,
            labels["architecture"] or "unknown architecture",
            state.settings.runtime,
            ", int8 kernels" if model.info.get("int8") else "",
            model.load_s,
            model.warmup_s,
            plan.get("inference_threads"),
            plan.get("inference_threads_source"),
            plan.get("threads"),
        )
        return
    log.error("%s", state.load_error)
    if state.on_fatal is not None:
        state.on_fatal()


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None):
    return JSONResponse(RequestError(status, code, message).to_dict(), status, headers=headers)


def _add_error_handlers(app: FastAPI, state: ServiceState) -> None:
    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        state.metrics.rejected.labels(exc.code).inc()
        headers = {"Retry-After": str(state.settings.retry_after_s)} if exc.status == 503 else None
        return JSONResponse(exc.to_dict(), exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.url.path}; see /docs or /openapi.json"
        return _error(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", str(exc.errors())[:500])


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
        responses=_ERRORS,
        tags=["model"],
        openapi_extra={"requestBody": _predict_body()},
    )
    async def predict(request: Request) -> Any:
        """Predict one or several inputs (images or a tensor batch)."""
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
    body = await read_limited(request, settings.max_body_bytes)
    if media == "multipart/form-data":
        parts = await _multipart_files(request, body, settings.max_batch)
        work = lambda: _batch_of_images(model, parts)  # noqa: E731
    elif media in IMAGE_TYPES:
        work = lambda: model.preprocessing.image(body)[None]  # noqa: E731
    elif media == "application/json":
        work = lambda: _json_tensor(model, body, settings.max_batch)  # noqa: E731
    else:
        work = lambda: _npy_tensor(model, body, settings.max_batch)  # noqa: E731

    def run() -> np.ndarray:
        x = work()
        if settings.debug_delay_s:
            time.sleep(settings.debug_delay_s)
        return np.asarray(model.logits(x), dtype=np.float32)

    loop = asyncio.get_running_loop()
    assert state.executor is not None
    job = state.executor.submit(run)
    try:
        logits = await asyncio.shield(asyncio.wrap_future(job))
    except asyncio.CancelledError:  # a timeout (504) or a disconnect while waiting
        if not job.cancel():  # already running: it occupies a thread until it ends
            state.orphans += 1
            job.add_done_callback(lambda _j: loop.call_soon_threadsafe(_orphan_done, state))
        raise
    state.metrics.samples.inc(len(logits))
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
        "runtime": settings.runtime,
    }


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes (streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise RequestError(
            413, "body_too_large", f"the body is {int(declared)} bytes; the limit is {limit} bytes"
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(
                413, "body_too_large", f"the body is over the limit of {limit} bytes"
            )
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # starlette's form parser reads the cached body
    return body


async def _multipart_files(request: Request, body: bytes, max_batch: int) -> list[bytes]:
    if not body:
        raise RequestError(400, "empty", "the multipart body is empty: send field 'file'")
    try:
        form = await request.form(max_files=max_batch, max_fields=16)
    except StarletteHTTPException as exc:  # starlette turns multipart errors into 400
        if "too many files" in str(exc.detail).lower():
            raise RequestError(
                422, "too_many_inputs", f"more than {max_batch} files; at most {max_batch} accepted"
            ) from None
        raise RequestError(
            422, "bad_multipart", f"the multipart body is malformed: {exc.detail}"
        ) from None
    except (ValueError, KeyError, AssertionError) as exc:
        raise RequestError(
            422, "bad_multipart", f"the multipart body is malformed: {exc}"
        ) from None
    try:
        others = sorted({k for k in form if k != "file"})
        if others:
            raise RequestError(
                422, "unexpected_field", f"unexpected form fields {others}; send images as 'file'"
            )
        files = form.getlist("file")
        if not files:
            raise RequestError(400, "empty", "the multipart body has no 'file' field")
        check_batch(len(files), max_batch)
        out = []
        for i, f in enumerate(files):
            if isinstance(f, str):
                raise RequestError(
                    422, "not_an_image", f"field 'file' #{i} is text, not an uploaded image file"
                )
            out.append(await f.read())
        return out
    finally:
        await form.close()


def _batch_of_images(model: ServedModel, parts: list[bytes]) -> np.ndarray:
    return np.stack(
        [model.preprocessing.image(p, f"field 'file' #{i}") for i, p in enumerate(parts)]
    )


def _json_tensor(model: ServedModel, body: bytes, max_batch: int) -> np.ndarray:
    if not body.strip():
        raise RequestError(400, "empty", 'the JSON body is empty: send {"inputs": [...]}')
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise RequestError(400, "bad_json", f"the body is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "inputs" not in data:
        raise RequestError(
            422, "bad_json", 'the JSON body must be an object {"inputs": [...]} (a tensor)'
        )
    extra = sorted(k for k in data if k != "inputs")
    if extra:
        raise RequestError(422, "bad_json", f"unexpected JSON keys {extra}; only 'inputs'")
    if not isinstance(data["inputs"], list):
        raise RequestError(422, "bad_tensor", "'inputs' must be a (nested) list of numbers")
    return model.preprocessing.tensor(data["inputs"], max_batch)


def _npy_tensor(model: ServedModel, body: bytes, max_batch: int) -> np.ndarray:
    import io

    if not body:
        raise RequestError(400, "empty", "the .npy body is empty")
    _check_npy_header(body, max_batch)
    try:
        arr = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError, TypeError) as exc:
        raise RequestError(
            422, "bad_npy", f"the body is not a valid .npy array without pickles ({exc})"
        ) from None
    if not isinstance(arr, np.ndarray):
        raise RequestError(422, "bad_npy", "send one .npy array, not an .npz archive")
    return model.preprocessing.tensor(arr, max_batch, what="the .npy array")


def _orphan_done(state: ServiceState) -> None:
    state.orphans -= 1


def _check_npy_header(body: bytes, max_batch: int) -> None:
    """Refuse a .npy body from its header alone (shape, dtype, size against the bytes sent and
    the batch limit), before numpy allocates what the header declares."""
    import io

    fh = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(fh)
        read = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read(fh, max_header_size=10_000)
    except (ValueError, OSError, EOFError, TypeError, SyntaxError) as exc:
        raise RequestError(422, "bad_npy", f"the body is not a valid .npy array ({exc})") from None
    if dtype.hasobject:
        raise RequestError(422, "bad_npy", "object arrays (pickles) are not accepted")
    count = 1
    for d in shape:
        count *= int(d)
    if shape and int(shape[0]) > max_batch:
        raise RequestError(
            422, "too_many_inputs", f"the .npy array holds {shape[0]} inputs; at most {max_batch}"
        )
    declared = count * dtype.itemsize
    if declared != len(body) - fh.tell():
        raise RequestError(
            422,
            "bad_npy",
            f"the .npy header declares shape {tuple(shape)} of {dtype} ({declared} bytes), but "
            f"{len(body) - fh.tell()} data bytes were sent",
        )


def _predict_body() -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                    "required": ["file"],
                }
            },
            "image/png": binary,
            "image/jpeg": binary,
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"inputs": {"type": "array", "items": {}}},
                    "required": ["inputs"],
                }
            },
            "application/x-npy": binary,
            "application/octet-stream": binary,
        },
    }


class ObserveMiddleware:
    """ASGI middleware: metrics of every request, in-flight limit on /v1/predict (503 beyond)."""

    def __init__(self, app: Any, *, state: ServiceState, routes: list[Any]) -> None:
        self.app = app
        self.state = state
        self._routes = routes

    def _route(self, scope: dict[str, Any]) -> str:
        for route in self._routes:
            match, _ = route.matches(scope)
            if match != Match.NONE:
                return route.path
        return "unmatched"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        m = self.state.metrics
        route, method = self._route(scope), scope.get("method", "")
        method = method if method in HTTP_METHODS else "other"  # a bounded label set
        status = {"code": 500}

        async def send_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        start = time.perf_counter()
        m.in_flight.inc()
        limited = route == PREDICT
        try:
            busy = self.state.predicting + self.state.orphans
            if limited and busy >= self.state.settings.max_in_flight:
                m.rejected.labels("overloaded").inc()
                retry = str(self.state.settings.retry_after_s)
                response = _error(
                    503,
                    "overloaded",
                    f"{busy} predictions are in flight, the limit is "
                    f"{self.state.settings.max_in_flight}; retry after {retry} s",
                    {"Retry-After": retry},
                )
                await response(scope, receive, send_status)
                return
            if limited:
                self.state.predicting += 1
            try:
                await self.app(scope, receive, send_status)
            except ClientDisconnect:  # the client left mid-body: its fault, not a 500
                status["code"] = CLIENT_CLOSED
            finally:
                if limited:
                    self.state.predicting -= 1
        finally:
            m.in_flight.dec()
            m.requests.labels(route, method, str(status["code"])).inc()
            m.latency.labels(route, method).observe(time.perf_counter() - start)
