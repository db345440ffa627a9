"""Re-judge the stored responses of finished cells with another judge: how much of a figure
depends on the judge? Reads the results store and each cell's samples.jsonl; generates nothing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from tasksafe.experiments.spec import CellConfig
from tasksafe.experiments.store import CellRecord, ResultsStore
from tasksafe.results import MODES as RESULT_MODES
from tasksafe.results import RateRecord, Record, ReplyRecord

MODES = {mode.samples: mode.short for mode in RESULT_MODES if mode.samples}
"""Sample kinds re-judged, and the mode each belongs to (`tasksafe.results.MODES`)."""


def read_samples(path: str | Path) -> Iterator[ReplyRecord]:
    """The lines of an evaluation's samples.jsonl as `ReplyRecord`s; a damaged line (truncated,
    not a reply, a judged kind without its verdict) is a `DataFileError` naming the file and line."""
    from pydantic import ValidationError

    from tasksafe.data.chat import iter_json_lines
    from tasksafe.errors import DataFileError

    for number, line in iter_json_lines(path, hint=""):
        try:
            sample = ReplyRecord.model_validate(line)
        except ValidationError as err:
            first = err.errors()[0]
            raise DataFileError(str(path), f"not a stored reply ({'.'.join(map(str, first['loc']))}: {first['msg']}); "
                                           "the evaluation's samples are damaged", number) from None
        if sample.kind in MODES and sample.verdict is None:
            raise DataFileError(str(path), "not a stored reply (a judged reply needs its verdict); the evaluation's "
                                           "samples are damaged", number)
        yield sample


def stored_samples(results_dir: str | Path) -> Iterator[tuple[CellRecord, list[ReplyRecord]]]:
    """Each finished cell of a store with its evaluation's stored samples (cells without
    samples are skipped)."""
    store = ResultsStore(results_dir, read_only=True)
    rows = store.rows()
    store.close()
    for row in rows:
        path = Path(results_dir) / "artifacts" / "evals" / row.id / "samples.jsonl"
        if path.is_file():
            yield row, list(read_samples(path))


class RejudgeEntry(Record):
    """One (cell, harmful set, mode): ASR by the stored verdicts and by another judge."""

    cell: CellConfig
    set: str
    mode: str
    n: int
    stored_judge: str
    stored_asr: RateRecord
    asr: RateRecord
    agreement: RateRecord = Field(description="how often the two judges give the same label")


def rejudge(results_dir: str | Path, judge_name: str, harmful_set: str | None = None) -> list[RejudgeEntry]:
    """One entry per (cell, harmful set, mode) of every finished cell with stored samples."""
    from tasksafe.judges import JUDGES, judge_many

    judge = JUDGES.get(judge_name)()
    out = []
    for row, samples in stored_samples(results_dir):
        groups = defaultdict(list)
        for sample in samples:
            if sample.kind in MODES and harmful_set in (None, sample.set):
                groups[(sample.set, MODES[sample.kind])].append(sample)
        for (set_name, mode), samples in groups.items():
            verdicts = judge_many(judge, [(s.prompt[-1]["content"], s.response) for s in samples])
            n = len(samples)
            out.append(RejudgeEntry(
                cell=row.config, set=set_name, mode=mode, n=n, stored_judge=row.metrics.judge.name,
                stored_asr=RateRecord.of(sum(s.verdict == "compliance" for s in samples), n),
                asr=RateRecord.of(sum(v.label == "compliance" for v in verdicts), n),
                agreement=RateRecord.of(sum(v.label == s.verdict for v, s in zip(verdicts, samples)), n)))
    return out
