"""The Ray executor on a local cluster (`ray.init(num_cpus=2, num_gpus=1)`: Ray's resources are
logical, so this CPU machine can declare a GPU): units in parallel as their resources allow, a
worker killed mid-cell and retried, a cell that keeps dying recorded as failed, and a
tiny-random grid giving the same stored metrics as the local executor."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tasksafe.executors import Resources, Unit, make_executor
from tasksafe.experiments import ResultsStore, load_spec, run_spec
from tests.conftest import need_ray
from tests.test_experiments import TINY


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ray = need_ray()
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    yield ray
    ray.shutdown()


def _span(seconds: float) -> tuple[int, float, float]:
    start = time.time()
    time.sleep(seconds)
    return os.getpid(), start, time.time()


def _overlap(a, b) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def test_units_run_in_parallel_as_their_resources_allow(cluster, tmp_path):
    executor = make_executor("ray", retries=0)
    cpu = [Unit(f"cpu{i}", _span, (1.5,), Resources(num_cpus=1), tmp_path / f"cpu{i}.log") for i in range(2)]
    outcomes = {o.key: o for o in executor.run_all(cpu)}
    assert {o.error for o in outcomes.values()} == {None}
    assert _overlap(outcomes["cpu0"].value, outcomes["cpu1"].value)  # two 1-CPU units on 2 CPUs: together
    assert outcomes["cpu0"].value[0] != outcomes["cpu1"].value[0]
    gpu = [Unit(f"gpu{i}", _span, (1.0,), Resources(num_cpus=0, num_gpus=1)) for i in range(2)]
    outcomes = {o.key: o for o in executor.run_all(gpu)}
    assert not _overlap(outcomes["gpu0"].value, outcomes["gpu1"].value)  # one GPU: one after the other
    assert (tmp_path / "cpu0.log").read_text().startswith("--- start ")


def test_a_unit_that_raises_is_not_retried_and_its_error_comes_back(cluster, tmp_path):
    def broken():
        raise ValueError("bad cell")

    log = tmp_path / "broken.log"
    (outcome,) = make_executor("ray", retries=2).run_all([Unit("broken", broken, (), Resources(), log)])
    assert outcome.error == "ValueError: bad cell" and outcome.attempts == 1
    assert "Traceback" in log.read_text() and "ValueError: bad cell" in log.read_text()


def test_a_unit_whose_worker_keeps_dying_fails_after_its_retries(cluster, tmp_path):
    def dies():
        os.kill(os.getpid(), signal.SIGKILL)

    log = tmp_path / "dies.log"
    (outcome,) = make_executor("ray", retries=1).run_all([Unit("dies", dies, (), Resources(), log)])
    assert outcome.value is None and "died 2 times" in outcome.error
    assert outcome.attempts == 2 and log.read_text().count("--- start ") == 2


def _spec(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**TINY, "evaluate_base": True, **changes}))
    return path


def _kill_first_worker(logs: Path, killed: list[int], stop: threading.Event) -> None:
    """Kill (SIGKILL) the worker of the first cell that starts: mid-cell, as a crash would."""
    while not stop.is_set() and not killed:
        for log in sorted(logs.glob("*.log")) if logs.is_dir() else []:
            found = re.search(r"--- start .* pid (\d+)", log.read_text())
            if found:
                time.sleep(0.5)
                os.kill(int(found.group(1)), signal.SIGKILL)
                killed.append(int(found.group(1)))
                return
        time.sleep(0.1)


def _metrics(store_dir: Path) -> dict[str, dict]:
    """Each cell's measurements, without what names where they ran (paths, seconds)."""
    rows = ResultsStore(store_dir, read_only=True).rows()
    return {r.id: r.metrics.model_dump(exclude={"target", "seconds", "config"}) for r in rows}


@pytest.mark.slow
def test_a_grid_on_ray_survives_a_killed_worker_and_matches_the_local_executor(cluster, tmp_path, mirror):
    spec = load_spec(_spec(tmp_path, resources={"base": {"num_cpus": 1}, "finetune": {"num_cpus": 1}}))
    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_first_worker, args=(tmp_path / "ray" / "artifacts" / "logs", killed, stop))
    watcher.start()
    try:
        cells = run_spec(spec, tmp_path / "ray", executor="ray", echo=lambda line: None)
    finally:
        stop.set()
        watcher.join()
    assert len(cells) == 3 and len(killed) == 1
    store = ResultsStore(tmp_path / "ray", read_only=True)
    assert sorted(r.id for r in store.rows()) == sorted(c.id for c in cells)  # exactly one row per cell
    assert store.failures() == []
    starts = [p.read_text().count("--- start ") for p in (tmp_path / "ray" / "artifacts" / "logs").glob("*.log")]
    assert sorted(starts) == [1, 1, 2]  # the killed cell ran again, the others once

    run_spec(spec, tmp_path / "local", echo=lambda line: None)  # the default executor, same spec
    assert _metrics(tmp_path / "ray") == _metrics(tmp_path / "local")
