"""Download a file with an md5 check, atomically (temp file + os.replace)."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from pqcompress.errors import DataError


def download(url: str, dest: Path, md5: str, *, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest`` unless ``dest`` already exists; DataError on failure or a bad md5."""
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    tmp = Path(tmp_name)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise DataError(
                f"download of {url} is corrupt: md5 {digest.hexdigest()} != expected {md5}"
            )
        os.replace(tmp, dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise DataError(
            f"could not download {url} ({exc}); download it by hand and put it at {dest}, "
            f"or point data.root at a copy"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest
