"""The service a load test targets: its URL checked once, and a free local port."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from pqcompress.loadtest.errors import LoadTestError

DEFAULT_URL = "http://127.0.0.1:8080"


def check_url(url: str) -> str:
    """An http(s) URL with a host, without a trailing slash; LoadTestError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadTestError(
            f"the target URL {url!r} is not usable; expected http://HOST:PORT (default "
            f"{DEFAULT_URL})"
        )
    return url.rstrip("/")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
