"""Every kind of bad input gets exit code 2 and exactly one line naming the file and line,
never a traceback, and nothing half-written."""

import subprocess
import sys
import tracemalloc

import pytest

from tasksafe.data import validate_chat_jsonl
from tests.conftest import write_lines

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}

BAD_CASES = {
    "truncated": ('{"messages": [{"role": "user", "content": "hi"}, {"role": "assis', "not valid JSON"),
    "not_an_object": ('["user", "hi"]', "JSON list, not an object"),
    "missing_messages": ('{"prompt_text": "hi"}', 'no "messages" key'),
    "unknown_role": ('{"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}]}',
                     "unknown role 'tool'"),
    "empty_content": ('{"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "y"}]}',
                      "empty content"),
    "last_not_assistant": ('{"messages": [{"role": "user", "content": "hi"}]}', "last message is from the user"),
    "invalid_utf8": (b'{"messages": [{"role": "user", "content": "caf\xe9"}]}', "not valid UTF-8"),
}


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tasksafe.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_line_is_one_clear_error(tmp_path, case):
    bad, expected = BAD_CASES[case]
    source = write_lines(tmp_path / "data.jsonl", [GOOD, GOOD, bad, GOOD])
    target = tmp_path / "out.jsonl"
    result = run_cli("data", "convert", source, target)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{source}:3: " in lines[0] and expected in lines[0]
    assert "a valid line looks like" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not target.exists()


def test_empty_file(tmp_path):
    source = tmp_path / "empty.jsonl"
    source.write_bytes(b"\n\n")
    result = run_cli("data", "convert", source, tmp_path / "out.jsonl")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert f"{source}: the file is empty" in result.stderr


def test_missing_file(tmp_path):
    result = run_cli("data", "convert", tmp_path / "nope.jsonl", tmp_path / "out.jsonl")
    assert result.returncode == 2 and "no such file" in result.stderr and "Traceback" not in result.stderr


def test_a_50_mb_line_is_reported_without_loading_it(tmp_path):
    source = tmp_path / "huge.jsonl"
    with open(source, "wb") as handle:
        handle.write(b'{"messages": [{"role": "user", "content": "')
        block = b"a" * 2**20
        for _ in range(50):
            handle.write(block)
        handle.write(b'"}, {"role": "assistant", "content": "ok"}]}\n')
        handle.write(b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}\n')
    tracemalloc.start()
    report = validate_chat_jsonl(source)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 40 * 2**20  # the line is 50 MiB; reading stops at the 16 MiB limit
    assert report.examples == 1
    assert report.problems[0][0] == 1 and "over the 16 MiB limit" in report.problems[0][1]
    result = run_cli("data", "convert", source, tmp_path / "out.jsonl")
    assert result.returncode == 2 and f"{source}:1: " in result.stderr


def test_validate_reports_every_problem_and_role_counts(tmp_path):
    source = write_lines(tmp_path / "data.jsonl", [GOOD, BAD_CASES["unknown_role"][0], GOOD,
                                                   BAD_CASES["truncated"][0]])
    result = run_cli("data", "validate", source)
    assert result.returncode == 2
    assert "2 valid examples; messages: 0 system, 2 user, 2 assistant" in result.stdout
    assert f"{source}:2: " in result.stdout and f"{source}:4: " in result.stdout
    result = run_cli("data", "validate", "--json", source)
    import json
    report = json.loads(result.stdout)
    assert report["ok"] is False and [p["line"] for p in report["problems"]] == [2, 4]
    assert report["messages_per_role"] == {"system": 0, "user": 2, "assistant": 2}


def test_validate_accepts_a_good_file(tmp_path):
    source = write_lines(tmp_path / "data.jsonl", [GOOD, GOOD])
    result = run_cli("data", "validate", source)
    assert result.returncode == 0 and result.stdout.strip().endswith("valid")
