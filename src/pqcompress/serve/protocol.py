"""uvicorn's h11 protocol with a header timeout: a connection that has not sent a complete
request head within ``header_timeout_s`` is closed (idle sockets and slowloris clients would
otherwise hold file descriptors forever and starve the liveness probe)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderTimeoutH11Protocol(H11Protocol):
    """H11Protocol that closes connections whose request head is not complete in time."""

    header_timeout_s: float | None = None  # None: PQC_HEADER_TIMEOUT_S, else 10 s (workers)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _timeout(self) -> float:
        if self.header_timeout_s is not None:
            return self.header_timeout_s
        try:
            return float(os.environ.get("PQC_HEADER_TIMEOUT_S") or 10.0)
        except ValueError:
            return 10.0

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self._timeout(), self._expire)

    def _disarm(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the request head is complete
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's head gets the same time

    def connection_lost(self, exc: Any) -> None:
        self._disarm()
        super().connection_lost(exc)


def protocol_for(header_timeout_s: float) -> type[HeaderTimeoutH11Protocol]:
    """The protocol class with this header timeout (a subclass, so settings stay per server)."""
    return type(
        "HeaderTimeoutH11Protocol",
        (HeaderTimeoutH11Protocol,),
        {"header_timeout_s": float(header_timeout_s), "__module__": __name__},
    )
