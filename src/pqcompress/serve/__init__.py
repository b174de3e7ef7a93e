"""The inference microservice: ``create_app(settings)``, ``ServeSettings``, ``serve(settings)``.

Importing this package (and serving with the default onnxruntime runtime) never imports torch.
"""

from __future__ import annotations

from pqcompress.lazy import lazy_exports

_EXPORTS = {
    "ServeSettings": "pqcompress.serve.settings",
    "create_app": "pqcompress.serve.app",
    "serve": "pqcompress.serve.server",
    "load_served_model": "pqcompress.serve.runtime",
    "ModelLoadError": "pqcompress.serve.errors",
    "RequestError": "pqcompress.serve.errors",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
