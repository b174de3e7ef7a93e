"""Reading YAML files users hand us (recipes, sweep and search specs, run configs), safely.

The one YAML loader of the package: every file and ``--set`` value is read by it, and it
reads ``1e-3`` as a number everywhere (:class:`NumbersLoader`).

One rule for every YAML file: it must be a regular file of at most ``MAX_YAML_BYTES``, UTF-8
text, and valid YAML with at most ``MAX_ALIASES`` aliases and ``MAX_EXPANDED_NODES`` nodes
once they are written out (a "billion laughs" file of a kilobyte otherwise expands to
gigabytes in the code that walks it); every refusal is a
ConfigError in one line naming the file, what is wrong and, for syntax errors, where.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pqcompress.errors import ConfigError

MAX_YAML_BYTES = 1 << 20
MAX_ALIASES = 1000
MAX_EXPANDED_NODES = 100_000  # nodes the document has once every alias is written out


def _bounded(loader_cls: type) -> type:
    """``loader_cls`` refusing more than MAX_ALIASES aliases while composing the document."""

    class Bounded(loader_cls):  # type: ignore[misc]
        _aliases = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                self._aliases += 1
                if self._aliases > MAX_ALIASES:
                    mark = self.peek_event().start_mark
                    raise ConfigError(
                        f"more than {MAX_ALIASES} YAML aliases (*name) at line {mark.line + 1}, "
                        f"column {mark.column + 1}: refused (a file of aliases of aliases expands "
                        "exponentially); write the values out"
                    )
            return super().compose_node(parent, index)

        def construct_document(self, node: Any) -> Any:
            size = _expanded_size(node, {})
            if size > MAX_EXPANDED_NODES:
                raise ConfigError(
                    f"the YAML document expands to more than {MAX_EXPANDED_NODES:,} nodes "
                    "through its aliases: refused; write the values out"
                )
            return super().construct_document(node)

    Bounded.__name__ = f"Bounded{loader_cls.__name__}"
    return Bounded


def _expanded_size(node: Any, memo: dict[int, int]) -> int:
    """Nodes of ``node`` with aliases written out (memoised per shared node, so a file of
    aliases of aliases is measured in linear time; stops counting past the limit)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a cycle counts once (PyYAML would refuse to construct it anyway)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += _expanded_size(child, memo)
            if total > MAX_EXPANDED_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _expanded_size(k, memo) + _expanded_size(v, memo)
            if total > MAX_EXPANDED_NODES:
                break
    memo[key] = total
    return total


class NumbersLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading ``1e-3``, ``5E4`` and ``.5`` as floats, as YAML 1.2 does
    (PyYAML follows YAML 1.1, where a float needs a dot: ``1e-3`` would be the string
    "1e-3", and ``train: {lr: 1e-3}`` the first error many users meet)."""


NumbersLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)

_SAFE = _bounded(NumbersLoader)


def parse_yaml_text(text: str, where: str, loader: type | None = None) -> Any:
    """Parse ``text`` (from ``where``, for messages) with a bounded safe loader."""
    cls = _SAFE if loader is None else _bounded(loader)
    try:
        return yaml.load(text, Loader=cls)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"'{where}' is not valid YAML{at}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"'{where}' is not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(f"'{where}' nests too deeply to be a config file") from None
    except ConfigError as exc:  # the loader's own bounds
        raise ConfigError(f"'{where}': {exc}") from None


def read_yaml_file(path: str | Path, what: str = "config file", loader: type | None = None) -> Any:
    """The parsed contents of YAML file ``path``; ConfigError (one line) when it is missing,
    not a regular file, too large, not UTF-8 text or not valid YAML."""
    p = Path(path)
    try:
        if not p.exists():
            raise ConfigError(f"{what} '{p}' does not exist")
        if p.is_dir():
            raise ConfigError(f"{what} '{p}' is a directory; expected a YAML file")
        if not p.is_file():
            raise ConfigError(f"{what} '{p}' is not a regular file; expected a YAML file")
        size = p.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(
                f"{what} '{p}' is {size:,} bytes; a YAML config is at most {MAX_YAML_BYTES:,}"
            )
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} '{p}' cannot be read: {exc.strerror or exc}") from None
    if b"\x00" in raw:
        raise ConfigError(f"{what} '{p}' is a binary file, not YAML text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} '{p}' is not UTF-8 text (byte {exc.start}); expected a YAML file"
        ) from None
    return parse_yaml_text(text, str(p), loader)
