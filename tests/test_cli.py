import json
import subprocess
import sys

from click.testing import CliRunner

from tasksafe.cli.main import cli
from tasksafe.data import DATASETS


def test_help_lists_the_subcommands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0 and "data" in result.output


def test_import_and_help_do_not_load_heavy_libraries():
    code = ("import sys; from tasksafe.cli.main import cli; import tasksafe.data\n"
            "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'datasets', 'trl', 'peft') if m in sys.modules]\n"
            "print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_data_list_json_covers_every_dataset(mirror):
    result = CliRunner().invoke(cli, ["data", "list", "--json"])
    assert result.exit_code == 0
    listed = json.loads(result.output)
    assert [row["name"] for row in listed] == DATASETS.names()
    assert all(row["local"] for row in listed)
    assert {row["name"]: row["rows"] for row in listed}["xstest"] == 450


def test_data_list_table(mirror):
    result = CliRunner().invoke(cli, ["data", "list"])
    assert result.exit_code == 0 and "advbench" in result.output and "520" in result.output


def test_data_show(mirror):
    result = CliRunner().invoke(cli, ["data", "show", "advbench", "-n", "2"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 0 and len(lines) == 2
    assert json.loads(lines[0])["id"] == "advbench-0"


def test_unknown_dataset_is_one_line_exit_2():
    result = subprocess.run([sys.executable, "-m", "tasksafe.cli.main", "data", "show", "nope"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("tasksafe: error: unknown dataset 'nope'; choose one of: sst2")
    assert len(result.stderr.strip().splitlines()) == 1
