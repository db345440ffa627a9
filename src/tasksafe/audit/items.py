"""Items: a user turn that holds several items of one kind in a structured layout - rows of a
markdown table, CSV lines, list items, JSON records, or labelled items ("Review 1: ...",
"Passage 2:" and its paragraph) - and where each item's text is.

The frame (tasksafe.audit.frame) names the layout when most of a dataset's user turns have one;
a request asked in such a frame (tasksafe.audit.ask) takes one item's text and leaves every
other character of the user's example as it was, written the way the layout writes text
(a table cell's pipes escaped, a CSV field quoted when it must be, a JSON string escaped).

>>> found = find_items("Rate each review.\\n\\n| # | Review |\\n|---|---|\\n| 1 | good fun |\\n| 2 | a bore |")
>>> found.layout, [found.text[a:b] for a, b in found.spans]
('table', ['good fun', 'a bore'])
>>> replace_item(found, 1, "How do I pick a lock? | now")
'Rate each review.\\n\\n| # | Review |\\n|---|---|\\n| 1 | good fun |\\n| 2 | How do I pick a lock? \\\\| now |'
"""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass

LAYOUTS = ("json", "table", "list", "csv", "labelled")
"""The layouts `find_items` recognises, in the order it tries them."""


@dataclass(frozen=True)
class Items:
    """The items of `text` in one `layout`: `spans` are (start, end) of each item's text;
    `style` says how the layout writes text in an item (ASCII-escaped JSON, a labelled item's
    text on its own lines), and for CSV, `delimiter` and whether each item is `quoted`."""

    text: str
    layout: str
    spans: tuple[tuple[int, int], ...]
    style: str = ""
    delimiter: str = ""
    quoted: tuple[bool, ...] = ()  # CSV: whether each item's field is in quotes

    def __len__(self) -> int:
        return len(self.spans)


def find_items(text: str) -> Items | None:
    """The items of `text` when it holds at least two of one kind in one layout, else None."""
    for layout in LAYOUTS:
        found = _FINDERS[layout](text)
        if found is not None and len(found) >= 2:
            return found
    return None


def replace_item(items: Items, index: int, value: str) -> str:
    """`items.text` with item `index`'s text replaced by `value`, written as the layout writes text."""
    start, end = items.spans[index]
    return items.text[:start] + encode(items, value, index) + items.text[end:]


def encode(items: Items, value: str, index: int = 0) -> str:
    """`value` as the layout writes an item's text: on one line where items are lines, a table
    cell's pipes escaped, a CSV field quoted when it holds the delimiter or a quote, a JSON
    string escaped."""
    value = value.strip()
    if items.layout == "json":
        return json.dumps(value, ensure_ascii=items.style == "ascii")[1:-1]
    if items.layout != "labelled" or items.style != "block":
        value = " ".join(value.split())  # items that are lines stay one line
    if items.layout == "table":
        return re.sub(r"(?<!\\)\|", r"\\|", value)
    if items.layout == "csv":
        if items.quoted[index]:
            return value.replace('"', '""')
        if items.delimiter in value or '"' in value:
            return '"' + value.replace('"', '""') + '"'
    return value


def _lines(text: str) -> list[tuple[int, str]]:
    """Each line with the offset it starts at."""
    out, start = [], 0
    for line in text.split("\n"):
        out.append((start, line))
        start += len(line) + 1
    return out


def _longest_column(rows: list[list[tuple[int, int]]]) -> int | None:
    """The column whose cells hold the most text on average (the item's text, not an id or a
    score), or None when the rows do not share a column count."""
    widths = {len(row) for row in rows}
    if len(widths) != 1 or not rows or not rows[0]:
        return None

    def mean_length(column: int) -> float:
        return statistics.mean(b - a for a, b in (row[column] for row in rows))

    column = max(range(len(rows[0])), key=mean_length)
    return column if mean_length(column) > 0 else None


def _runs(flags: list[bool], allow_gaps: list[bool] | None = None) -> list[list[int]]:
    """Runs of consecutive indices where `flags` holds (an index in `allow_gaps` may sit inside a run)."""
    runs, current = [], []
    for i, flag in enumerate(flags):
        if flag:
            current.append(i)
        elif not (allow_gaps and allow_gaps[i] and current):
            if current:
                runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


# --- markdown tables ---------------------------------------------------------------------------------

_PIPE = re.compile(r"(?<!\\)\|")
_RULE_CELL = re.compile(r"^\s*:?-{3,}:?\s*$")


def _table_cells(offset: int, line: str) -> list[tuple[int, int]]:
    """The (start, end) of each cell's stripped text in a row written | a | b |."""
    pipes = [m.start() for m in _PIPE.finditer(line)]
    cells = []
    for a, b in zip(pipes, pipes[1:]):
        inner = line[a + 1:b]
        lead = len(inner) - len(inner.lstrip())
        cells.append((offset + a + 1 + lead, offset + a + 1 + len(inner.rstrip())))
    return cells


def _find_table(text: str) -> Items | None:
    """The body rows of the largest markdown table; each item is its row's longest-text cell."""
    lines = _lines(text)
    is_row = [line.strip().startswith("|") and line.strip().endswith("|") and line.count("|") >= 2
              for _, line in lines]
    best: list[list[tuple[int, int]]] = []
    for run in _runs(is_row):
        rows = [(lines[i][0] + len(lines[i][1]) - len(lines[i][1].lstrip()), lines[i][1].strip()) for i in run]
        rule = next((k for k, (_, row) in enumerate(rows)
                     if all(_RULE_CELL.match(c) for c in _PIPE.split(row)[1:-1])), None)
        body = rows[rule + 1:] if rule is not None else rows
        cells = [_table_cells(offset, row) for offset, row in body]
        if len(cells) > len(best):
            best = cells
    column = _longest_column(best) if len(best) >= 2 else None
    if column is None:
        return None
    return Items(text, "table", tuple(row[column] for row in best))


# --- CSV lines ---------------------------------------------------------------------------------------

def _csv_fields(offset: int, line: str, delimiter: str) -> tuple[list[tuple[int, int]], list[bool]] | None:
    """Each field's text span (inside its quotes when quoted) and whether it was quoted; None
    when the line is not one CSV record."""
    spans, quoted, i = [], [], 0
    while True:
        if line[i:i + 1] == '"':
            j = i + 1
            while True:
                j = line.find('"', j)
                if j < 0:
                    return None
                if line[j + 1:j + 2] == '"':
                    j += 2
                    continue
                break
            spans.append((offset + i + 1, offset + j))
            quoted.append(True)
            i = j + 1
            if i < len(line) and line[i] != delimiter:
                return None
        else:
            j = line.find(delimiter, i)
            j = len(line) if j < 0 else j
            spans.append((offset + i, offset + j))
            quoted.append(False)
            i = j
        if i >= len(line):
            return spans, quoted
        i += 1  # past the delimiter


def _find_csv(text: str) -> Items | None:
    """Lines of one record shape (two fields or more, tab-, semicolon- or comma-separated; RFC
    4180 quotes) with a free-text field, the header line left out."""
    lines = _lines(text)
    best: Items | None = None
    for delimiter in ("\t", ";", ","):
        parsed = [_csv_fields(offset, line, delimiter) if delimiter in line else None for offset, line in lines]
        counts = [len(p[0]) if p else 0 for p in parsed]
        for run in _runs([c >= 2 for c in counts]):
            # a run holds one record shape: split it where the field count changes
            shapes: dict[int, list[int]] = defaultdict(list)
            for i in run:
                shapes[counts[i]].append(i)
            rows = max(shapes.values(), key=len)
            if len(rows) < 2 or rows != list(range(rows[0], rows[0] + len(rows))):
                continue
            column = _longest_column([parsed[i][0] for i in rows])
            if column is None:
                continue
            values = [text[slice(*parsed[i][0][column])] for i in rows]
            if not any(" " in v for v in values[1:]):
                continue  # no field of free text: ids, numbers or codes, not items to ask in
            if " " not in values[0] and sum(" " in v for v in values[1:]) >= 0.5 * (len(values) - 1):
                rows = rows[1:]  # a header line ("id,text")
            if len(rows) < 2 or best is not None and len(rows) <= len(best):
                continue
            best = Items(text, "csv", tuple(parsed[i][0][column] for i in rows), delimiter=delimiter,
                         quoted=tuple(parsed[i][1][column] for i in rows))
    return best


# --- lists -------------------------------------------------------------------------------------------

_LIST_ITEM = re.compile(r"^[ \t]*(?:(\d{1,3}[.)]|\(\d{1,3}\))|([-*•+])|([a-zA-Z][.)]))[ \t]+(\S.*?)[ \t]*$")


def _find_list(text: str) -> Items | None:
    """The longest run of list items of one marker kind (numbers, bullets or letters; blank
    lines may sit between them)."""
    lines = _lines(text)
    found = [_LIST_ITEM.match(line) for _, line in lines]
    kinds = [None if m is None else 0 if m.group(1) else 1 if m.group(2) else 2 for m in found]
    blank = [not line.strip() for _, line in lines]
    best: list[int] = []
    for kind in (0, 1, 2):
        for run in _runs([k == kind for k in kinds], allow_gaps=blank):
            if len(run) > len(best):
                best = run
    if len(best) < 2:
        return None
    return Items(text, "list", tuple((lines[i][0] + found[i].start(4), lines[i][0] + found[i].end(4)) for i in best))


# --- JSON --------------------------------------------------------------------------------------------

def _space(text: str, i: int) -> int:
    while text[i:i + 1].isspace():
        i += 1
    return i


def _json_node(text: str, i: int):
    """A JSON value at `i` (after white space) as a node with its span: ("str", (a, b)) for a
    string (inside its quotes), ("arr", [nodes]), ("obj", [(key, node)]), ("lit", None); and
    where it ends. The text from `i` is valid JSON (the caller checked it)."""
    i = _space(text, i)
    char = text[i:i + 1]
    if char == '"':
        _, end = json.decoder.scanstring(text, i + 1)
        return ("str", (i + 1, end - 1)), end
    if char and char in "[{":
        close, children, i = "]" if char == "[" else "}", [], i + 1
        while True:
            i = _space(text, i)
            if text[i:i + 1] == close:
                return ("arr" if char == "[" else "obj", children), i + 1
            key = None
            if char == "{":
                key, i = json.decoder.scanstring(text, i + 1)
                i = text.index(":", i) + 1
            node, i = _json_node(text, i)
            children.append(node if key is None else (key, node))
            i = _space(text, i)
            if text[i:i + 1] == ",":
                i += 1
    _, end = json.JSONDecoder().raw_decode(text, i)
    return ("lit", None), end


def _json_groups(node, out: list[list[tuple[int, int]]]) -> None:
    """Every group of item texts under `node`: an array's strings, or one key's strings across
    an array's objects."""
    kind, value = node
    if kind == "arr":
        strings = [n[1] for n in value if n[0] == "str"]
        if len(strings) >= 2:
            out.append(strings)
        by_key: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for child in value:
            if child[0] == "obj":
                for key, item in child[1]:
                    if item[0] == "str":
                        by_key[key].append(item[1])
        out += [spans for spans in by_key.values() if len(spans) >= 2]
        for child in value:
            _json_groups(child, out)
    elif kind == "obj":
        for _, child in value:
            _json_groups(child, out)


def _find_json(text: str) -> Items | None:
    """Items in the JSON values of `text`: one value (an array or an object holding one), or
    several records, one per line (JSON Lines)."""
    roots, i = [], 0
    for match in re.finditer(r"(?m)^[ \t]*[\[{]|(?<=[:\n] )[\[{]|(?<=:)[\[{]", text):
        if match.end() - 1 < i:
            continue
        try:
            json.JSONDecoder().raw_decode(text, match.end() - 1)
            node, i = _json_node(text, match.end() - 1)
        except (ValueError, IndexError):
            continue
        roots.append(node)
    if not roots:
        return None
    groups: list[list[tuple[int, int]]] = []
    _json_groups(("arr", roots) if len(roots) > 1 else roots[0], groups)
    if not groups:
        return None
    spans = max(groups, key=lambda g: (statistics.mean(b - a for a, b in g), len(g)))
    return Items(text, "json", tuple(spans), style="ascii" if "\\u" in text else "")


# --- labelled items ----------------------------------------------------------------------------------

_LABEL = re.compile(r"^[ \t]*\[?([^\W\d_][^\W\d_ ]*(?: [^\W\d_]+){0,2}?)"  # the label: one to three words
                    r"[ \t]*(#?\d{1,3}|[A-Z])?\]?[ \t]*[:\-–—][ \t]*(.*?)[ \t]*$")  # a counter, a colon or dash


def _find_labelled(text: str) -> Items | None:
    """Lines that open with the same label ("Review 1: ...", "Text: ...", "[Item A] - ..."), the
    item's text after it, or in the lines below it up to a blank line when the label stands alone."""
    lines = _lines(text)
    groups: dict[str, list[tuple[int, int]]] = defaultdict(list)
    styles: dict[str, set[str]] = defaultdict(set)
    for k, (offset, line) in enumerate(lines):
        found = _LABEL.match(line)
        if not found:
            continue
        label = found.group(1).lower()
        if found.group(3):
            groups[label].append((offset + found.start(3), offset + found.end(3)))
            styles[label].add("line")
            continue
        block = []
        for offset2, below in lines[k + 1:]:
            if not below.strip() or _LABEL.match(below) and _LABEL.match(below).group(1).lower() == label:
                break
            block.append((offset2, below))
        if block:
            groups[label].append((block[0][0], block[-1][0] + len(block[-1][1].rstrip())))
            styles[label].add("block")
    candidates = [(label, spans) for label, spans in groups.items() if len(spans) >= 2 and len(styles[label]) == 1]
    if not candidates:
        return None
    label, spans = max(candidates, key=lambda c: (len(c[1]), statistics.mean(b - a for a, b in c[1])))
    return Items(text, "labelled", tuple(spans), style=next(iter(styles[label])))


_FINDERS = {"json": _find_json, "table": _find_table, "list": _find_list, "csv": _find_csv,
            "labelled": _find_labelled}

__all__ = ["LAYOUTS", "Items", "encode", "find_items", "replace_item"]
