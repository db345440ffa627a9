"""The parts every executor shares: a `Unit` of work, the `Resources` it asks for, the
`Outcome` it ends in, the logged call a worker makes, and `Executor.run_all`."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from tasksafe.settings import Settings


class Resources(Settings):
    """What one unit asks of a worker; Ray schedules by it (its resources are logical, so a
    CPU-only test may declare GPUs). The local executor runs one unit at a time and ignores it."""

    num_cpus: float = Field(1.0, ge=0, le=1024, description="CPU cores (also the unit's torch threads)")
    num_gpus: float = Field(0.0, ge=0, le=64, description="GPUs (fractions share one)")


@dataclass(frozen=True)
class Unit:
    key: str
    fn: Callable[..., Any]
    args: tuple = ()
    resources: Resources = field(default_factory=Resources)
    log: Path | None = None


@dataclass(frozen=True)
class Outcome:
    key: str
    value: Any = None
    error: str | None = None
    attempts: int = 1


@dataclass
class Submitted:
    unit: Unit
    future: concurrent.futures.Future
    cancel: Callable[[], None] = lambda: None


def starts_in_log(log: Path | None) -> int:
    """How many times a unit started, counted from its log (each start writes one line)."""
    if log is None or not log.is_file():
        return 1
    with open(log, encoding="utf-8", errors="replace") as handle:
        return max(1, sum(line.startswith("--- start ") for line in handle))


def call_logged(fn: Callable[..., Any], args: tuple, log: Path | None, own_process: bool = False,
                threads: int | None = None) -> Any:
    """Run `fn(*args)`, appending a start line, its logging records and any traceback to `log`.
    In a process of its own (a Ray worker) its prints and warnings go there too, and torch uses
    `threads` threads (the CPUs the unit asked for)."""
    if log is None:
        return fn(*args)
    log.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        handle = stack.enter_context(open(log, "a", encoding="utf-8", buffering=1))
        handle.write(f"--- start {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()} on {socket.gethostname()}\n")
        if own_process:
            stack.enter_context(redirect_stdout(handle))
            stack.enter_context(redirect_stderr(handle))
            if threads:
                os.environ["TASKSAFE_THREADS"] = str(threads)
        handler = logging.StreamHandler(handle)
        logging.getLogger().addHandler(handler)
        stack.callback(logging.getLogger().removeHandler, handler)
        try:
            value = fn(*args)
        except BaseException:
            handle.write(traceback.format_exc())
            raise
        handle.write(f"--- end {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        return value


class Executor:
    """The shared part: `run_all` over `submit`. `slots` is how many units to keep submitted
    at once (the local executor 1; Ray all of them, its scheduler placing them by resources)."""

    name = ""
    slots = 1

    def submit(self, unit: Unit) -> Submitted:
        raise NotImplementedError

    def describe_error(self, err: BaseException, unit: Unit) -> str:
        return f"{type(err).__name__}: {err}"

    def run_all(self, units: list[Unit], on_change: Callable[[int, int], None] | None = None) -> Iterator[Outcome]:
        """Yield one `Outcome` per unit as each finishes; `on_change(running, waiting)` is
        called whenever those counts change (for a progress bar)."""
        waiting = list(reversed(units))
        running: dict[concurrent.futures.Future, Unit] = {}
        while waiting or running:
            while waiting and len(running) < self.slots:
                submitted = self.submit(waiting.pop())
                running[submitted.future] = submitted.unit
            if on_change:
                on_change(len(running), len(waiting))
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                unit = running.pop(future)
                try:
                    yield Outcome(unit.key, value=future.result(), attempts=starts_in_log(unit.log))
                except Exception as err:
                    yield Outcome(unit.key, error=self.describe_error(err, unit), attempts=starts_in_log(unit.log))
        if on_change:
            on_change(0, 0)

    def close(self) -> None:
        pass


def release_memory() -> None:
    """Give memory that a finished stage freed back to the operating system: Python's garbage
    collected, then glibc's free lists trimmed (where the C library is glibc), so a process
    that fine-tunes and then evaluates, cell after cell, does not hold every stage's peak."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def torch_threads() -> int:
    """The CPU threads torch should use: the unit's share on a Ray worker, else every core."""
    value = os.environ.get("TASKSAFE_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else (os.cpu_count() or 1)
