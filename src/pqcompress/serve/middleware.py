"""ASGI middleware of the service: request metrics with bounded labels, the in-flight limit."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect
from starlette.routing import Match

from pqcompress.serve.errors import error_response

if TYPE_CHECKING:
    from pqcompress.serve.app import ServiceState

PREDICT = "/v1/predict"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
CLIENT_CLOSED = 499  # the status label of a request whose client disconnected (nginx's code)


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
                response = error_response(
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
