"""The scripts that run the grid on a lent GPU machine (scripts/device/) and compare results
files across devices (scripts/compare_results.py), on CPU with small inputs."""

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from tasksafe.experiments import ResultsStore
from tests.conftest import cell_config, eval_result

ROOT = Path(__file__).resolve().parents[1]


def _weights(folder: Path) -> bytes:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    torch.manual_seed(0)
    save_file({"a.weight": torch.randn(64, 48), "b.bias": torch.randn(7)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text('{"model_type": "llama"}')
    return (folder / "model.safetensors").read_bytes()


def _weights_cli(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "device" / "weights.py"), *map(str, args)],
                          capture_output=True, text=True)


def test_weights_travel_in_parts_and_come_back_byte_for_byte(tmp_path):
    original = _weights(tmp_path / "model")
    packed = _weights_cli("pack", tmp_path / "model", tmp_path / "parts", "--part-mb", 0.004, "--first-mb", 0.002)
    assert packed.returncode == 0, packed.stderr
    parts = sorted((tmp_path / "parts").iterdir())
    assert len(parts) > 2 and parts[0].stat().st_size == 2000 and parts[1].stat().st_size == 4000
    unpacked = _weights_cli("unpack", f"{tmp_path / 'parts'}/part-*", tmp_path / "there")
    assert unpacked.returncode == 0, unpacked.stderr
    assert (tmp_path / "there" / "model.safetensors").read_bytes() == original
    assert (tmp_path / "there" / "config.json").read_text() == '{"model_type": "llama"}'


def test_a_damaged_or_missing_part_is_refused_not_written(tmp_path):
    _weights(tmp_path / "model")
    _weights_cli("pack", tmp_path / "model", tmp_path / "parts", "--part-mb", 0.004)
    parts = sorted((tmp_path / "parts").iterdir())
    intact = parts[1].read_bytes()  # holds deflated weights (and some of the tar's padding)
    parts[1].write_bytes(bytes(byte ^ 0x01 for byte in intact))
    result = _weights_cli("unpack", f"{tmp_path / 'parts'}/part-*", tmp_path / "there")
    assert result.returncode != 0 and not (tmp_path / "there" / "model.safetensors").exists()
    assert "missing or damaged" in result.stderr or "rebuilt weights differ" in result.stderr
    parts[1].write_bytes(intact)
    parts[2].unlink()
    result = _weights_cli("unpack", f"{tmp_path / 'parts'}/part-*", tmp_path / "there")
    assert result.returncode != 0 and not (tmp_path / "there" / "model.safetensors").exists()
    assert "missing or damaged" in result.stderr or "rebuilt weights differ" in result.stderr
    assert "no parts match" in _weights_cli("unpack", tmp_path / "nowhere-*", tmp_path / "there").stderr


def test_non_fp32_weights_are_refused(tmp_path):
    import torch
    from safetensors.torch import save_file

    (tmp_path / "model").mkdir()
    save_file({"w": torch.zeros(4, dtype=torch.bfloat16)}, str(tmp_path / "model" / "model.safetensors"))
    result = _weights_cli("pack", tmp_path / "model", tmp_path / "parts")
    assert result.returncode != 0 and "fp32 tensors only" in result.stderr


def test_each_cell_records_the_device_it_ran_on(tmp_path):
    store = ResultsStore(tmp_path / "store")
    store.record("grid", cell_config("aoa"), eval_result(), {}, {})
    (row,) = store.rows()
    store.close()
    assert row.versions["device"] == "cpu"  # the test machine has no GPU


def test_the_device_grid_lists_every_paper_cell_once_with_the_variant_last():
    grid = runpy.run_path(str(ROOT / "scripts" / "device" / "grid.py"))
    todo = grid["cells"](grid["PARTS"], {"safelora"}, {"paraphrase_wide"})
    ids = [cell.id for _, cell in todo]
    assert len(ids) == len(set(ids)) == 77  # 75 cells of the five parts and 4 prefix seeds, less the two safelora cells
    mitigations = [cell.mitigation for _, cell in todo]
    first_variant = mitigations.index("paraphrase_wide")
    assert set(mitigations[first_variant:]) == {"paraphrase_wide"} and "safelora" not in mitigations
    assert [(c.kind, c.task) for _, c in todo[:10]] == [("base", "sst2")] * 5 + [("finetune", "sst2")] * 5
    left = grid["cells"](grid["PARTS"], {"safelora"}, {"paraphrase_wide"}, done=set(ids[:10]))
    assert [cell.id for _, cell in left] == ids[10:]  # finished cells (a results file's ids) are not run again
    filters = grid["only_filters"](todo[0][1])
    assert filters[::2] == ["--only"] * 6 and "kind=base" in filters and "seed=0" in filters


def _results_file(path: Path, cells: list[tuple[str, object]]) -> Path:
    """An exported results file (as `tasksafe results export` writes it) of (strategy, result) cells."""
    from tasksafe.experiments.transfer import export_results

    store = ResultsStore(path.parent / f"{path.stem}-store")
    for strategy, result in cells:
        store.record("grid", cell_config(strategy), result, {}, {})
    store.close()
    export_results(store.root, path)
    return path


def _two_cells(plain_k: int) -> list[tuple[str, object]]:
    return [("aoa", eval_result(plain_k=plain_k, overrefused=(1, 10))), ("prefix", eval_result())]


def test_compare_results_reports_shared_cells_and_the_counts_that_differ(tmp_path, capsys):
    first = _results_file(tmp_path / "a.jsonl", _two_cells(plain_k=2))
    second = _results_file(tmp_path / "b.jsonl", _two_cells(plain_k=3))
    runpy.run_path(str(ROOT / "scripts" / "compare_results.py"))["main"](str(first), str(second))
    out = capsys.readouterr().out
    assert "2 shared cells" in out
    assert "| advbench plain | 2/4 | 3/4 |" in out and "1 of " in out.splitlines()[-1]


def test_compare_results_with_nothing_shared_says_so(tmp_path):
    first = _results_file(tmp_path / "a.jsonl", _two_cells(plain_k=2))
    other = _results_file(tmp_path / "other.jsonl", [("autoif", eval_result())])  # a cell the first lacks
    with pytest.raises(SystemExit, match="share no cell"):
        runpy.run_path(str(ROOT / "scripts" / "compare_results.py"))["main"](str(first), str(other))
