"""One small registry type for every pluggable kind (datasets, strategies, mitigations, judges,
generation backends). Factories are registered with a decorator together with descriptive
info, looked up by name, and an unknown name lists the names that exist.

Other installed packages add entries through the `tasksafe.plugins` entry-point group: each
entry names a module that registers what it adds with the same decorators. The modules are
imported once, the first time any registry is looked up (`load_plugins`).

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

from tasksafe.errors import UnknownNameError, UserError

T = TypeVar("T")

PLUGIN_GROUP = "tasksafe.plugins"
_plugins = {"state": "not loaded", "names": []}


def load_plugins() -> list[str]:
    """Import every module the installed distributions name in the `tasksafe.plugins`
    entry-point group, once (the built-in mitigations, judges, tasks and backends first, so a
    plugin may import them); returns the entry names. A plugin that fails to import is an error
    naming it, not a silently missing entry."""
    if _plugins["state"] != "not loaded":
        return list(_plugins["names"])
    from importlib import import_module
    from importlib.metadata import entry_points

    _plugins["state"] = "loading"
    try:
        for package in ("tasksafe.data", "tasksafe.tasks", "tasksafe.strategies", "tasksafe.mitigations",
                        "tasksafe.judges", "tasksafe.generate"):
            import_module(package)
        for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
            try:
                entry.load()
            except Exception as err:
                raise UserError(f"tasksafe plugin {entry.name!r} ({entry.value}) failed to load: "
                                f"{type(err).__name__}: {err}") from err
            _plugins["names"].append(entry.name)
    finally:
        _plugins["state"] = "loaded"
    return list(_plugins["names"])


_HELPERS = frozenset({"tasksafe.registry", "tasksafe.mitigations.base", "tasksafe.tasks.formats",
                      "tasksafe.data.datasets", "tasksafe.mitigations.compose"})
"""Modules whose register helpers (`register_mitigation`, `register_task`, `dataset`, ...) call
`register` for their callers: an entry's origin is the first module above them."""


def _registering_module() -> str:
    import sys

    frame, name = sys._getframe(1), ""
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back is not None else ""
        if name not in _HELPERS or caller.startswith("importlib") or not caller:  # a helper module's own entries
            return name
        frame = frame.f_back
    return name


class Registry(Generic[T]):
    """Name -> factory, with free-form info kept beside each entry."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._info: dict[str, dict[str, Any]] = {}
        self._origin: dict[str, str] = {}

    def register(self, name: str, **info: Any) -> Callable[[T], T]:
        caller = _registering_module()

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            self._info[name] = info
            self._origin[name] = caller
            return obj

        return decorator

    def get(self, name: str) -> T:
        load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def info(self, name: str) -> dict[str, Any]:
        self.get(name)
        return self._info[name]

    def origin(self, name: str) -> str:
        """The module whose code registered `name` (a plugin's, or tasksafe's own)."""
        self.get(name)
        return self._origin[name]

    def names(self) -> list[str]:
        load_plugins()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        load_plugins()
        return iter(list(self._entries))

    def __len__(self) -> int:
        load_plugins()
        return len(self._entries)
