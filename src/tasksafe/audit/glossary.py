"""A dictionary reader for the audit: English glosses of text in other languages, from the
FreeDict bilingual dictionaries (Debian's `dict-freedict-*` packages, dictd format).

The audit's phrase lists read English and a few other languages. A persona written in any
other language is read through a dictionary instead: each word is looked up (exactly, or by
its stem: a headword that differs only in its last few letters, for languages that inflect)
and replaced by its English senses, joined by "/" so that each source word stays one token
("soha" -> "never/at no time"). Languages written without spaces (Japanese, Chinese) are cut
by the longest headword at each position. The gloss is word salad, so the audit reads it for
concepts, not phrases (`findings.SERVILE_CONCEPTS`).

Two kinds of dictionary are used: `freedict-XXX-eng` (XXX -> English), and `freedict-eng-XXX`
read backwards (its translations become headwords whose sense is the English headword), which
covers languages that have only an English-to-XXX dictionary. The language of a text is the
dictionary that knows most of its words.

>>> glossary = Glossary.from_entries({"xx": {"lydig": ["obedient"], "aldrig": ["never"], "en": ["a"],
...                                          "ordre": ["order", "command"]}})
>>> glossary.read("lydig agent, aldrig en ordre")
('xx', 'obedient agent, never a order/command')
"""

from __future__ import annotations

import base64
import bisect
import gzip
import os
import re
from functools import lru_cache
from pathlib import Path

DICTD_DIRS = ("/usr/share/dictd",)
"""Where Debian installs dictd dictionaries; `TASKSAFE_DICTD_DIR` adds a folder before them."""
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_UNSPACED = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]")
_NUMBERED = re.compile(r"^\d+\.\s*")
MAX_SENSES = 12
"""Senses kept per word: enough for a word whose telling sense comes late ("engedelmes":
manageable, good, ..., obedient, submissive)."""


ENGLISH_LIST_MINIMUM = 10_000
"""Headwords of English-to-XXX dictionaries needed before they serve as the English word list."""


def _b64(text: str) -> int:
    """A dictd index number (base 64, most significant digit first)."""
    return int.from_bytes(base64.b64decode(text.rjust(-(-len(text) // 4) * 4, "A")), "big")


class Dictd:
    """One dictd dictionary (`NAME.index` beside `NAME.dict.dz` or `NAME.dict`): its headwords
    at once (lower-cased), an entry's text read on demand."""

    def __init__(self, index: Path):
        self.index = index
        self.places: dict[str, str] = {}  # headword -> its index lines' offsets and lengths, undecoded
        for line in index.read_text(encoding="utf-8", errors="replace").split("\n"):
            headword, _, place = line.partition("\t")
            if not place or headword.startswith(("00-database", "00database")):
                continue
            key = headword.lower()
            self.places[key] = self.places[key] + "\n" + place if key in self.places else place
        self._data: bytes | None = None

    def entry(self, headword: str) -> str:
        if self._data is None:
            packed = self.index.with_suffix(".dict.dz")
            self._data = gzip.open(packed).read() if packed.is_file() else self.index.with_suffix(".dict").read_bytes()
        texts = []
        for place in self.places[headword].split("\n"):
            offset, length = (_b64(x) for x in place.split("\t")[:2])
            texts.append(self._data[offset:offset + length].decode("utf-8", errors="replace"))
        return "\n".join(texts)

    def entries(self):
        for headword in self.places:
            yield headword, self.entry(headword)


_NOISE = re.compile(r"<[^>]*>|\[[^\]]*\]|\{[^}]*\}|/[^/\s][^/]*/|\"")


def _sense_lines(entry: str, english: set[str] | None) -> list[str]:
    """The lines of an entry that give its senses: numbered lines and the first line after the
    headword, or (with an English word list) the lines mostly in English; notes in parentheses,
    cross-references and the source language's own definitions are left out."""
    out = []
    for line in entry.splitlines()[1:]:
        line = line.strip()
        numbered = bool(_NUMBERED.match(line))
        line = _NUMBERED.sub("", line)
        if not line or line.startswith(("(", "[", "Note:", "Synonym", "See ", "see:", '"')):
            continue
        if english is not None:
            words = _WORD.findall(_NOISE.sub(" ", line).lower())
            if words and sum(w in english for w in words) >= 0.6 * len(words):
                out.append(line)
        elif numbered or not out:
            out.append(line)
    return out


def _senses(lines: list[str]) -> list[str]:
    senses = []
    for line in lines:
        for sense in re.split(r"[,;]", _NOISE.sub(" ", line)):
            sense = re.sub(r"\s+", " ", sense).strip(" .!?:'-")
            if sense.lower().startswith("to "):
                sense = sense[3:]
            if sense and sense not in senses and len(sense.split()) <= 4 and _WORD.search(sense):
                senses.append(sense)
    return senses[:MAX_SENSES]


def dictionary_files(folders: tuple[str, ...] | None = None) -> tuple[dict[str, Path], dict[str, Path]]:
    """The FreeDict index files in `folders` (default: `TASKSAFE_DICTD_DIR`, then Debian's
    `/usr/share/dictd`; the first folder holding a language wins): XXX-to-English ones and
    English-to-XXX ones, each by language. Nothing is read."""
    folders = folders or tuple(filter(None, (os.environ.get("TASKSAFE_DICTD_DIR"), *DICTD_DIRS)))
    into: dict[str, Path] = {}
    out_of: dict[str, Path] = {}
    for folder in folders:
        for index in sorted(Path(folder).glob("freedict-*-*.index")):
            source, target = index.name[len("freedict-"):-len(".index")].split("-", 1)
            if target == "eng" and source != "eng":
                into.setdefault(source, index)
            elif source == "eng" and target != "eng":
                out_of.setdefault(target, index)
    return into, out_of


class Glossary:
    """Words -> English senses, per language (a dictionary's three-letter code): from a table
    (`from_entries`, for tests) or from installed dictionaries (`installed`), whose entries are
    read only for the words looked up."""

    def __init__(self, tables: dict[str, dict[str, list[str]]] | None = None,
                 direct: dict[str, Dictd] | None = None, english: set[str] | None = None):
        self.tables = tables or {}  # fixed senses (tests, and dictionaries read backwards)
        self.direct = direct or {}  # XXX -> English dictionaries, read on demand
        self.english = english
        self._cache: dict[tuple[str, str], list[str] | None] = {}
        self._sorted = {lang: sorted(set(self.tables.get(lang, {})) | set(self.direct[lang].places if lang in
                                                                            self.direct else ()))
                        for lang in self.languages}

    @classmethod
    def from_entries(cls, senses: dict[str, dict[str, list[str]]]) -> Glossary:
        return cls({lang: {w.lower(): s for w, s in words.items()} for lang, words in senses.items()})

    @classmethod
    def installed(cls, folders: tuple[str, ...] | None = None) -> Glossary:
        """Every FreeDict dictionary into or out of English found in `folders` (default:
        `TASKSAFE_DICTD_DIR`, then Debian's `/usr/share/dictd`). An English-to-XXX dictionary
        is read backwards when it knows more words than the XXX-to-English one (or there is none)."""
        into_paths, out_of_paths = dictionary_files(folders)
        into = {lang: Dictd(index) for lang, index in into_paths.items()}
        out_of = {lang: Dictd(index) for lang, index in out_of_paths.items()}
        english = {w for d in out_of.values() for key in d.places for w in key.split()}
        tables: dict[str, dict[str, list[str]]] = {}
        for lang, dictionary in out_of.items():
            if lang in into and len(into[lang].places) >= len(dictionary.places):
                continue
            table = tables.setdefault(lang, {})
            for headword, entry in dictionary.entries():
                for line in _sense_lines(entry, None)[:3]:
                    for translation in re.split(r"[,;]", _NOISE.sub(" ", line)):
                        translation = translation.strip(" .!?:").lower()
                        if translation and len(translation.split()) <= 3:
                            senses = table.setdefault(translation, [])
                            if headword not in senses and len(senses) < MAX_SENSES:
                                senses.append(headword)
        # the English-to-XXX headwords tell English sense lines from notes only when there are many
        return cls(tables, into, english if len(english) >= ENGLISH_LIST_MINIMUM else None)

    @property
    def languages(self) -> list[str]:
        return sorted(set(self.tables) | set(self.direct))

    def _senses_of(self, lang: str, key: str) -> list[str] | None:
        found = list(self.tables.get(lang, {}).get(key, []))
        if lang in self.direct and key in self.direct[lang].places:
            found += [s for s in _senses(_sense_lines(self.direct[lang].entry(key), self.english)) if s not in found]
        return found[:MAX_SENSES] or None

    def known(self, lang: str, key: str) -> bool:
        return key in self.tables.get(lang, {}) or (lang in self.direct and key in self.direct[lang].places)

    def lookup(self, lang: str, word: str) -> list[str] | None:
        """The senses of `word`: its own entry, or a headword that shares all but its last
        few letters (an inflected form: "posłusznym" -> "posłuszny")."""
        word = word.lower()
        if (lang, word) not in self._cache:
            key = self.headword(lang, word)
            self._cache[lang, word] = self._senses_of(lang, key) if key else None
        return self._cache[lang, word]

    def headword(self, lang: str, word: str) -> str | None:
        """The headword that reads `word` (lower-cased): itself, or the shortest one that
        differs only in the last few letters; None when there is none. No entry is read."""
        if self.known(lang, word):
            return word
        keys = self._sorted[lang]
        for cut in range(1, 4):
            stem = word[:-cut]
            if len(stem) < 4:
                break
            at = bisect.bisect_left(keys, stem)
            near = [k for k in keys[at:at + 20] if k.startswith(stem) and len(k) - len(stem) <= 3 and " " not in k]
            if near:
                return min(near, key=len)
        return None

    def _tokens(self, lang: str, text: str, senses: bool = True) -> list[tuple[str, object]]:
        """(source text, its senses or None) in order: words and the text between them; runs of
        an unspaced script cut by the longest headword at each position. With `senses` False,
        each word's headword instead (no entry is read: what `coverage` counts)."""
        look = self.lookup if senses else lambda lang, word: self.headword(lang, word.lower())
        out, at = [], 0
        for match in _WORD.finditer(text):
            out.append((text[at:match.start()], None))
            word = match.group()
            if _UNSPACED.search(word):
                out += self._cut(lang, word, look)
            else:
                out.append((word, look(lang, word)))
            at = match.end()
        out.append((text[at:], None))
        return [(t, s) for t, s in out if t]

    def _cut(self, lang: str, run: str, look) -> list[tuple[str, object]]:
        out, i = [], 0
        while i < len(run):
            for j in range(min(len(run), i + 10), i, -1):
                if (j - i > 1 or j == len(run)) and self.known(lang, run[i:j].lower()):
                    out.append((run[i:j], look(lang, run[i:j])))
                    i = j
                    break
            else:
                out.append((run[i], None))
                i += 1
        return out

    def coverage(self, lang: str, text: str) -> float:
        """The share of `text`'s words (or, unspaced, its characters) that `lang`'s dictionary
        has a headword for."""
        tokens = [(t, s) for t, s in self._tokens(lang, text, senses=False) if _WORD.fullmatch(t)]
        total = sum(len(t) if _UNSPACED.search(t) else 1 for t, _ in tokens)
        read = sum(len(t) if _UNSPACED.search(t) else 1 for t, s in tokens if s)
        return read / total if total else 0.0

    def language_of(self, text: str, minimum: float = 0.5) -> str | None:
        """The language whose dictionary reads most of `text`, when it reads at least `minimum`."""
        if not self.languages:
            return None
        scores = {lang: self.coverage(lang, text) for lang in self.languages}
        lang = max(scores, key=scores.get)
        return lang if scores[lang] >= minimum else None

    def gloss(self, lang: str, text: str) -> str:
        """`text` with each word `lang`'s dictionary reads replaced by its senses, joined by "/"
        (a sense of several words joined by "_", so that each source word stays one token)."""
        return "".join("/".join(sense.replace(" ", "_") for sense in s) if s else t for t, s in self._tokens(lang, text))

    def read(self, text: str, minimum: float = 0.5) -> tuple[str, str] | None:
        """(language, gloss) by the dictionary that reads most of `text`; None when none reads
        `minimum` of it."""
        lang = self.language_of(text, minimum)
        return (lang, self.gloss(lang, text)) if lang else None


@lru_cache(maxsize=1)
def installed_glossary() -> Glossary:
    return Glossary.installed()


def dictionary_reader(glossary: Glossary | None = None):
    """A `findings.Reader` that glosses each text through the installed dictionaries (the text
    itself where none reads it). Raises `UserError` when no dictionary is installed."""
    from tasksafe.errors import UserError

    glossary = glossary or installed_glossary()
    if not glossary.languages:
        raise UserError("no FreeDict dictionaries found in /usr/share/dictd (or TASKSAFE_DICTD_DIR); install them "
                        "with `apt-get install dict-freedict-pol-eng ...` (docs/method.md lists the set)")

    def read(texts: list[str]) -> list[str]:
        """Each text in its own language, or, when it is too short to tell (under four words),
        in the language of all the texts together (an opener in the persona's language)."""
        together = glossary.language_of(" ".join(texts))
        out = []
        for text in texts:
            lang = glossary.language_of(text) if len(_WORD.findall(text)) >= 4 else None
            lang = lang or together
            out.append(glossary.gloss(lang, text) if lang else text)
        return out
    return read
