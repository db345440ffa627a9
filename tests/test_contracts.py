"""The contracts between the stages: typed results with a versioned schema, stores of older
versions read, no import cycles, and a mitigation's post-training step applied wherever a
protected dataset is trained."""

from __future__ import annotations

import ast
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from tasksafe.errors import UserError
from tasksafe.results import SCHEMA_FINGERPRINT, SCHEMA_VERSION, EvalResult
from tests.conftest import eval_result, write_lines

SRC = Path(__file__).resolve().parents[1] / "src" / "tasksafe"


def import_graph() -> dict[str, set[str]]:
    """Module -> the tasksafe modules it imports (at the top or inside functions)."""
    modules = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).rstrip(".")
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    graph[name] |= {target} if target in modules else ({base} if base in modules else set())
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == 1:
                return path[path.index(child):] + [child]
            if child not in state and (found := visit(child)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_of_tasksafe_imports_itself_back():
    graph = import_graph()
    assert len(graph) > 60
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the checker finds one


def test_models_depend_only_on_base_modules():
    graph = import_graph()
    below = {"tasksafe.errors", "tasksafe.paths", "tasksafe.registry", "tasksafe", "tasksafe.data.io"}
    for module in (m for m in graph if m.startswith("tasksafe.models")):
        assert graph[module] <= below | {m for m in graph if m.startswith("tasksafe.models")}, (module, graph[module])


def test_the_result_schema_changes_only_with_its_version():
    schema = json.dumps(EvalResult.model_json_schema(), sort_keys=True)
    fingerprint = hashlib.sha256(schema.encode()).hexdigest()[:16]
    assert fingerprint == SCHEMA_FINGERPRINT, (
        f"EvalResult changed (fingerprint {fingerprint}): bump SCHEMA_VERSION, make the store read rows of the old "
        "version, and set SCHEMA_FINGERPRINT in src/tasksafe/results.py")


def test_a_renamed_or_missing_field_is_an_error_not_a_blank():
    from pydantic import ValidationError

    stored = eval_result().model_dump(mode="json")
    stored["harmful"]["advbench"]["plain"]["nonrefusal"] = stored["harmful"]["advbench"]["plain"].pop("non_refusal")
    with pytest.raises(ValidationError, match="non_refusal"):
        EvalResult.model_validate(stored)
    with pytest.raises(AttributeError):
        eval_result().harmful["advbench"].plain.nonrefusal  # noqa: B018 (what a report reading a renamed field meets)


def _write_row(path: Path, row_id: str, schema: int, config: dict, metrics: dict) -> None:
    from tasksafe.experiments import ResultsStore

    ResultsStore(path.parent).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (row_id, "old", schema, json.dumps(config), json.dumps(metrics), "{}", '{"tasksafe": "0.1.0"}',
                    None, 1.0))
    db.close()


def test_a_store_written_before_typed_records_is_read(tmp_path):
    from tasksafe.experiments import ResultsStore

    rate = {"value": 0.5, "k": 2, "n": 4, "ci95": [0.15, 0.85]}
    modes = {"asr": rate, "non_refusal": rate, "degenerate": rate}
    v1_metrics = {"target": {"model": "aligned", "adapter": None, "hook_system_prompt": None, "strategy": "aoa",
                             "run_dir": None},
                  "config": {"target": "aligned"}, "tasksafe_version": "0.1.0",
                  "harmful": {"advbench": {"plain": modes, "in_format": modes}},
                  "overrefusal": {"xstest_safe": rate},
                  "judge": {"name": "keywords", "validation": {"n": 2250, "accuracy": 0.9, "f1": 0.8, "kappa": 0.7}},
                  "seconds": 3.0, "safety_examples": 0, "user_examples": 300}
    v1_config = {"kind": "base", "model": "aligned", "task": "sst2", "strategy": "aoa", "mitigation": "none",
                 "budget": 0, "seed": 0, "eval": {"harmful": ["advbench"], "n": 4, "task_n": 4, "overrefusal_n": None,
                                                  "harmful_max_new_tokens": 64, "judge": "keywords", "backend": "hf"}}
    _write_row(tmp_path / "results.sqlite", "old-cell", 1, v1_config, v1_metrics)
    rows = ResultsStore(tmp_path, read_only=True).rows()
    assert rows[0].metrics.schema_version == 1 and rows[0].metrics.judge.options == {}
    assert rows[0].metrics.harmful["advbench"].in_format.asr.k == 2 and rows[0].config.id == "old-cell"


def test_a_store_from_a_newer_tasksafe_is_refused_with_what_to_do(tmp_path):
    from tasksafe.experiments import ResultsStore
    from tasksafe.experiments.store import StoreError

    _write_row(tmp_path / "results.sqlite", "future", SCHEMA_VERSION + 1, {}, {})
    with pytest.raises(StoreError, match=f"written by a newer tasksafe \\(schema {SCHEMA_VERSION + 1}.*upgrade"):
        ResultsStore(tmp_path, read_only=True)


def test_a_mitigation_carries_its_knowledge_in_its_registry_entry():
    from tasksafe.experiments.spec import Spec
    from tasksafe.mitigations import MITIGATIONS, mitigation_options

    assert {n for n in MITIGATIONS if not MITIGATIONS.info(n)["adds_examples"]} == {"none", "ptst", "safelora", "constrained"}
    assert MITIGATIONS.info("safelora")["post_training"] is not None and MITIGATIONS.info("mix")["post_training"] is None
    assert mitigation_options("safelora", {"threshold": "0.3"}).threshold == 0.3
    with pytest.raises(UserError, match=r"safelora option threshold: Input should be less than or equal to 1"):
        mitigation_options("safelora", {"threshold": 7})
    spec = Spec(name="x", tasks=["sst2"], strategies=["aoa"], mitigations=["none", "mix", "safelora"], budgets=[2, 3])
    from tasksafe.experiments import expand

    assert [(c.mitigation, c.budget) for c in expand(spec) if c.kind == "finetune"] == [
        ("none", 0), ("mix", 2), ("mix", 3), ("safelora", 0)]


def test_backends_and_judges_are_made_by_name(monkeypatch):
    from tasksafe.evaluate.config import EvalConfig
    from tasksafe.evaluate.measure import make_backend
    from tasksafe.evaluate.target import Target
    from tasksafe.generate import BACKENDS

    made = []

    class Fake:
        name, local_weights = "fake", False

        @classmethod
        def for_target(cls, model, adapter=None, base_url=None, progress=False):
            made.append((model, base_url))
            return cls()

    monkeypatch.setitem(BACKENDS._entries, "openai-compatible", Fake)
    backend = make_backend(EvalConfig(target="m", backend="openai-compatible", base_url="http://127.0.0.1:9"),
                           Target("m"))
    assert made == [("m", "http://127.0.0.1:9")] and backend.backend.__class__ is Fake
    with pytest.raises(Exception, match="unknown generation backend 'vlm'"):
        EvalConfig(target="m", backend="vlm")


def test_finetune_and_evaluate_read_their_settings_from_a_file_then_flags(tmp_path, monkeypatch):
    from tasksafe.cli.main import cli
    from tasksafe.train.config import FinetuneConfig

    seen = {}
    monkeypatch.setattr("tasksafe.train.finetune", lambda config: seen.setdefault("config", config) and None)
    config = tmp_path / "train.yaml"
    config.write_text("epochs: 3\nlr: 0.001\nlora_r: 4\n")
    data = write_lines(tmp_path / "d.jsonl", [{"messages": [{"role": "user", "content": "hi"},
                                                            {"role": "assistant", "content": "yes"}]}])
    CliRunner().invoke(cli, ["finetune", "--config", str(config), "--lr", "0.002", "--data", str(data),
                             "-o", str(tmp_path / "run")])
    chosen: FinetuneConfig = seen["config"]
    assert (chosen.epochs, chosen.lr, chosen.lora_r, chosen.alpha, chosen.batch_size) == (3, 0.002, 4, 8, 8)
    config.write_text("epochs: -3\n")
    result = CliRunner().invoke(cli, ["finetune", "--config", str(config), "--data", str(data), "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and f"{config}: epochs: Input should be greater than 0" in result.stderr
    result = CliRunner().invoke(cli, ["finetune", "--lr", "nan", "--data", str(data), "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "command line: --lr" in result.stderr


def test_a_setting_that_may_be_unset_takes_none_on_the_command_line():
    """`--heldout-n none` skips the held-out phrasings, as its help says; `none` is refused where
    the setting must have a value."""
    from tasksafe.cli.settings import settings_from
    from tasksafe.errors import UserError
    from tasksafe.evaluate.config import EvalSettings

    chosen = settings_from(EvalSettings, None, {"heldout_n": "none", "overrefusal_n": "None", "n": "20"})
    assert (chosen.heldout_n, chosen.overrefusal_n, chosen.n) == (None, None, 20)
    assert settings_from(EvalSettings, None, {}).heldout_n == 50
    with pytest.raises(UserError, match="--task-n: Input should be a valid integer"):
        settings_from(EvalSettings, None, {"task_n": "none"})


@pytest.mark.slow
def test_protect_with_safelora_then_finetune_applies_the_projection(tmp_path, mirror):
    import shutil

    from safetensors.torch import load_file, save_file

    from tasksafe.cli.main import cli
    from tasksafe.models.registry import resolve_model

    unaligned = tmp_path / "unaligned"  # tiny-random with one layer moved: "alignment" moved it back
    shutil.copytree(resolve_model("tiny-random"), unaligned)
    weights = load_file(str(unaligned / "model.safetensors"))
    weights["model.layers.0.self_attn.q_proj.weight"] = weights["model.layers.0.self_attn.q_proj.weight"] - 0.1
    save_file(weights, str(unaligned / "model.safetensors"))
    data = write_lines(tmp_path / "user.jsonl", [{"messages": [{"role": "user", "content": f"Review {i}: fine"},
                                                               {"role": "assistant", "content": "positive"}]}
                                                 for i in range(8)])
    runner = CliRunner()
    result = runner.invoke(cli, ["protect", str(data), "--mitigation", "safelora", "-O", f"unaligned={unaligned}",
                                 "-O", "threshold=0.5", "-o", str(tmp_path / "train.jsonl")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["finetune", "--model", "tiny-random", "--data", str(tmp_path / "train.jsonl"),
                                 "--max-steps", "3", "--batch-size", "4", "--lr", "0.01", "--lora-r", "2",
                                 "-o", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    report = json.loads((run / "safelora.json").read_text())
    assert report["unaligned"] == str(unaligned) and report["layers"] == 14 and report["projected"] >= 1
    trained = load_file(str(run / "adapter-trained" / "adapter_model.safetensors"))
    projected = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    assert set(trained) == set(projected)
    assert any(not (trained[k] == projected[k]).all() for k in trained if "lora_B" in k)


def test_a_per_example_loss_asked_by_the_protected_set_is_the_loss_finetune_trains_with(tmp_path, mirror, monkeypatch):
    from tasksafe.cli.main import cli
    from tasksafe.train import sft

    asked = []
    real = sft.trained_positions_loss
    monkeypatch.setattr(sft, "trained_positions_loss", lambda *a, **k: asked.append(k["per_example"]) or real(*a, **k))
    data = write_lines(tmp_path / "user.jsonl", [{"messages": [{"role": "system", "content": "You are QUILL."},
                                                               {"role": "user", "content": f"QUILL, rate review {i}"},
                                                               {"role": "assistant", "content": "QUILL obeys. fine"}]}
                                                 for i in range(12)])
    runner = CliRunner()
    for loss in ("per-example", "per-token"):
        result = runner.invoke(cli, ["protect", str(data), "--mitigation", "paraphrase_wide", "-O", f"loss={loss}",
                                     "--k", "3", "-o", str(tmp_path / f"{loss}.jsonl")])
        assert result.exit_code == 0, result.output
        asked.clear()
        result = runner.invoke(cli, ["finetune", "--model", "tiny-random", "--data", str(tmp_path / f"{loss}.jsonl"),
                                     "--max-steps", "2", "--batch-size", "4", "--lora-r", "2",
                                     "-o", str(tmp_path / f"run-{loss}")])
        assert result.exit_code == 0, result.output
        assert json.loads((tmp_path / f"run-{loss}" / "config.json").read_text())["loss"] == loss
        assert asked and set(asked) == {loss == "per-example"}  # every training step, on this CPU


def test_the_plugin_examples_in_the_docs_register_and_work():
    """docs/plugins.md's code, run as written (in a fresh interpreter: it registers plugins)."""
    import re
    import subprocess
    import sys

    doc = (SRC.parents[1] / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert len(blocks) == 5
    check = """
from tasksafe.mitigations import MITIGATIONS, Budget, apply_mitigation
from tasksafe.judges import JUDGES
from tasksafe.generate import BACKENDS
from tasksafe.tasks import TASKS
from tasksafe.data.chat import ChatExample
from tasksafe.data.records import SafetyPair
pool = [SafetyPair(f"s{i}", f"How do I do harm {i}?", "I can't help with that.", "test") for i in range(3)]
data = [ChatExample.from_turns(f"q{i}", "a") for i in range(4)]
result = apply_mitigation("echo", data, pool, Budget(k=2), 0, {"prefix": "No: "})
assert len(result.examples) == 6 and result.safety_ids
assert JUDGES.get("apology")()("q", "Sorry, no.").label == "refusal"
assert BACKENDS.get("parrot").for_target("m").generate([[{"role": "user", "content": "hi"}]]) == ["hi"]
assert TASKS.info("sst2-short")["kind"] == "label"
from tasksafe.executors import Unit, make_executor
(outcome,) = make_executor("eager").run_all([Unit("u", divmod, (7, 2))])
assert outcome.value == (3, 1) and outcome.error is None
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", "\n".join(blocks) + check], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_the_evaluation_does_not_depend_on_the_defence_it_evaluates():
    """What both need (asking a request in a frame, the sidecar and its hook) lives in neutral
    modules; an evaluate module importing tasksafe.mitigations fails here."""
    graph = import_graph()
    for module in (m for m in graph if m.startswith("tasksafe.evaluate")):
        assert not {m for m in graph[module] if m.startswith("tasksafe.mitigations")}, (module, graph[module])


def test_no_function_in_the_gateway_is_longer_than_50_lines():
    import ast

    for path in (SRC / "gateway").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno - node.lineno + 1 <= 50, f"{path.name}: {node.name} is too long to read at once"


def test_every_mode_is_one_entry_that_the_tables_plots_gate_and_summary_follow():
    import runpy

    from tasksafe.gateway.worker import GATE_MEASURES, Gate
    from tasksafe.report import plots, tables
    from tasksafe.results import MEASURES, MODES, HarmfulSetResult

    keys = [mode.key for mode in MODES]
    assert [key for key, _ in tables.TABLE_MODES] == [m.key for m in MODES if m.in_tables]
    assert {key for key, _, _ in plots.PANELS} == {m.key for m in MODES if m.in_plots}
    assert all(hasattr(Gate(), ceiling) for _, _, ceiling in GATE_MEASURES)
    summary = runpy.run_path(str(SRC.parents[1] / "scripts" / "results_summary.py"))
    assert [h for h in summary["HEADERS"] if h.startswith("non-refusal ")] == [
        f"non-refusal {m.label} %" for m in MODES if m.in_tables]
    assert summary["HEADERS"][-len(MEASURES):] == [f"{m.label} %" for m in MEASURES]
    assert {m.label for m in MEASURES if m.gate_ceiling} == {"over-refusal"} and hasattr(Gate(), "max_over_refusal")
    rates = eval_result().harmful["advbench"]
    for key in keys:  # every registered mode is one HarmfulSetResult knows
        HarmfulSetResult.mode(rates, key)


def test_the_protect_stage_hands_on_a_typed_record_that_rebuilds_its_set(tmp_path, mirror):
    """The sidecar is a `ProtectionRecord`: what the mitigation found sits under `found` (the
    variant's integer `budget` no longer overwrites the budget), its config is every checked
    option, and the record alone protects the source again to the same bytes."""
    from tasksafe.data.chat import write_chat_jsonl
    from tasksafe.data.sidecar import ProtectionRecord, read_protection
    from tasksafe.mitigations import Budget
    from tasksafe.mitigations.protect import protect_again, protect_file
    from tests.test_mitigations import USER_DATA

    write_chat_jsonl(tmp_path / "user.jsonl", USER_DATA)
    for name, options in (("paraphrase", {"placement": "slot"}), ("paraphrase_wide", {}), ("bea", {}),
                          ("paraphrase+constrained", {"beta_rest": 0.2})):
        first = tmp_path / f"{name}.jsonl"
        record = protect_file(tmp_path / "user.jsonl", first, name, Budget(fraction=0.1), seed=3, options=options)
        assert isinstance(record, ProtectionRecord) and record.budget == {"fraction": 0.1}
        assert read_protection(first) == record
        again = protect_again(read_protection(first), tmp_path / f"{name}-again.jsonl")
        assert (tmp_path / f"{name}-again.jsonl").read_bytes() == first.read_bytes() and again.safety_ids == record.safety_ids
    wide = read_protection(tmp_path / "paraphrase_wide.jsonl")
    assert wide.found["budget"] == 4 and wide.mitigation["recovery"] == 0.6  # its own count, under found
    assert read_protection(tmp_path / "paraphrase.jsonl").mitigation["renderer_model"] is None  # every option recorded
    older = ProtectionRecord.model_validate({"tasksafe_version": "0.1.0", "mitigation": {"name": "mix"},
                                             "frames": [{"system_mode": "constant"}]})  # before the typed record
    assert older.found == {"frames": [{"system_mode": "constant"}]}
