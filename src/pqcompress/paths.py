"""Names that become one path component (a sweep's directory, a study's folder): checked to be
a single, portable file name, so a name from a spec can never point outside its parent."""

from __future__ import annotations

from pqcompress.errors import ConfigError

MAX_NAME_BYTES = 200  # leaves room for suffixes (temp files, run ids) under the 255-byte limit


def check_component(name: str, what: str) -> str:
    """``name`` when it is one plain path component; ConfigError naming ``what`` otherwise
    (empty, ``.``/``..``, a separator, a NUL or control character, a leading ``~``, or longer
    than MAX_NAME_BYTES bytes)."""
    problem = None
    if not isinstance(name, str) or not name.strip():
        problem = "is empty"
    elif name in (".", "..") or "/" in name or "\\" in name:
        problem = "is not a single path component (no '/', '\\', '.' or '..')"
    elif any(ord(c) < 32 or c == "\x7f" for c in name):
        problem = "holds a control character"
    elif name.startswith("~"):
        problem = "starts with '~'"
    elif len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        problem = f"is longer than {MAX_NAME_BYTES} bytes"
    if problem:
        raise ConfigError(
            f"{what} {name!r} {problem}: it names a directory, so use letters, digits, '-', '_' "
            "or '.' inside one name"
        )
    return name
