"""Asking a request in an inferred frame: the request put where the user's data has its main
text, the other slots and the history filled from one of the user's own examples. Both the
defence (Paraphrase renders its safety examples this way) and the evaluation (the
renderer-matched prompt for data tasksafe did not build) use it, so it lives with the frame,
not with either of them."""

from __future__ import annotations

import json
import zlib

from tasksafe.audit.frame import Frame, frame_messages
from tasksafe.audit.items import Items, find_items, replace_item
from tasksafe.data.chat import ChatExample, Message


def _fit_slot(value: str, before: str, after: str) -> str:
    """Escape `value` when the slot sits inside a JSON string, drop its final mark when the
    constant text after the slot supplies one ("...?" + "?\nAnswer:"), and never let it run
    into the text around it: after a sentence ("...positive or negative.") it starts a new
    paragraph, after a word it is spaced off, and a word after it is spaced off too."""
    if before.endswith('"') and after.startswith('"'):
        return json.dumps(value, ensure_ascii=False)[1:-1]
    value = value.strip()
    if after[:1] in "?.!" and after[:1] and value.endswith(after[:1]):
        value = value[:-1]
    if before and not before[-1].isspace() and value[:1].isalnum():
        value = ("\n\n" if before[-1] in ".!?" else " ") + value
    if after[:1].isalnum() and value[-1:].isalnum():
        value += " "
    return value


def _donor_parts(frame: Frame, donor: ChatExample) -> tuple[list[str], str | None, list[Message]]:
    values = list(frame.user.match(donor.messages[-2].content) or [""] * frame.user.slots)
    start = 1 if donor.system is not None else 0
    return values, donor.system, donor.messages[start:-2]


def _items_in_main_slot(frame: Frame, text: str) -> tuple[Items, list[int]] | None:
    """The items of a user turn in the frame's item layout that lie in its main slot (items
    elsewhere, such as a question's answer choices, are not where a request goes), or None."""
    if not frame.items:
        return None
    items = find_items(text)
    found = frame.user.regex.match(text)
    if items is None or items.layout != frame.items or found is None:
        return None
    start, end = found.span(frame.main_slot + 1) if frame.user.slots else (0, len(text))
    indices = [i for i, (a, b) in enumerate(items.spans) if a < end and b > start]
    return (items, indices) if indices else None


def request_in_frame(frame: Frame, request: str, donor: ChatExample) -> list[Message]:
    """The messages that ask `request` in `frame`: the request in the main slot, the other
    slots, a varying system prompt and history taken from `donor` (one of the user's examples).
    Where the frame's user turns hold several items (a table, CSV lines, a list, JSON records,
    labelled items), the request takes one item of the donor's turn and the rest of it stays."""
    values, system, history = _donor_parts(frame, donor)
    slot = frame.main_slot
    inside = _items_in_main_slot(frame, donor.messages[-2].content)
    if inside:
        items, indices = inside
        user = replace_item(items, indices[zlib.crc32(request.encode()) % len(indices)], request)
    elif values:
        values[slot] = _fit_slot(request, frame.user.parts[slot], frame.user.parts[slot + 1])
        user = frame.user.render(values)
    else:  # every user turn of the frame is the same text: the request follows it as a paragraph
        user = frame.user.prefix + _fit_slot(request, frame.user.prefix, "")
    return frame_messages(frame, user, system=system, history=history)
