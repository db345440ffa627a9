"""Typed errors. A `UserError` is an expected mistake of the user (bad file, unknown name):
the CLI prints its one-line message and exits 2, without a traceback. Anything else is a bug."""

from __future__ import annotations


class UserError(Exception):
    """An expected user mistake; `str(err)` is the single line the CLI prints."""


class UnknownNameError(UserError, KeyError):
    """A name looked up in a registry does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DataFileError(UserError):
    """A problem in an input file, located at `path` (and `line`, 1-based, when known)."""

    def __init__(self, path: str, problem: str, line: int | None = None, hint: str = ""):
        self.path, self.problem, self.line, self.hint = str(path), problem, line, hint
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}" + (f"; {hint}" if hint else ""))


class OutputError(UserError):
    """An output that cannot or must not be written (it would replace an input, its folder is
    a file, the disk is full); nothing was written."""

    def __init__(self, path: str, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: {problem}")


class MissingDependencyError(UserError):
    """An optional dependency is not installed; the message is the install command."""

    def __init__(self, package: str, extra: str | None = None):
        target = f"'tasksafe[{extra}]'" if extra else package
        super().__init__(f"{package} is not installed; install it with: pip install {target}")


def require(module: str, extra: str) -> None:
    """Raise `MissingDependencyError` naming `extra` when `module` cannot be imported (an
    optional part of tasksafe whose extra is not installed)."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingDependencyError(module, extra)
