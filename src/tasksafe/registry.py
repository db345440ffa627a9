"""One small registry type for every pluggable kind (datasets, strategies, mitigations, judges,
generation backends). Factories are registered with a decorator together with descriptive
info, looked up by name, and an unknown name lists the names that exist.

>>> colours = Registry("colour")
>>> @colours.register("red", hex="#f00")
... def red():
...     return "red"
>>> colours.get("red")()
'red'
>>> colours.info("red")["hex"]
'#f00'
>>> colours.get("blue")
Traceback (most recent call last):
...
tasksafe.errors.UnknownNameError: unknown colour 'blue'; choose one of: red
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from tasksafe.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> factory, with free-form info kept beside each entry."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._info: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **info: Any) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            self._info[name] = info
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def info(self, name: str) -> dict[str, Any]:
        self.get(name)
        return self._info[name]

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
