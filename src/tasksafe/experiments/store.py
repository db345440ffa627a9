"""The results store: SQLite (WAL) plus an artifacts folder. One row per *finished* cell,
written in a single transaction, so a crash at any moment leaves either the whole row or
nothing; rerunning skips finished cells. The report reads rows and never re-runs anything."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tasksafe import __version__

SCHEMA_VERSION = 1


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"tasksafe": __version__, "python": sys.version.split()[0]}
    for package in ("torch", "transformers", "trl", "peft"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


class ResultsStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.artifacts = self.root / "artifacts"
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.root / "results.sqlite", timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("""CREATE TABLE IF NOT EXISTS cells (
            id TEXT PRIMARY KEY, spec TEXT NOT NULL, schema_version INTEGER NOT NULL, config TEXT NOT NULL,
            metrics TEXT NOT NULL, timings TEXT NOT NULL, versions TEXT NOT NULL, git_commit TEXT,
            finished_at REAL NOT NULL)""")
        self._db.commit()

    def finished(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT id FROM cells")}

    def record(self, spec_name: str, cell: dict, metrics: dict, timings: dict) -> None:
        with self._db:
            self._db.execute("INSERT OR IGNORE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (cell["id"], spec_name, SCHEMA_VERSION, json.dumps(cell), json.dumps(metrics),
                              json.dumps(timings), json.dumps(versions()), git_commit(), time.time()))

    def rows(self) -> list[dict]:
        rows = self._db.execute("SELECT id, spec, config, metrics, timings, versions, git_commit, finished_at "
                                "FROM cells ORDER BY finished_at").fetchall()
        return [{"id": r[0], "spec": r[1], "config": json.loads(r[2]), "metrics": json.loads(r[3]),
                 "timings": json.loads(r[4]), "versions": json.loads(r[5]), "git_commit": r[6], "finished_at": r[7]}
                for r in rows]

    def close(self) -> None:
        self._db.close()
