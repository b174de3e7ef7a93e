"""Serving errors: a bad request (status, code, message) and a model that cannot be served."""

from __future__ import annotations

from typing import Any

from pqcompress.errors import PQCError


class ModelLoadError(PQCError):
    """The model file is missing, corrupt or cannot run: the service refuses to start."""


class RequestError(PQCError):
    """A request the service refuses: an HTTP status, a stable code and what was wrong."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = int(status)
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Any:
    """The JSON error response of the service (``{"error": {code, message, status}}``)."""
    from starlette.responses import JSONResponse

    return JSONResponse(RequestError(status, code, message).to_dict(), status, headers=headers)
