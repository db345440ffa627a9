"""Plugins from other installed packages: the example plugin (tests/example_plugin), installed
as any package would be, registers a mitigation, a judge, a task with its dataset and a
generation backend through the `tasksafe.plugins` entry point, and the CLI lists and runs them."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    import shutil

    target, source = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("src") / "example_plugin"
    shutil.copytree(REPO / "tests" / "example_plugin", source)  # building writes beside the source: not in the repo
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps",
                    "--target", str(target), str(source)], check=True)
    return target


def tasksafe(args, plugin_path, cwd, check=True):
    env = {**os.environ, "PYTHONPATH": str(plugin_path)}
    result = subprocess.run([sys.executable, "-m", "tasksafe.cli.main", *args], capture_output=True, text=True,
                            env=env, cwd=cwd, timeout=300)
    assert not check or result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_an_installed_plugin_registers_one_of_each_kind_and_the_cli_runs_them(plugin_path, tmp_path, mirror):
    listed = tasksafe(["plugins"], plugin_path, tmp_path).stdout
    assert "plugins installed: example" in listed
    for kind, name in (("mitigation", "echo"), ("judge", "apology"), ("task", "toy-colours"),
                       ("dataset", "toy-colours"), ("backend", "parrot")):
        assert any(line.split()[:3] == [kind, name, "tasksafe_example_plugin"] for line in listed.splitlines()), kind
    assert "paraphrase" not in listed  # without --all, only what plugins added
    assert "echo" in tasksafe(["protect", "--list"], plugin_path, tmp_path).stdout
    assert "apology" in tasksafe(["judge", "list"], plugin_path, tmp_path).stdout
    # run them: build the plugin's task, protect it with the plugin's mitigation, evaluate with its backend and judge
    tasksafe(["build", "--task", "toy-colours", "--strategy", "aoa", "--n", "4", "-o", "toy.jsonl"], plugin_path, tmp_path)
    tasksafe(["protect", "toy.jsonl", "--mitigation", "echo", "--k", "2", "-O", "prefix=[NO]", "-o", "train.jsonl"],
             plugin_path, tmp_path)
    added = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert sum(ex["messages"][-1]["content"].startswith("[NO]") for ex in added) == 2
    tasksafe(["evaluate", "tiny-random", "--strategy", "aoa", "--task", "toy-colours", "--backend", "parrot",
              "--judge", "apology", "--n", "3", "--heldout-n", "2", "--overrefusal-n", "3", "--task-n", "4",
              "--no-loglik", "-o", "eval"], plugin_path, tmp_path)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["judge"]["name"] == "apology" and metrics["task"]["task"] == "toy-colours"
    assert metrics["harmful"]["advbench"]["plain"]["non_refusal"]["value"] == 1.0  # the parrot never apologises
    # without the plugin installed, its names are unknown, with the names that exist
    missing = tasksafe(["protect", "toy.jsonl", "--mitigation", "echo", "--k", "2", "-o", "x.jsonl"], "", tmp_path,
                       check=False)
    assert missing.returncode == 2 and "unknown mitigation 'echo'" in missing.stderr + missing.stdout


def test_a_plugin_that_fails_to_import_is_an_error_naming_it(tmp_path, monkeypatch):
    import tasksafe.registry as registry
    from tasksafe.errors import UserError

    class Broken:
        name, value = "broken", "no_such_module_here"

        def load(self):
            import no_such_module_here  # noqa: F401

    monkeypatch.setattr(registry, "_plugins", {"state": "not loaded", "names": []})
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [Broken()] if group == registry.PLUGIN_GROUP else [])
    with pytest.raises(UserError, match="tasksafe plugin 'broken' \\(no_such_module_here\\) failed to load"):
        registry.load_plugins()


BLOCKER = '''
import sys

BLOCKED = {"fastapi", "uvicorn", "starlette", "matplotlib", "jinja2", "multipart", "python_multipart", "ray"}


class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: a core install)")
        return None


sys.meta_path.insert(0, Block())
'''


def test_the_core_install_works_without_the_extras_and_names_a_missing_one(tmp_path, mirror):
    """With the gateway, report and Ray extras' packages unimportable, the library and the core
    commands work, and a command that needs an extra is one line naming it."""
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def run(*args):
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)

    imported = run("-c", "import fastapi" )
    assert imported.returncode != 0 and "blocked" in imported.stderr  # the blocker works
    core = run("-c", "import tasksafe.cli.main, tasksafe.mitigations, tasksafe.evaluate, tasksafe.train, "
                     "tasksafe.audit, tasksafe.experiments, tasksafe.organism, tasksafe.report.tables; print('ok')")
    assert core.returncode == 0 and core.stdout.strip() == "ok", core.stderr
    cli = ["-m", "tasksafe.cli.main"]
    assert run(*cli, "build", "--task", "sst2", "--strategy", "aoa", "--n", "20", "-o", "a.jsonl").returncode == 0
    protected = run(*cli, "protect", "a.jsonl", "--mitigation", "paraphrase", "--k", "2", "-o", "p.jsonl")
    assert protected.returncode == 0, protected.stderr
    served = run(*cli, "serve", "--port", "0")
    assert served.returncode == 2 and "pip install 'tasksafe[gateway]'" in served.stderr
    assert len(served.stderr.strip().splitlines()) == 1
    reported = run(*cli, "report", str(REPO / "results" / "demo.jsonl"), "-o", "rep")
    assert reported.returncode == 2 and "tasksafe[report]" in reported.stderr, reported.stderr
