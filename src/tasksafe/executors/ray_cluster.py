"""The Ray executor: each unit a Ray task with the resources it asks for, on a local cluster
(started here when no address is given) or one started with `ray start --head` (`address`).
A task whose worker process dies is run again up to `retries` times (Ray's `max_retries`); an
exception raised by the unit is not retried (it would fail the same way) and comes back as the
outcome's error. The `TASKSAFE_*` settings of this process (cache, data mirror) are forwarded
to every worker, so on several nodes they must name paths every node can reach."""

from __future__ import annotations

import logging
import os
from typing import Any

from tasksafe.errors import UserError
from tasksafe.executors.base import Executor, Submitted, Unit, call_logged


def _forwarded_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key.startswith("TASKSAFE_")}


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, address: str | None = None, retries: int = 2, **_options: Any):
        try:
            import ray
        except ImportError:
            raise UserError("the ray executor needs Ray: pip install 'tasksafe[ray]'") from None
        self._ray = ray
        self.retries = retries
        self.slots = 1_000_000  # Ray's scheduler decides what runs when
        if not ray.is_initialized():
            try:
                ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING, runtime_env={"env_vars": _forwarded_environment()})
            except ConnectionError as err:
                raise UserError(f"cannot reach the Ray cluster at {address!r}: {err}") from None
        self._task = ray.remote(call_logged)

    def submit(self, unit: Unit) -> Submitted:
        threads = max(1, int(unit.resources.num_cpus))
        ref = self._task.options(num_cpus=unit.resources.num_cpus, num_gpus=unit.resources.num_gpus,
                                 max_retries=self.retries, retry_exceptions=False,
                                 name=f"tasksafe:{unit.key}").remote(unit.fn, unit.args, unit.log, True, threads)
        return Submitted(unit, ref.future(), cancel=lambda: self._ray.cancel(ref, force=True))

    def describe_error(self, err: BaseException, unit: Unit) -> str:
        from ray.exceptions import RayTaskError, TaskCancelledError, WorkerCrashedError

        if isinstance(err, WorkerCrashedError):
            return f"the worker running it died {self.retries + 1} times (Ray retried it {self.retries} times)"
        if isinstance(err, TaskCancelledError):
            return "cancelled"
        if isinstance(err, RayTaskError):
            cause = err.cause if err.cause is not None else err
            return f"{type(cause).__name__}: {cause}"
        return super().describe_error(err, unit)

    def close(self) -> None:
        pass  # the cluster outlives one grid; a local one stops with this process
