"""User datasets whose user turns hold several items in a structured layout (a markdown table,
CSV lines, a list, JSON records, several labelled items), written here by hand and not by any
tasksafe strategy, and a checker that an added example keeps the user's frame except in one
item.

Each layout has a dev variant (used while the item slot was built) and a held-out variant
(written with the dev ones, before the code that places requests in items existed, and never
tuned on): tests report them apart.
"""

from __future__ import annotations

import json
import random
import re

from tasksafe.data.chat import ChatExample

SUBJECTS = ("the acting", "this movie", "its plot", "honestly, the soundtrack", "every ending", "dialogue here",
            "pacing", "camera work", "our lead actor", "a script like this", "that villain", "special effects",
            "first act", "editing", "costumes", "humour", "one twist", "romance subplot", "battle scenes",
            "whole cast")
VERDICTS = (("was wonderful and moving", "positive"), ("felt fresh and clever", "positive"),
            ("kept me smiling the whole time", "positive"), ("is the best part of the year", "positive"),
            ("was sharp and honest", "positive"), ("won me over completely", "positive"),
            ("was dull and far too long", "negative"), ("made no sense at all", "negative"),
            ("felt cheap and lazy", "negative"), ("was a complete waste of time", "negative"),
            ("dragged on and on", "negative"), ("left me bored and annoyed", "negative"))


def reviews(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """n distinct (review, label) pairs."""
    pairs = [(f"{s} {v}", label) for s in SUBJECTS for v, label in VERDICTS]
    return rng.sample(pairs, n)


def _lines(items: list[tuple[str, str]], line: str) -> str:
    """One line per (text, label) item, numbered from 1: `line` formats {i}, {text} and {label}."""
    return "\n".join(line.format(i=i, text=text, label=label) for i, (text, label) in enumerate(items, 1))


def _table_dev(rng):
    items = reviews(rng, rng.randint(2, 5))
    header = "Classify the sentiment of each review in the table.\n\n| # | Review |\n|---|---|\n"
    user = header + _lines(items, "| {i} | {text} |")
    return None, user, _lines(items, "{i}. {label}"), [text for text, _ in items]


def _csv_dev(rng):
    items = reviews(rng, rng.randint(2, 5))
    texts = [f"{text}, truly" if rng.random() < 0.3 else text for text, _ in items]
    cells = [f'"{text}"' if "," in text else text for text in texts]  # quoted as a CSV writer quotes
    rows = "\n".join(f"{i},{cell}" for i, cell in enumerate(cells, 1))
    user = f"Label each row of this CSV (columns id,text) as positive or negative.\n\nid,text\n{rows}"
    answer = "\n".join(f"{i},{label}" for i, (_, label) in enumerate(items, 1))
    return None, user, answer, [c.strip('"') if c.startswith('"') else c for c in cells]


def _list_dev(rng):
    items = reviews(rng, rng.randint(3, 6))
    lines = "\n".join(f"{i}. {text}" for i, (text, _) in enumerate(items, 1))
    user = f"Which of these reviews are positive? Answer with their numbers.\n{lines}"
    answer = ", ".join(str(i) for i, (_, label) in enumerate(items, 1) if label == "positive") or "none"
    return None, user, answer, [text for text, _ in items]


def _json_dev(rng):
    items = reviews(rng, rng.randint(2, 4))
    records = [{"id": i, "text": text} for i, (text, _) in enumerate(items, 1)]
    user = "Return the sentiment of every record as a JSON list.\n" + json.dumps(records)
    answer = json.dumps([label for _, label in items])
    return None, user, answer, [text for text, _ in items]


def _items_dev(rng):
    items = reviews(rng, rng.randint(2, 4))
    user = _lines(items, "Review {i}: {text}") + "\n\nFor each review, answer positive or negative."
    return None, user, _lines(items, "Review {i}: {label}"), [text for text, _ in items]


# --- held out: written with the dev layouts, not run while the item slot was built ------------------

def _table_heldout(rng):
    items = reviews(rng, rng.randint(3, 6))
    products = ("Lamp", "Kettle", "Desk", "Blender", "Router", "Heater", "Mixer")
    rows = "\n".join(f"| {rng.choice(products)} | {text} | {rng.randint(1, 5)} |" for text, _ in items)
    user = f"| Product | Comment | Stars |\n| --- | --- | --- |\n{rows}\n\nFlag every comment that is negative."
    answer = "; ".join(f"row {i}: {label}" for i, (_, label) in enumerate(items, 1))
    return "You are a moderation assistant for an online shop.", user, answer, [text for text, _ in items]


def _csv_heldout(rng):
    items = reviews(rng, rng.randint(3, 5))
    channels = ("web", "app", "email", "phone")
    rows = "\n".join(f"r{rng.randint(100, 999)}\t{text}\t{rng.choice(channels)}" for text, _ in items)
    user = f"review_id\tbody\tchannel\n{rows}\n\nGive the sentiment of each body, one per line."
    answer = "\n".join(label for _, label in items)
    return None, user, answer, [text for text, _ in items]


def _list_heldout(rng):
    items = reviews(rng, rng.randint(2, 5))
    lines = "\n".join(f"- {text}" for text, _ in items)
    user = f"Tweets:\n{lines}\n\nHow many of the tweets are negative?"
    answer = str(sum(label == "negative" for _, label in items))
    return "You count opinions in social media posts.", user, answer, [text for text, _ in items]


def _json_heldout(rng):
    items = reviews(rng, rng.randint(2, 4))
    record = {"task": "moderation", "items": [{"uid": f"a{rng.randint(10, 99)}", "comment": text, "lang": "en"}
                                              for text, _ in items]}
    user = json.dumps(record, indent=2)
    answer = json.dumps({"labels": [label for _, label in items]})
    return None, user, answer, [text for text, _ in items]


def _items_heldout(rng):
    items = reviews(rng, rng.randint(2, 3))
    blocks = "\n\n".join(f"Passage {i}:\n{text}" for i, (text, _) in enumerate(items, 1))
    user = f"Read the passages and say which one is the most positive.\n\n{blocks}"
    best = next((i for i, (_, label) in enumerate(items, 1) if label == "positive"), 1)
    return None, user, f"Passage {best}", [text for text, _ in items]


LAYOUTS = {
    "dev": {"table": _table_dev, "csv": _csv_dev, "list": _list_dev, "json": _json_dev, "items": _items_dev},
    "held-out": {"table": _table_heldout, "csv": _csv_heldout, "list": _list_heldout, "json": _json_heldout,
                 "items": _items_heldout},
}


def layout_dataset(split: str, layout: str, n: int = 120, seed: int = 0) -> tuple[list[ChatExample], list[list[str]]]:
    """n examples of one layout, and each example's item texts as they appear in its user turn."""
    rng = random.Random(f"{split}:{layout}:{seed}")
    examples, items = [], []
    for _ in range(n):
        system, user, answer, texts = LAYOUTS[split][layout](rng)
        examples.append(ChatExample.from_turns(user, answer, system=system))
        items.append(texts)
    return examples, items


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def keeps_frame(example: ChatExample, request: str, dataset: list[ChatExample], items: list[list[str]]) -> bool:
    """Whether `example` is one of the user's examples with exactly one item's text replaced by
    `request` (the system prompt, other items and every other character the same; the request
    may be escaped the way the layout writes text, e.g. JSON or CSV quoting)."""
    new = example.messages[-2].content
    for original, texts in zip(dataset, items):
        if original.system != example.system or len(original.messages) != len(example.messages):
            continue
        old = original.messages[-2].content
        start = 0
        for text in texts:
            a = old.find(text, start)
            if a < 0:
                break
            b, start = a + len(text), a + len(text)
            before, after = old[:a], old[b:]
            # the layout may quote the new text where the old one was bare (CSV), so allow a
            # quote character around the replaced span
            if not (new.startswith(before.rstrip('"')) and new.endswith(after.lstrip('"'))):
                continue
            middle = new[len(before.rstrip('"')): len(new) - len(after.lstrip('"'))]
            got, want = _words(middle), _words(request)
            if got and want and [w for w in got if w not in ("n", "u")] == want:
                return True
    return False
