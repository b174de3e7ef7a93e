"""The service's OpenAPI spec without a model: ``python -m pqcompress.serve.openapi [OUT.json]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pqcompress.serve.app import create_app
from pqcompress.serve.settings import ServeSettings


def openapi_spec() -> dict[str, Any]:
    """The OpenAPI 3 document the running service serves at /openapi.json."""
    return create_app(ServeSettings(model="model.pqz"), load_model=False).openapi()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = json.dumps(openapi_spec(), indent=2, sort_keys=True) + "\n"
    if args:
        Path(args[0]).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
