"""Plain-text output helpers shared by the subcommands."""

from __future__ import annotations

import re
from collections.abc import Sequence

import click

_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI sequences (colours, cursor moves, screen clears)
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC sequences (window titles, hyperlinks)
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # any other C0/C1 control but tab and newline
    "|[\u202a-\u202e\u2066-\u2069]"  # bidirectional overrides, which reorder what a reader sees
)


def printable(text: str) -> str:
    """`text` without terminal control sequences, so data shown on a terminal cannot move the
    cursor, change colours, retitle the window or hide what follows.

    >>> printable("ok\\x1b[2J\\x1b]0;pwned\\x07 done\\r")
    'ok done'
    """
    return _CONTROL.sub("", text)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Left-aligned columns sized to their widest cell (`tasksafe.text.text_table`), with
    terminal control sequences removed."""
    from tasksafe.text import text_table

    click.echo(printable(text_table(headers, rows)))
