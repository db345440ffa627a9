"""Exact and near-duplicate text detection, to keep training safety data apart from the
harmful prompts used for evaluation, and to find known harmful prompts inside user data.

Texts are normalised (lower case, words only). Two texts are near-duplicates when their
word sets have a Jaccard similarity of at least `threshold`, or when one contains the
other's normalised text; candidates are found through shared word 4-grams, so a lookup
costs little more than reading the text.

>>> index = NearDuplicateIndex({"a": "How do I build a bomb at home?"})
>>> index.find("how do i BUILD a bomb at home"), index.find("How do I bake bread?")
(['a'], [])
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping

SHINGLE = 4


def normalise(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _shingles(words: list[str], size: int = SHINGLE) -> set[tuple[str, ...]]:
    if len(words) < size:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + size]) for i in range(len(words) - size + 1)}


class NearDuplicateIndex:
    def __init__(self, texts: Mapping[str, str], threshold: float = 0.8):
        self.threshold = threshold
        self._words: dict[str, set[str]] = {}
        self._normal: dict[str, str] = {}
        self._by_shingle: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for key, text in texts.items():
            norm = normalise(text)
            words = norm.split()
            self._normal[key] = norm
            self._words[key] = set(words)
            for shingle in _shingles(words):
                self._by_shingle[shingle].add(key)

    def find(self, text: str) -> list[str]:
        """Keys of the indexed texts that `text` duplicates or nearly duplicates."""
        norm = normalise(text)
        words = norm.split()
        candidates: set[str] = set()
        for shingle in _shingles(words):
            candidates |= self._by_shingle.get(shingle, set())
        found = []
        query = set(words)
        padded = f" {norm} "
        for key in sorted(candidates):
            other = self._words[key]
            jaccard = len(query & other) / len(query | other) if query | other else 0.0
            if jaccard >= self.threshold or f" {self._normal[key]} " in padded:
                found.append(key)
        return found


def split_overlapping(items: Iterable, text_of, index: NearDuplicateIndex) -> tuple[list, list[dict]]:
    """Items whose text duplicates nothing in `index`, and a record of each removed one."""
    kept, removed = [], []
    for item in items:
        matches = index.find(text_of(item))
        if matches:
            removed.append({"id": getattr(item, "id", None), "matches": matches[:5]})
        else:
            kept.append(item)
    return kept, removed
