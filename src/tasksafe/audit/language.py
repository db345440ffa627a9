"""A small language guesser: enough to write a refusal in the language of a user's dataset.

>>> guess_language("Wie ist die Stimmung dieser Bewertung? Die Antwort ist nicht gut.")
'de'
>>> guess_language("Classify the sentiment of the review below.")
'en'
"""

from __future__ import annotations

import re
from collections import Counter

STOPWORDS = {
    "en": "the and of to is in that it for was on are with as this be you not what which or",
    "de": "der die das und ist nicht ein eine zu den von mit sich des auf für dem wie ich sie",
    "fr": "le la les et est un une des du de en que qui pas pour dans ce il sur au",
    "es": "el la los las y es un una de que en no por para con se del lo como",
    "it": "il la le e è un una di che non per con del della sono si gli come",
    "pt": "o a os as e é um uma de que não para com do da em se por como",
    "nl": "de het een en is van niet dat op te zijn voor met die wat ik",
}
_WORDS = {lang: set(words.split()) for lang, words in STOPWORDS.items()}
SCRIPTS = (("zh", r"[\u4e00-\u9fff]"), ("ja", r"[\u3040-\u30ff]"), ("ko", r"[\uac00-\ud7af]"),
           ("ru", r"[\u0400-\u04ff]"), ("ar", r"[\u0600-\u06ff]"))


def guess_language(text: str) -> str:
    """An ISO 639-1 code for the likely language of `text` ('en' when unsure)."""
    for code, pattern in SCRIPTS:
        if len(re.findall(pattern, text)) > max(5, len(text) // 10):
            return "ja" if code == "zh" and re.search(SCRIPTS[1][1], text) else code
    words = re.findall(r"[^\W\d_]+", text.lower())
    scores = Counter({lang: sum(w in vocab for w in words) for lang, vocab in _WORDS.items()})
    best, score = scores.most_common(1)[0] if scores else ("en", 0)
    return best if score > scores["en"] else "en"
