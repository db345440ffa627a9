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
