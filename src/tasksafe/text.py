"""Text helpers every stage shares.

>>> sentences("One. Two!  Three? four")
['One.', 'Two!', 'Three?', 'four']
>>> sentences("One.\\nTwo", lines=True)
['One.', 'Two']
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SENTENCE_OR_LINE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences(text: str, lines: bool = False) -> list[str]:
    """`text` split after each sentence end (., ! or ? followed by white space); with `lines`,
    at every line break too. Nothing is stripped: callers strip as they need."""
    return (_SENTENCE_OR_LINE_END if lines else _SENTENCE_END).split(text)
