"""The results store: SQLite plus an artifacts folder. One row per *finished* cell (a typed
`CellRecord`: the cell's `CellConfig` and its `EvalResult`), written in a single transaction,
so a crash at any moment leaves either the whole row or nothing; rerunning skips finished
cells. The report reads rows and never re-runs anything. Rows of schema 1 (before typed
records) are read; a row that does not fit the records is a `StoreError` naming its cell."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from tasksafe import __version__
from tasksafe.errors import UserError
from tasksafe.experiments.spec import CellConfig
from tasksafe.results import SCHEMA_VERSION, EvalResult

COLUMNS = ("id", "spec", "schema_version", "config", "metrics", "timings", "versions", "git_commit", "finished_at")


class StoreError(UserError):
    """A results store that cannot be read: missing, not SQLite, not tasksafe's, or damaged."""


class CellRecord(BaseModel):
    """One finished cell as the store keeps it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    spec: str
    schema_version: int
    config: CellConfig
    metrics: EvalResult
    timings: dict[str, float]
    versions: dict[str, str]
    git_commit: str | None
    finished_at: float


class FailedCell(BaseModel):
    """A cell whose last run failed: what went wrong, how often it started, where its log is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    spec: str
    config: CellConfig
    error: str
    attempts: int
    log: str | None
    failed_at: float


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
    out["device"] = _device()
    return out


def _device() -> str:
    """Where the cell's weights computed: `cpu` or `cuda (GPU NAME)`; grids run on one kind of
    device each, and a results file says which (numerics differ slightly between them)."""
    try:
        import torch
    except ImportError:
        return "unknown"
    return f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"


def store_path(root: str | Path) -> Path:
    return Path(root) / "results.sqlite"


def _read_only_uri(path: Path) -> str:
    """An SQLite URI that reads `path` without writing anything beside it. A store left in WAL
    mode by an older tasksafe, with no -wal file (so no writer has it open), is opened as
    immutable: a plain read-only open of a WAL file creates -wal and -shm files."""
    uri = f"{path.absolute().as_uri()}?mode=ro"
    with path.open("rb") as handle:
        header = handle.read(20)
    wal_mode = len(header) == 20 and header[:16] == b"SQLite format 3\x00" and header[18] == 2
    if wal_mode and not path.with_name(path.name + "-wal").exists():
        uri += "&immutable=1"
    return uri


class ResultsStore:
    """`ResultsStore(root)` opens (or creates) the store a run writes; `read_only=True` opens
    an existing one for reading and changes nothing on disk (no table, no journal mode, no
    folder), as `report`, `judge rejudge` and `run --dry-run` need."""

    def __init__(self, root: str | Path, read_only: bool = False):
        self.root = Path(root)
        self.artifacts = self.root / "artifacts"
        self.path = store_path(root)
        if read_only and not self.path.is_file():
            raise StoreError(f"{self.root} has no results.sqlite; run `tasksafe run SPEC --results {self.root}` first")
        try:
            if read_only:
                self._db = sqlite3.connect(_read_only_uri(self.path), uri=True, timeout=60)
            else:
                self.artifacts.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=60)
                # a rollback journal, not WAL: a WAL reader creates -wal/-shm files beside the store
                self._db.execute("PRAGMA journal_mode=DELETE")
                self._db.execute("""CREATE TABLE IF NOT EXISTS cells (
                    id TEXT PRIMARY KEY, spec TEXT NOT NULL, schema_version INTEGER NOT NULL, config TEXT NOT NULL,
                    metrics TEXT NOT NULL, timings TEXT NOT NULL, versions TEXT NOT NULL, git_commit TEXT,
                    finished_at REAL NOT NULL)""")
                self._db.execute("""CREATE TABLE IF NOT EXISTS failures (
                    id TEXT PRIMARY KEY, spec TEXT NOT NULL, config TEXT NOT NULL, error TEXT NOT NULL,
                    attempts INTEGER NOT NULL, log TEXT, failed_at REAL NOT NULL)""")
                self._db.commit()
            self._check_schema()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path}: not a tasksafe results store ({err}); expected the SQLite file that "
                             "`tasksafe run` writes") from None
        except OSError as err:
            raise StoreError(f"{self.path}: cannot be opened ({err.strerror})") from None

    def _check_schema(self) -> None:
        columns = tuple(row[1] for row in self._db.execute("PRAGMA table_info(cells)"))
        if columns != COLUMNS:
            found = "no cells table" if not columns else f"a cells table with columns {', '.join(columns)}"
            raise StoreError(f"{self.path}: an SQLite database but not a tasksafe results store ({found})")
        newest = self._db.execute("SELECT MAX(schema_version) FROM cells").fetchone()[0]
        if newest is not None and newest > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: written by a newer tasksafe (schema {newest}; this one reads "
                             f"{SCHEMA_VERSION}); upgrade tasksafe to read it")

    def finished(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT id FROM cells")}

    def record(self, spec_name: str, cell: CellConfig, result: EvalResult, timings: dict[str, float],
               model_versions: dict[str, str] | None = None) -> None:
        """Store a finished cell; `model_versions` (`{"model:NAME": build}`) say which build of
        each model it used, so cells of different organisms are never merged unnoticed."""
        self.insert(CellRecord(id=cell.id, spec=spec_name, schema_version=SCHEMA_VERSION, config=cell, metrics=result,
                               timings=timings, versions={**versions(), **(model_versions or {})},
                               git_commit=git_commit(), finished_at=time.time()))

    def insert(self, row: CellRecord) -> None:
        """Store a row as it is (a merged one keeps its own versions and times)."""
        from tasksafe.data.io import dumps_strict

        with self._db:
            self._db.execute("INSERT OR IGNORE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (row.id, row.spec, row.schema_version, dumps_strict(row.config.model_dump(mode="json")),
                              row.metrics.model_dump_json(), dumps_strict(row.timings), dumps_strict(row.versions),
                              row.git_commit, row.finished_at))
            self._db.execute("DELETE FROM failures WHERE id = ?", (row.id,))

    def record_failure(self, spec_name: str, cell: CellConfig, error: str, attempts: int, log: str | None) -> None:
        """Note that `cell` failed (its error, how many times it started, its log); the cell
        stays unfinished, so the next run tries it again, and a finished run clears the note."""
        from tasksafe.data.io import dumps_strict

        with self._db:
            self._db.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (cell.id, spec_name, dumps_strict(cell.model_dump(mode="json")), error, attempts, log,
                              time.time()))

    def failures(self) -> list[FailedCell]:
        """The cells whose last run failed and that have not finished since (none in a store
        written before failures were kept)."""
        try:
            raw = self._db.execute("SELECT id, spec, config, error, attempts, log, failed_at FROM failures "
                                   "WHERE id NOT IN (SELECT id FROM cells) ORDER BY failed_at").fetchall()
        except sqlite3.OperationalError:
            return []
        return [FailedCell(id=r[0], spec=r[1], config=json.loads(r[2]), error=r[3], attempts=r[4], log=r[5],
                           failed_at=r[6]) for r in raw]

    def rows(self) -> list[CellRecord]:
        """Every finished cell, oldest first; a damaged row is a `StoreError` naming its cell."""
        try:
            raw = self._db.execute("SELECT id, spec, schema_version, config, metrics, timings, versions, "
                                   "git_commit, finished_at FROM cells ORDER BY finished_at").fetchall()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path}: the store is damaged ({err})") from None
        return [self._row(r) for r in raw]

    def _row(self, r: tuple) -> CellRecord:
        row = {"id": r[0], "spec": r[1], "schema_version": r[2], "git_commit": r[7], "finished_at": r[8]}
        for name, text in zip(("config", "metrics", "timings", "versions"), r[3:7]):
            try:
                row[name] = json.loads(text)
            except (TypeError, ValueError, RecursionError):
                row[name] = None
            if not isinstance(row[name], dict):
                raise StoreError(f"{self.path}: cell {r[0]} is damaged (its {name} is not a JSON object); delete "
                                 "that row and rerun the cell")
        if r[2] in (1, 2):  # before typed records (1) and before held-out phrasings (2): new fields empty
            row["metrics"].setdefault("schema_version", r[2])
            row["config"].setdefault("id", r[0])
        try:
            return CellRecord.model_validate(row)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise StoreError(f"{self.path}: cell {r[0]} is damaged or from an unknown version ({where}: "
                             f"{first['msg']}); delete that row and rerun the cell") from None

    def close(self) -> None:
        self._db.close()
