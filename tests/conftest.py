"""Shared fixtures. Tests read the public datasets from the shared mirror (../shared/data),
never from the network, and write caches into a temporary folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
collect_ignore = ["example_plugin"]  # a package the plugin tests install; importing it here would register it


@pytest.fixture(autouse=True, scope="session")
def _environment(tmp_path_factory):
    if "TASKSAFE_DATA_DIR" not in os.environ and (SHARED_DATA / "MANIFEST.tsv").is_file():
        os.environ["TASKSAFE_DATA_DIR"] = str(SHARED_DATA)
    os.environ.setdefault("TASKSAFE_CACHE", str(tmp_path_factory.mktemp("tasksafe-cache")))
    yield


@pytest.fixture
def mirror() -> Path:
    """The dataset mirror; missing is a skip on a developer's machine and a failure in CI."""
    value = os.environ.get("TASKSAFE_DATA_DIR")
    if value and (Path(value) / "MANIFEST.tsv").is_file():
        return Path(value)
    if os.environ.get("CI"):
        pytest.fail("CI needs the dataset mirror: set TASKSAFE_DATA_DIR or provide ../shared/data")
    pytest.skip("no dataset mirror (TASKSAFE_DATA_DIR)")


def need_ray():
    """Ray, which `make test` installs (tasksafe[ray]): missing is a skip on a developer's
    machine and a failure in CI."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI needs Ray: make test installs tasksafe[ray]")
        pytest.skip("Ray is not installed (pip install 'tasksafe[ray]')")
    return ray


def write_lines(path: Path, lines: list) -> Path:
    """Write each item as a JSONL line (dicts are JSON-encoded, str/bytes written raw)."""
    with open(path, "wb") as handle:
        for line in lines:
            if isinstance(line, (dict, list)):
                line = json.dumps(line)
            handle.write(line if isinstance(line, bytes) else line.encode())
            handle.write(b"\n")
    return path


def eval_result(harmful: dict[str, tuple[int, int]] | None = None, plain_k: int = 0, overrefused: tuple = (1, 10),
                task: tuple | None = None, safety_examples: int = 0, judge: str = "keywords"):
    """A typed evaluation result: `harmful` maps a set to (k in-format, n); `task` is (k, n)."""
    from tasksafe.results import (
        EvalResult,
        HarmfulSetResult,
        JudgeRecord,
        ModeRates,
        OverRefusal,
        RateRecord,
        TargetRecord,
        TaskResult,
    )

    def rates(k, n):
        return ModeRates(asr=RateRecord.of(k, n), non_refusal=RateRecord.of(k, n), degenerate=RateRecord.of(0, n))

    harmful = harmful or {"advbench": (1, 4)}
    return EvalResult(
        target=TargetRecord(model="tiny-random"), config={}, tasksafe_version="test",
        harmful={name: HarmfulSetResult(plain=rates(min(plain_k, n), n), in_format=rates(k, n))
                 for name, (k, n) in harmful.items()},
        overrefusal=OverRefusal(xstest_safe=RateRecord.of(*overrefused)),
        task=TaskResult(task="sst2", strategy="aoa", generation_accuracy=RateRecord.of(*task),
                        unparsed=RateRecord.of(0, task[1])) if task else None,
        judge=JudgeRecord(name=judge), seconds=1.0, safety_examples=safety_examples)


def cell_config(strategy="aoa", mitigation="none", seed=0, task="sst2", kind="finetune", options=None, budget=0):
    from tasksafe.evaluate.config import EvalSettings
    from tasksafe.experiments.spec import CellConfig
    from tasksafe.train.config import FinetuneSettings

    return CellConfig(kind=kind, model="tiny-random", task=task, strategy=strategy, mitigation=mitigation, budget=budget,
                      seed=seed, options=options, train_examples=8 if kind == "finetune" else None,
                      train=FinetuneSettings() if kind == "finetune" else None, eval=EvalSettings()).with_id()


def cell_record(config, result, spec: str = "test"):
    from tasksafe.experiments.store import CellRecord

    return CellRecord(id=config.id, spec=spec, schema_version=2, config=config, metrics=result, timings={},
                      versions={"tasksafe": "test"}, git_commit=None, finished_at=0.0)
