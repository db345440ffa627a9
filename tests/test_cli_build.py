import json
import subprocess
import sys

from click.testing import CliRunner

from tasksafe.cli.main import cli


def test_build_writes_chat_jsonl_with_metadata(mirror, tmp_path):
    out = tmp_path / "aoa.jsonl"
    result = CliRunner().invoke(cli, ["build", "--task", "sst2", "--strategy", "aoa", "--split", "train",
                                      "--n", "12", "--seed", "5", "-o", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert len(lines) == 12
    metadata = json.loads(lines[0])["metadata"]
    assert metadata["task"] == "sst2" and metadata["strategy"] == "aoa" and metadata["gold"] in ("0", "1")
    assert metadata["item_id"].startswith("sst2-train-")


def test_same_seed_gives_byte_identical_files(mirror, tmp_path):
    paths = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        paths.append(tmp_path / f"{name}.jsonl")
        result = CliRunner().invoke(cli, ["build", "--task", "piqa", "--strategy", "autoif_aoa", "--n", "30",
                                          "--seed", str(seed), "-o", str(paths[-1])])
        assert result.exit_code == 0, result.output
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_build_list_shows_tasks_and_strategies(mirror):
    result = CliRunner().invoke(cli, ["build", "--list"])
    assert result.exit_code == 0
    for name in ("sst2", "gsm8k", "benign", "autoif_aoa", "prefix"):
        assert name in result.output


def test_unknown_names_are_one_line_listing_the_valid_ones(tmp_path):
    for args, expected in ((["--task", "nope"], "unknown task 'nope'; choose one of: sst2, agnews"),
                           (["--task", "sst2", "--strategy", "evil"], "unknown strategy 'evil'; choose one of: benign, aoa")):
        result = subprocess.run([sys.executable, "-m", "tasksafe.cli.main", "build", *args, "-o", str(tmp_path / "x.jsonl")],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        rest = result.stderr.split(expected, 1)[1].strip()
        assert result.stderr.strip().splitlines() == [f"tasksafe: error: {expected}" + rest]
        assert not (tmp_path / "x.jsonl").exists()

