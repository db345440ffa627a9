"""Results that outlive the machine: a results store's finished cells exported to a compact
JSONL file (one `CellRecord` per line, no adapters, generations or other artifacts) that is
committed in the repository, and merged back into a store on another machine, so a grid can
continue there and the report and docs can be rebuilt from the committed file alone.

Merging refuses cells made by another tasksafe version or another build of a model than the
cells already gathered (the organism is rebuilt when its recipe changes), unless asked."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from tasksafe.errors import DataFileError, UserError
from tasksafe.experiments.store import CellRecord, ResultsStore

HINT = "each line is one finished cell, as `tasksafe results export` writes it"


def export_results(results_dir: str | Path, output: str | Path) -> int:
    """Write every finished cell of the store to `output` (JSONL, sorted by cell id so a
    re-export of a grown store diffs by its new lines); returns how many."""
    from tasksafe.data.io import atomic_write, check_outputs

    store = ResultsStore(results_dir, read_only=True)
    rows = sorted(store.rows(), key=lambda r: r.id)
    store.close()
    check_outputs([output], inputs=[store.path])
    with atomic_write(output) as handle:
        for row in rows:
            handle.write(row.model_dump_json() + "\n")
    return len(rows)


def read_results_file(path: str | Path) -> list[CellRecord]:
    """The cells of an exported file; a damaged line is a `DataFileError` naming it."""
    from tasksafe.data.chat import iter_json_lines

    rows = []
    for number, value in iter_json_lines(path, hint=HINT):
        try:
            rows.append(CellRecord.model_validate(value))
        except ValidationError as err:
            first = err.errors()[0]
            raise DataFileError(str(path), f"not a finished cell ({'.'.join(map(str, first['loc']))}: "
                                           f"{first['msg']})", number, HINT) from None
    return rows


def read_rows(source: str | Path) -> list[CellRecord]:
    """Finished cells from a results folder or from an exported file."""
    return read_results_file(source) if Path(source).is_file() else ResultsStore(source, read_only=True).rows()


def provenance_key(row: CellRecord) -> tuple:
    """What must match for cells to be compared in one table: the tasksafe version that made
    them, and the build of every model they used."""
    return (row.versions.get("tasksafe"),) + tuple(sorted((k, v) for k, v in row.versions.items()
                                                         if k.startswith("model:")))


@dataclass
class MergeReport:
    added: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)


def merge_results(sources: Iterable[str | Path], results_dir: str | Path, allow_mismatch: bool = False) -> MergeReport:
    """Add the cells of exported files (or other stores) to the store in `results_dir`; cells
    it has already are skipped. Cells whose provenance (`provenance_key`) differs from the
    cells there (or from each other) are refused, naming both, unless `allow_mismatch`."""
    incoming = [(str(source), row) for source in sources for row in read_rows(source)]
    store = ResultsStore(results_dir)
    try:
        present = {row.id: row for row in store.rows()}
        if not allow_mismatch:
            _check_provenance(list(present.values()), incoming, store.path)
        report = MergeReport()
        for _, row in incoming:
            if row.id in present:
                report.already_there.append(row.id)
                continue
            store.insert(row)
            present[row.id] = row
            report.added.append(row.id)
        return report
    except sqlite3.DatabaseError as err:
        raise UserError(f"{store.path}: cannot be written ({err})") from None
    finally:
        store.close()


def _check_provenance(present: list[CellRecord], incoming: list[tuple[str, CellRecord]], target: Path) -> None:
    reference = (str(target), present[0]) if present else (incoming[0] if incoming else None)
    if reference is None:
        return
    expected = provenance_key(reference[1])
    for source, row in incoming:
        if provenance_key(row) != expected:
            raise UserError(f"{source}: cell {row.id} was made by {_describe(row)}, the cells of {reference[0]} by "
                            f"{_describe(reference[1])}; merge only results of one version, or pass --allow-mismatch")


def _describe(row: CellRecord) -> str:
    models = ", ".join(f"{k.removeprefix('model:')} {v}" for k, v in sorted(row.versions.items()) if k.startswith("model:"))
    return f"tasksafe {row.versions.get('tasksafe')}" + (f" with {models}" if models else "")
