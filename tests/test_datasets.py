import csv
import hashlib
import shutil

import pytest

from tasksafe.data import DATASETS, DataFiles, Kind, dataset_info, hashed_split, load
from tasksafe.data import datasets as datasets_module
from tasksafe.data.records import (
    BenignInstruction,
    HarmfulPrompt,
    LabelledCompletion,
    OverRefusalPrompt,
    SafetyPair,
    TaskItem,
)
from tasksafe.data.sources import pins
from tasksafe.errors import UserError

RECORD_TYPES = {Kind.TASK: TaskItem, Kind.HARMFUL: HarmfulPrompt, Kind.SAFETY: SafetyPair,
                Kind.OVERREFUSAL: OverRefusalPrompt, Kind.LABELLED: LabelledCompletion, Kind.BENIGN: BenignInstruction}


def manifest_rows(mirror):
    with open(mirror / "MANIFEST.tsv", encoding="utf-8") as handle:
        return {row["relative_path"]: row for row in csv.DictReader(handle, delimiter="\t")}


def test_every_manifest_file_belongs_to_exactly_one_dataset(mirror):
    claimed = [f for name in DATASETS for f in dataset_info(name).files + dataset_info(name).aux]
    assert len(claimed) == len(set(claimed))
    assert set(claimed) == set(manifest_rows(mirror))


def test_pins_agree_with_the_mirror_manifest(mirror):
    for path, row in manifest_rows(mirror).items():
        pin = pins()[path]
        assert (pin.sha256, pin.bytes, pin.rows) == (row["sha256"], int(row["bytes"]),
                                                      int(row["rows"]) if row["rows"].isdigit() else None)


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_loads_with_the_manifest_row_count(mirror, name):
    info = dataset_info(name)
    records = load(name)
    rows = manifest_rows(mirror)
    assert len(records) == info.rows == sum(int(rows[f]["rows"]) for f in info.files)
    assert all(isinstance(r, RECORD_TYPES[info.kind]) for r in records)
    assert len({r.id for r in records}) == len(records), "ids are unique"
    for record in records[:50]:
        text = getattr(record, "question", None) or record.prompt
        assert text.strip()


def test_task_items_have_valid_gold_answers(mirror):
    for task in ("sst2", "agnews", "mmlu", "piqa", "boolq"):
        for item in load(task):
            assert item.choices and 0 <= int(item.answer) < len(item.choices), item
    for item in load("gsm8k"):
        float(item.answer)


def test_splits_are_deterministic_and_documented(mirror):
    first = [(i.id, i.split) for i in load("piqa")]
    assert first == [(i.id, i.split) for i in load("piqa")]
    test_share = sum(split == "test" for _, split in first) / len(first)
    assert 0.25 < test_share < 0.35
    assert {i.split for i in load("mmlu")} == {"dev", "train", "test"}
    assert {i.split for i in load("sst2")} == {"train", "validation", "test"}
    assert hashed_split("piqa-dev-0") == hashed_split("piqa-dev-0")


def test_unknown_split_lists_the_splits(mirror):
    with pytest.raises(UserError, match="its splits are: test, train, validation"):
        load("sst2", split="dev")


def test_noncommercial_license_note_is_printed_once_per_licence(mirror, capsys, monkeypatch):
    monkeypatch.setattr(datasets_module, "_license_shown", set())
    load("bianchi-alpaca")
    load("bianchi-alpaca")
    load("bianchi-qharm")  # the same licence: no second note
    load("advbench")
    err = capsys.readouterr().err
    assert err.count("licensed CC BY-NC 4.0; use it for research and non-commercial work only") == 1
    assert "bianchi-alpaca (and any other CC BY-NC 4.0 set" in err and "advbench" not in err


def copy_mirror_file(mirror, tmp_path, relative):
    target = tmp_path / "mirror" / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(mirror / relative, target)
    shutil.copy(mirror / "MANIFEST.tsv", tmp_path / "mirror" / "MANIFEST.tsv")
    return target


def test_mirror_checksum_is_verified_once_and_cached(mirror, tmp_path, monkeypatch):
    relative = "harmful/advbench_harmful_behaviors.csv"
    copy_mirror_file(mirror, tmp_path, relative)
    files = DataFiles(mirror=tmp_path / "mirror", cache=tmp_path / "cache")
    calls = []
    from tasksafe.data import sources

    original = sources.sha256_of
    monkeypatch.setattr(sources, "sha256_of", lambda p: calls.append(p) or original(p))
    assert files.path(relative) == tmp_path / "mirror" / relative
    assert files.path(relative) == tmp_path / "mirror" / relative
    assert len(calls) == 1


def test_a_damaged_mirror_file_is_refused(mirror, tmp_path):
    relative = "harmful/advbench_harmful_behaviors.csv"
    target = copy_mirror_file(mirror, tmp_path, relative)
    target.write_text(target.read_text().replace("bomb", "cake"))
    with pytest.raises(UserError, match="does not match the manifest"):
        DataFiles(mirror=tmp_path / "mirror", cache=tmp_path / "cache").path(relative)


class FakeTransport:
    def __init__(self, payload: bytes | Exception):
        self.payload, self.urls = payload, []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        if isinstance(self.payload, Exception):
            raise self.payload
        return self.payload


def test_download_from_the_pinned_source_with_a_fake_transport(mirror, tmp_path):
    relative = "tasks/agnews/classes.txt"
    payload = (mirror / relative).read_bytes()
    transport = FakeTransport(payload)
    files = DataFiles(mirror=None, cache=tmp_path / "cache", transport=transport)
    path = files.path(relative)
    assert path.read_bytes() == payload and path.is_relative_to(tmp_path / "cache")
    pin = pins()[relative]
    commit = pin.source.split("@")[1].split(":")[0]
    assert transport.urls == [f"https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/{commit}/data/ag_news_csv/classes.txt"]
    assert hashlib.sha256(payload).hexdigest() == pin.sha256
    files.path(relative)
    assert len(transport.urls) == 1, "the second resolution uses the cached copy"


def test_download_with_a_wrong_checksum_is_refused(tmp_path):
    files = DataFiles(mirror=None, cache=tmp_path / "cache", transport=FakeTransport(b"tampered"))
    with pytest.raises(UserError, match="refusing to use it"):
        files.path("tasks/agnews/classes.txt")
    assert not (tmp_path / "cache" / "data" / "tasks/agnews/classes.txt").exists()


def test_no_network_says_to_set_the_mirror(tmp_path):
    files = DataFiles(mirror=None, cache=tmp_path / "cache", transport=FakeTransport(OSError("network unreachable")))
    with pytest.raises(UserError, match="TASKSAFE_DATA_DIR"):
        files.path("tasks/agnews/classes.txt")
