"""ASGI middleware of the service: request metrics with bounded labels (the in-flight limit of
predictions is applied in the predict route, once the body has arrived)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect
from starlette.routing import Match

from pqcompress.serve.errors import error_response

if TYPE_CHECKING:
    from pqcompress.serve.app import ServiceState

log = logging.getLogger("pqcompress.serve")

PREDICT = "/v1/predict"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
CLIENT_CLOSED = 499  # the status label of a request whose client disconnected (nginx's code)


class ObserveMiddleware:
    """ASGI middleware: metrics of every request."""

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
        status: dict[str, Any] = {"code": 500, "started": False}

        async def send_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
            await send(message)

        start = time.perf_counter()
        m.in_flight.inc()
        try:
            try:
                await self.app(scope, receive, send_status)
            except ClientDisconnect:  # the client left mid-body: its fault, not a 500
                status["code"] = CLIENT_CLOSED
            except asyncio.CancelledError:
                # uvicorn cancels what is still running when the drain timeout ends: one
                # line, not a traceback; the client gets a 503 if nothing was sent yet
                log.warning("%s %s cancelled: the server stopped before it finished", method, route)
                if status["started"] is False:
                    status["code"] = 503
                    with contextlib.suppress(Exception):
                        await error_response(
                            503, "shutting_down", "the server stopped before this request finished"
                        )(scope, receive, send)
        finally:
            m.in_flight.dec()
            m.requests.labels(route, method, str(status["code"])).inc()
            m.latency.labels(route, method).observe(time.perf_counter() - start)
