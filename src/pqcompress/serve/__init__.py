"""The inference microservice: ``create_app(settings)``, ``ServeSettings``, ``serve(settings)``.

Importing this package (and serving with the default onnxruntime runtime) never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ServeSettings": "pqcompress.serve.settings",
    "create_app": "pqcompress.serve.app",
    "serve": "pqcompress.serve.server",
    "load_served_model": "pqcompress.serve.runtime",
    "ModelLoadError": "pqcompress.serve.errors",
    "RequestError": "pqcompress.serve.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pqcompress.serve' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
