"""Shared fixtures. Tests read the public datasets from the shared mirror (../shared/data),
never from the network, and write caches into a temporary folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


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


def write_lines(path: Path, lines: list) -> Path:
    """Write each item as a JSONL line (dicts are JSON-encoded, str/bytes written raw)."""
    with open(path, "wb") as handle:
        for line in lines:
            if isinstance(line, (dict, list)):
                line = json.dumps(line)
            handle.write(line if isinstance(line, bytes) else line.encode())
            handle.write(b"\n")
    return path
