"""Text helpers every stage shares.

>>> sentences("One. Two!  Three? four")
['One.', 'Two!', 'Three?', 'four']
>>> sentences("One.\\nTwo", lines=True)
['One.', 'Two']
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SENTENCE_OR_LINE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences(text: str, lines: bool = False) -> list[str]:
    """`text` split after each sentence end (., ! or ? followed by white space); with `lines`,
    at every line break too. Nothing is stripped: callers strip as they need."""
    return (_SENTENCE_OR_LINE_END if lines else _SENTENCE_END).split(text)


def text_table(headers: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns sized to their widest cell, a rule under the headers.

    >>> print(text_table(["a", "bb"], [[1, 2]]))
    a  bb
    -  --
    1  2
    """
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines[:1] + ["  ".join("-" * width for width in widths)] + lines[1:])
