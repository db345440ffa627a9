"""Where tasksafe keeps things outside the repository (environment-overridable)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`TASKSAFE_CACHE`, else `$XDG_CACHE_HOME/tasksafe`, else `~/.cache/tasksafe`."""
    if os.environ.get("TASKSAFE_CACHE"):
        return Path(os.environ["TASKSAFE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tasksafe"


def data_dir() -> Path | None:
    """The local dataset mirror named by `TASKSAFE_DATA_DIR` (layout of shared/data), if set."""
    value = os.environ.get("TASKSAFE_DATA_DIR")
    return Path(value).expanduser() if value else None
