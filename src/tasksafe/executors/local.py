"""The default executor: units in this process."""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

from tasksafe.executors.base import Executor, Submitted, Unit, call_logged


class LocalExecutor(Executor):
    """Each unit in a daemon thread of this process, so the caller can poll while it runs;
    a unit cannot be killed (cancel by a flag the unit checks), resources are ignored."""

    name = "local"

    def __init__(self, **_options: Any):
        pass

    def submit(self, unit: Unit) -> Submitted:
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_running_or_notify_cancel()

        def work() -> None:
            try:
                future.set_result(call_logged(unit.fn, unit.args, unit.log))
            except BaseException as err:  # handed to the caller through the future
                future.set_exception(err)

        threading.Thread(target=work, daemon=True, name=f"tasksafe-unit-{unit.key}").start()
        return Submitted(unit, future)
