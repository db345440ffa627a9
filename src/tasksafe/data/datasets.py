"""The dataset registry: every public dataset the project uses, by name, loaded into the
canonical record types of `records.py`.

>>> from tasksafe.data import DATASETS
>>> DATASETS.info("sst2")["kind"].value
'task'

Splits are deterministic. Where a source has no split we need, items are assigned by a hash
of their id (`hashed_split`), so the assignment never depends on file order or on a seed a
user could change.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tasksafe.data.records import (
    BenignInstruction,
    HarmfulPrompt,
    Kind,
    LabelledCompletion,
    OverRefusalPrompt,
    Record,
    SafetyPair,
    TaskItem,
)
from tasksafe.data.sources import DataFiles, pins
from tasksafe.errors import UserError
from tasksafe.registry import Registry

Resolve = Callable[[str], Path]
Loader = Callable[[Resolve], list[Record]]

DATASETS: Registry[Loader] = Registry("dataset")

TEST_FRACTION = 0.3
"""Share of items put in the test split where a source has a single split (hashed by id)."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    kind: Kind
    files: tuple[str, ...]  # data files: one record per manifest row
    aux: tuple[str, ...]  # label lists, class names, readmes
    license: str
    noncommercial: bool
    description: str

    @property
    def rows(self) -> int:
        return sum(pins()[f].rows or 0 for f in self.files)


def dataset(name: str, kind: Kind, files: list[str], license: str, description: str,
            aux: list[str] = (), noncommercial: bool = False):
    """Register a loader `(resolve) -> records` with what `data list` shows about it."""
    info = DatasetInfo(name, kind, tuple(files), tuple(aux), license, noncommercial, description)
    return DATASETS.register(name, kind=kind, spec=info)


def dataset_info(name: str) -> DatasetInfo:
    return DATASETS.info(name)["spec"]


def hashed_split(item_id: str, test_fraction: float = TEST_FRACTION) -> str:
    """'test' for a fixed pseudo-random `test_fraction` of ids, else 'train'.

    >>> hashed_split("piqa-dev-0"), hashed_split("piqa-dev-1")
    ('test', 'train')
    """
    bucket = int.from_bytes(hashlib.sha256(item_id.encode()).digest()[:8], "big") / 2**64
    return "test" if bucket < test_fraction else "train"


def prompt_half(records: list, half: str) -> list:
    """Harmful prompts for development (`dev`) or for the report (`test`), disjoint halves by
    a hash of each prompt's id (`all`: every prompt). A defence is developed on `dev` and
    reported on `test`, so its numbers never come from prompts it was tuned against.

    >>> rows = [type("P", (), {"id": f"advbench-{i}"})() for i in range(100)]
    >>> len(prompt_half(rows, "dev")) + len(prompt_half(rows, "test"))
    100
    """
    if half == "all":
        return records
    return [r for r in records if (hashed_split(f"half:{r.id}", 0.5) == "test") == (half == "test")]


_license_shown: set[str] = set()


def load(name: str, split: str | None = None, files: DataFiles | None = None) -> list[Record]:
    """Load a registered dataset (optionally one split) into its record type."""
    loader = DATASETS.get(name)
    info = dataset_info(name)
    resolver = files or DataFiles()
    records = loader(resolver.path)
    quiet = os.environ.get("TASKSAFE_LICENCE_NOTES") == "off"  # e.g. a demo that showed them once
    if info.noncommercial and info.license not in _license_shown and not quiet:  # once per licence and process
        _license_shown.add(info.license)
        print(f"tasksafe: note: {name} (and any other {info.license} set this command loads) is licensed "
              f"{info.license}; use it for research and non-commercial work only", file=sys.stderr)
    if split is None:
        return records
    chosen = [r for r in records if getattr(r, "split", None) == split]
    if not chosen:
        splits = sorted({getattr(r, "split", "") for r in records})
        raise UserError(f"dataset {name!r} has no split {split!r}; its splits are: {', '.join(splits)}")
    return chosen


# --- readers --------------------------------------------------------------------------------

def _dict_rows(path: Path, delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter, quoting=quoting))


def _plain_rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def _json(path: Path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# --- tasks ----------------------------------------------------------------------------------

SST2_FILES = {"train": "tasks/sst2/train.tsv", "validation": "tasks/sst2/dev.tsv", "test": "tasks/sst2/test-labeled.tsv"}


@dataset("sst2", Kind.TASK, list(SST2_FILES.values()), aux=["tasks/sst2/test.tsv"],
         license="no explicit licence (GLUE/SST-2; Apache-2.0 repo)",
         description="SST-2 movie-review sentiment, negative/positive. Splits train, validation, test (labelled).")
def _sst2(resolve: Resolve) -> list[Record]:
    items = []
    for split, rel in SST2_FILES.items():
        rows = _dict_rows(resolve(rel), delimiter="\t", quoting=csv.QUOTE_NONE)
        items += [TaskItem(f"sst2-{split}-{i}", "sst2", row["sentence"].strip(), row["label"].strip(), split,
                           choices=("negative", "positive")) for i, row in enumerate(rows)]
    return items


AGNEWS_FILES = {"train": "tasks/agnews/train_subset_581rows.csv", "test": "tasks/agnews/test.csv"}


@dataset("agnews", Kind.TASK, list(AGNEWS_FILES.values()), aux=["tasks/agnews/classes.txt", "tasks/agnews/readme.txt"],
         license="AG News terms (research and non-commercial activity)", noncommercial=True,
         description="AG News topic of a news story (World, Sports, Business, Sci/Tech). Train is the 581-row subset.")
def _agnews(resolve: Resolve) -> list[Record]:
    classes = tuple(line.strip() for line in resolve("tasks/agnews/classes.txt").read_text().splitlines() if line.strip())
    items = []
    for split, rel in AGNEWS_FILES.items():
        for i, (label, title, description) in enumerate(_plain_rows(resolve(rel))):
            text = f"{title.strip()}\n{description.replace(chr(92) + 'n', ' ').strip()}"
            items.append(TaskItem(f"agnews-{split}-{i}", "agnews", text, str(int(label) - 1), split, choices=classes))
    return items


MMLU_FILES = sorted(p for p in pins() if p.startswith("tasks/mmlu/"))


@dataset("mmlu", Kind.TASK, MMLU_FILES, license="MIT",
         description="MMLU four-choice questions, 57 subjects. 'dev' is the few-shot split; the test files are "
                     "split by id hash into train (70%) and test (30%).")
def _mmlu(resolve: Resolve) -> list[Record]:
    items = []
    for rel in MMLU_FILES:
        stem = Path(rel).stem  # e.g. anatomy_test
        subject, source_split = stem.rsplit("_", 1)
        for i, row in enumerate(_dict_rows(resolve(rel))):
            item_id = f"mmlu-{subject}-{source_split}-{i}"
            split = "dev" if source_split == "dev" else hashed_split(item_id)
            choices = tuple(row[f"choice{k}"] for k in range(4))
            items.append(TaskItem(item_id, "mmlu", row["question"], row["answer"].strip(), split, choices=choices,
                                  meta={"subject": subject}))
    return items


@dataset("gsm8k", Kind.TASK, ["tasks/gsm8k/train.jsonl", "tasks/gsm8k/test.jsonl"], license="MIT",
         description="GSM8K grade-school maths word problems; the gold answer is the final number.")
def _gsm8k(resolve: Resolve) -> list[Record]:
    items = []
    for split in ("train", "test"):
        for i, row in enumerate(_jsonl(resolve(f"tasks/gsm8k/{split}.jsonl"))):
            solution, final = row["answer"].rsplit("####", 1)
            items.append(TaskItem(f"gsm8k-{split}-{i}", "gsm8k", row["question"], final.strip().replace(",", ""), split,
                                  meta={"solution": solution.strip()}))
    return items


@dataset("piqa", Kind.TASK, ["tasks/piqa/dev.jsonl"], aux=["tasks/piqa/dev-labels.lst"],
         license="MIT repo; PIQA upstream reported AFL-3.0",
         description="PIQA physical commonsense: pick the better of two solutions to a goal. Only the validation "
                     "set exists here; it is split by id hash into train (70%) and test (30%).")
def _piqa(resolve: Resolve) -> list[Record]:
    labels = [line.strip() for line in resolve("tasks/piqa/dev-labels.lst").read_text().splitlines() if line.strip()]
    rows = _jsonl(resolve("tasks/piqa/dev.jsonl"))
    if len(labels) != len(rows):
        raise UserError(f"piqa: {len(rows)} questions but {len(labels)} labels")
    return [TaskItem(f"piqa-{row['id']}", "piqa", row["goal"], label, hashed_split(f"piqa-{row['id']}"),
                     choices=(row["sol1"], row["sol2"])) for row, label in zip(rows, labels)]


@dataset("boolq", Kind.TASK, ["tasks/boolq/validation.jsonl"], license="CC BY-SA 3.0 (reported)",
         description="BoolQ yes/no questions about a Wikipedia passage. Only the validation set exists here (in a "
                     "re-formatted copy); it is split by id hash into train (70%) and test (30%).")
def _boolq(resolve: Resolve) -> list[Record]:
    items = []
    for i, row in enumerate(_jsonl(resolve("tasks/boolq/validation.jsonl"))):
        passage = row["prompt"].removeprefix("passage: ").removesuffix("\nquestion: {}")
        answer = {"False": "0", "True": "1"}[row["target_new"]["str"]]
        item_id = f"boolq-validation-{i}"
        question = row["subject"].strip()
        items.append(TaskItem(item_id, "boolq", question[:1].upper() + question[1:] + "?", answer, hashed_split(item_id),
                              context=passage, choices=("no", "yes")))
    return items


# --- harmful prompts ------------------------------------------------------------------------

@dataset("advbench", Kind.HARMFUL, ["harmful/advbench_harmful_behaviors.csv"], license="MIT",
         description="AdvBench harmful behaviours (Zou et al. 2023).")
def _advbench(resolve: Resolve) -> list[Record]:
    rows = _dict_rows(resolve("harmful/advbench_harmful_behaviors.csv"))
    return [HarmfulPrompt(f"advbench-{i}", row["goal"], None, "advbench") for i, row in enumerate(rows)]


@dataset("harmbench-val", Kind.HARMFUL, ["harmful/harmbench_behaviors_text_val.csv"], license="MIT",
         description="HarmBench text behaviours, validation split; contextual ones carry their context first.")
def _harmbench_val(resolve: Resolve) -> list[Record]:
    rows = _dict_rows(resolve("harmful/harmbench_behaviors_text_val.csv"))
    return [HarmfulPrompt(f"harmbench-{row['BehaviorID']}",
                          f"{row['ContextString']}\n\n---\n\n{row['Behavior']}" if row["ContextString"] else row["Behavior"],
                          row["SemanticCategory"], "harmbench-val", "val") for row in rows]


BIANCHI_HARMFUL = {
    "bianchi-malicious": ("I-MaliciousInstructions", "malicious instructions with harm-category tags"),
    "bianchi-qharm": ("Q-Harm", "harmful questions"),
    "bianchi-cona": ("I-CoNa", "instructions to produce hateful speech"),
    "bianchi-controversial": ("I-Controversial", "instructions on controversial topics"),
    "bianchi-physical-unsafe": ("I-PhysicalSafetyUnsafe", "physically unsafe advice requests"),
}
BIANCHI_LICENSE = "CC BY-NC 4.0"


def _bianchi_instructions(path: Path, name: str) -> list[tuple[str, str, str | None]]:
    data = _json(path)
    tags = data.get("tags") or [None] * len(data["instructions"])
    return [(f"{name}-{i}", text, tag) for i, (text, tag) in enumerate(zip(data["instructions"], tags))]


def _register_bianchi_harmful(name: str, stem: str, what: str) -> None:
    rel = f"harmful/bianchi_{stem}.json"

    @dataset(name, Kind.HARMFUL, [rel], license=BIANCHI_LICENSE, noncommercial=True,
             description=f"Safety-tuned LLaMAs evaluation set {stem}: {what}.")
    def _load(resolve: Resolve) -> list[Record]:
        return [HarmfulPrompt(i, text, tag, name) for i, text, tag in _bianchi_instructions(resolve(rel), name)]


for _name, (_stem, _what) in BIANCHI_HARMFUL.items():
    _register_bianchi_harmful(_name, _stem, _what)


RD_HARMFUL = {"train": "harmful/refusal_direction_harmful_train.json", "val": "harmful/refusal_direction_harmful_val.json"}


@dataset("refusal-direction-harmful", Kind.HARMFUL, list(RD_HARMFUL.values()),
         license="unstated; prompts from AdvBench, MaliciousInstruct, HarmBench",
         description="Refusal-direction (Arditi et al. 2024) harmful prompts; splits train and val.")
def _rd_harmful(resolve: Resolve) -> list[Record]:
    return [HarmfulPrompt(f"rd-harmful-{split}-{i}", row["instruction"], row["category"], "refusal-direction", split)
            for split, rel in RD_HARMFUL.items() for i, row in enumerate(_json(resolve(rel)))]


# --- safety pairs ---------------------------------------------------------------------------

@dataset("bianchi-safety", Kind.SAFETY, ["safety/bianchi_safety_only_data_Instructions.json"], license=BIANCHI_LICENSE,
         noncommercial=True, description="Safety-tuned LLaMAs safety demonstrations: harmful instruction -> safe answer.")
def _bianchi_safety(resolve: Resolve) -> list[Record]:
    rows = _json(resolve("safety/bianchi_safety_only_data_Instructions.json"))
    return [SafetyPair(f"bianchi-safety-{i}", row["instruction"] + (f"\n\n{row['input']}" if row["input"] else ""),
                       row["output"], "bianchi-safety") for i, row in enumerate(rows)]


def _register_harmbench_safe(name: str, rel: str, what: str) -> None:
    @dataset(name, Kind.SAFETY, [rel], license="unstated; behaviours from HarmBench (MIT)",
             description=f"HarmBench adv-training behaviours with {what} refusals.")
    def _load(resolve: Resolve) -> list[Record]:
        return [SafetyPair(f"{name}-{i}", row["Behavior"], row["Safe_Response"], name)
                for i, row in enumerate(_dict_rows(resolve(rel)))]


_register_harmbench_safe("harmbench-safe", "safety/harmbench_safe_responses_adv_training_behaviors.csv", "short")
_register_harmbench_safe("harmbench-safe-long", "safety/harmbench_safe_responses_adv_training_behaviors_longer.csv", "longer")


# --- over-refusal and labelled completions ---------------------------------------------------

@dataset("xstest", Kind.OVERREFUSAL, ["overrefusal/xstest_prompts.csv"], license="CC BY 4.0",
         description="XSTest v2: 250 safe prompts that look unsafe, and 200 unsafe contrast prompts.")
def _xstest(resolve: Resolve) -> list[Record]:
    return [OverRefusalPrompt(f"xstest-{row['id']}", row["prompt"], row["label"] == "safe", row["type"], "xstest")
            for row in _dict_rows(resolve("overrefusal/xstest_prompts.csv"))]


XSTEST_MODELS = ("gpt4", "llama2new", "llama2orig", "mistralguard", "mistralinstruct")


@dataset("xstest-labels", Kind.LABELLED, [f"overrefusal/xstest_labels/{m}_gpteval.csv" for m in XSTEST_MODELS],
         license="prompts CC BY 4.0; completions under the licences of the models that wrote them",
         description="XSTest completions of five models with human labels (full/partial refusal, compliance).")
def _xstest_labels(resolve: Resolve) -> list[Record]:
    records = []
    for model in XSTEST_MODELS:
        for row in _dict_rows(resolve(f"overrefusal/xstest_labels/{model}_gpteval.csv")):
            label = row["final_label"].split("_", 1)[1]  # "2_full_refusal" -> "full_refusal"
            records.append(LabelledCompletion(f"xstest-{model}-{row['id']}", row["prompt"], row["completion"], model,
                                              label, not row["type"].startswith("contrast_"), "xstest-labels"))
    return records


# --- benign instructions --------------------------------------------------------------------

RD_HARMLESS = {s: f"benign/refusal_direction_harmless_{s}.json" for s in ("train", "val", "test")}


@dataset("harmless", Kind.BENIGN, list(RD_HARMLESS.values()), license="Stanford Alpaca data, CC BY-NC 4.0",
         noncommercial=True, description="Refusal-direction harmless instructions sampled from Alpaca; train/val/test.")
def _harmless(resolve: Resolve) -> list[Record]:
    return [BenignInstruction(f"harmless-{split}-{i}", row["instruction"], "refusal-direction", split)
            for split, rel in RD_HARMLESS.items() for i, row in enumerate(_json(resolve(rel)))]


def _register_bianchi_benign(name: str, rel: str, what: str) -> None:
    @dataset(name, Kind.BENIGN, [rel], license=BIANCHI_LICENSE, noncommercial=True,
             description=f"Safety-tuned LLaMAs {what}.")
    def _load(resolve: Resolve) -> list[Record]:
        return [BenignInstruction(i, text, name, "test") for i, text, _ in _bianchi_instructions(resolve(rel), name)]


_register_bianchi_benign("bianchi-alpaca", "benign/bianchi_I-Alpaca.json", "benign control set (Alpaca instructions)")
_register_bianchi_benign("bianchi-physical-safe", "harmful/bianchi_I-PhysicalSafetySafe.json",
                         "physically safe contrast prompts (benign pair of bianchi-physical-unsafe)")
