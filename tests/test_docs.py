import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_the_rendered_examples_in_the_docs_are_current(mirror):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "render_docs.py"), "--check"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_shows_the_two_commands():
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme


def test_the_readme_python_example_runs(mirror, tmp_path, monkeypatch):
    readme = (REPO / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 (the README's own example)
    assert (tmp_path / "train.jsonl").is_file() and (tmp_path / "train.meta.json").is_file()


def test_the_readme_stays_short_and_links_what_it_moved_out():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 120
    for doc in ("docs/cli.md", "docs/results.md", "docs/method.md"):
        assert f"]({doc})" in readme and (REPO / doc).is_file()
