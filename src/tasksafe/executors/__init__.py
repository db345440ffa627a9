"""Where a unit of work runs: in this process (`local`, the default) or as a Ray task on a
cluster (`ray`). One code path for "run this somewhere": the experiment grid hands it cells,
the gateway's worker hands it training jobs.

A `Unit` is a module-level function with its arguments, the resources it needs and the file
its log goes to. An executor's `submit` returns a `Submitted` (a `concurrent.futures.Future`
and a way to cancel); `run_all` submits units as the executor has room and yields an
`Outcome` per unit as each finishes, a failure (an exception, or a worker that died more often
than the retries allow) as an outcome with its error, never an exception. The caller alone
writes results: workers only return them.

>>> outcomes = list(EXECUTORS.get("local")().run_all([Unit("one", divmod, (7, 2)), Unit("two", divmod, (1, 0))]))
>>> sorted((o.key, o.value, o.error) for o in outcomes)
[('one', (3, 1), None), ('two', None, 'ZeroDivisionError: integer division or modulo by zero')]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tasksafe.executors.base import Executor, Outcome, Resources, Submitted, Unit, release_memory, torch_threads
from tasksafe.executors.local import LocalExecutor
from tasksafe.registry import Registry

EXECUTORS: Registry[Callable[..., Executor]] = Registry("executor")


EXECUTORS.register("local", description="in this process, one unit at a time (the default)")(LocalExecutor)


@EXECUTORS.register("ray", description="Ray tasks on a local or remote cluster (pip install 'tasksafe[ray]')")
def ray_executor(**options: Any) -> Executor:
    from tasksafe.executors.ray_cluster import RayExecutor

    return RayExecutor(**options)


def make_executor(name: str, **options: Any) -> Executor:
    """The executor registered as `name`, e.g. `make_executor("ray", address="auto", retries=2)`."""
    return EXECUTORS.get(name)(**options)


__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "Outcome", "Resources", "Submitted", "Unit", "make_executor",
           "release_memory", "torch_threads"]
