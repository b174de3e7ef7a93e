"""A small name -> factory registry shared by models, datasets and other pluggable parts."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from pqcompress.errors import RegistryError

F = TypeVar("F", bound=Callable[..., object])


class Registry(Generic[F]):
    """Maps names to factories; unknown names raise RegistryError listing what is accepted."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        def decorator(fn: F) -> F:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = fn
            return fn

        return decorator

    def get(self, name: str) -> F:
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise RegistryError(
                f"unknown {self.kind} '{name}'{hint}; accepted: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
