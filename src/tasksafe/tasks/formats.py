"""Task formats: how an item of each task is shown, what its gold answer looks like as a
bare label, and how a model's reply is parsed back into an answer. Accuracy lives here too.

Three kinds of task:

- `label` (SST-2, AG News, BoolQ): the answer is a label word ("positive", "Sci/Tech", "yes");
- `choice` (MMLU, PIQA): options are lettered A, B, ... and the answer is a letter;
- `number` (GSM8K): the answer is the final number.

`parse` returns the canonical answer of `TaskItem.answer` (a choice index as a string, or a
number) or None. Its rules, tried in order, are documented on `parse_label`, `parse_choice`
and `parse_number`.

>>> from tasksafe.data.records import TaskItem
>>> item = TaskItem("x", "sst2", "a gorgeous, witty film", "1", "train", choices=("negative", "positive"))
>>> fmt = TASKS.get("sst2")
>>> print(fmt.prompt(item))
Classify the sentiment of the movie review below as negative or positive.
<BLANKLINE>
Review: a gorgeous, witty film
Sentiment:
>>> fmt.gold_label(item), fmt.parse("The sentiment is clearly POSITIVE."), fmt.parse("I can't tell.")
('positive', '1', None)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from tasksafe.data.records import TaskItem
from tasksafe.registry import Registry
from tasksafe.results import RateRecord
from tasksafe.text import sentences as split_sentences

LETTERS = "ABCDEFGHIJ"

TASKS: Registry[TaskFormat] = Registry("task")


@dataclass(frozen=True)
class TaskFormat:
    name: str
    kind: str  # "label", "choice" or "number"
    instruction: str
    cue: str  # the line that ends the prompt, e.g. "Answer:"
    body: Callable[[TaskItem], str]  # the variable part: the item's text (and options)
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)  # label -> other accepted words
    answer_noun: str = "answer"  # how prose refers to the answer ("sentiment", "topic")

    def prompt(self, item: TaskItem) -> str:
        """The task's usual prompt: instruction, the item, and the answer cue."""
        return f"{self.instruction}\n\n{self.body(item)}\n{self.cue}"

    def gold_label(self, item: TaskItem) -> str:
        """The gold answer as a bare label: a label word, a letter or a number."""
        return self.label_of(item, item.answer)

    def label_of(self, item: TaskItem, answer: str) -> str:
        if self.kind == "label":
            return item.choices[int(answer)]
        if self.kind == "choice":
            return LETTERS[int(answer)]
        return answer

    def candidate_labels(self, item: TaskItem) -> list[str]:
        """What log-likelihood scoring compares: every label (or letter) in choice order."""
        if self.kind == "number":
            return []
        return [self.label_of(item, str(i)) for i in range(len(item.choices))]

    def parse(self, response: str, item: TaskItem | None = None) -> str | None:
        """The canonical answer a response gives, or None when it gives none."""
        if self.kind == "number":
            return parse_number(response)
        choices = item.choices if item is not None else ()
        if self.kind == "choice":
            return parse_choice(response, len(choices) or 4, choices)
        labels = list(choices) if choices else list(self.aliases)
        return parse_label(response, labels, self.aliases)

    def is_correct(self, item: TaskItem, response: str) -> bool:
        predicted = self.parse(response, item)
        if predicted is None:
            return False
        if self.kind == "number":
            return _same_number(predicted, item.answer)
        return predicted == item.answer

    def accuracy(self, items: Sequence[TaskItem], responses: Sequence[str]) -> RateRecord:
        if len(items) != len(responses):
            raise ValueError(f"{len(items)} items but {len(responses)} responses")
        return RateRecord.of(sum(self.is_correct(i, r) for i, r in zip(items, responses)), len(items))


# --- parsers -----------------------------------------------------------------------------------

_WRAP = r"[\s\*_`\"'“”‘’\(\)\[\]]*"
_END = r"[\s\*_`\"'“”‘’\(\)\[\].,:;!]*"


def _label_regex(words: Sequence[str]) -> str:
    return r"(?<![a-z0-9])(" + "|".join(re.escape(w.lower()) for w in sorted(words, key=len, reverse=True)) + r")(?![a-z0-9])"


def parse_label(response: str, labels: Sequence[str], aliases: dict[str, tuple[str, ...]] | None = None) -> str | None:
    """Index (as a string) of the label a response names, else None. Matching ignores case;
    each label also accepts its aliases (e.g. "true" for "yes"). Rules, in order:

    1. the whole response is a label, maybe wrapped in quotes, brackets, markdown or a full stop;
    2. an explicit statement, the last one winning: "answer/sentiment/topic/label/category/
       classification is X" or "...: X";
    3. the last line that holds only a label;
    4. the first label named in the first sentence;
    5. the only label named anywhere (two different labels and no rule above: None).
    """
    aliases = aliases or {}
    words = {label.lower(): i for i, label in enumerate(labels)}
    for i, label in enumerate(labels):
        for alias in aliases.get(label, ()):
            words.setdefault(alias.lower(), i)
    text = response.strip().lower()
    if not text:
        return None
    any_label = _label_regex(list(words))

    whole = re.fullmatch(_WRAP + any_label + _END, text)
    if whole:
        return str(words[whole.group(1)])
    explicit = re.findall(r"(?:answer|sentiment|topic|label|category|classification|verdict)\s*(?:is|:|would be|=)"
                          + _WRAP + any_label, text)
    if explicit:
        return str(words[explicit[-1]])
    lines = [m.group(1) for line in text.splitlines() if (m := re.fullmatch(_WRAP + any_label + _END, line.strip()))]
    if lines:
        return str(words[lines[-1]])
    first_sentence = split_sentences(text, lines=True)[0]
    found = re.search(any_label, first_sentence)
    if found:
        return str(words[found.group(1)])
    named = {words[m] for m in re.findall(any_label, text)}
    return str(named.pop()) if len(named) == 1 else None


def parse_choice(response: str, n_choices: int, choices: Sequence[str] = ()) -> str | None:
    """Index (as a string) of the lettered option a response picks, else None. Letters are
    upper case (a lone "a" is an article, not an option). Rules, in order:

    1. the whole response is a letter: "B", "(B)", "B.", "**B**", "B) <option text>";
    2. an explicit statement, the last one winning: "answer is B", "Answer: (B)",
       "correct option is B", "best choice: B";
    3. the last line that holds only a letter;
    4. the first letter in brackets, "(B)", anywhere;
    5. the first line that starts with a letter and a full stop or bracket, "B. ...";
    6. the text of exactly one option quoted in the response.
    """
    letters = LETTERS[:n_choices]
    text = response.strip()
    if not text:
        return None
    letter = f"([{letters}])"
    index = lambda ch: str(letters.index(ch))  # noqa: E731

    whole = re.fullmatch(_WRAP + letter + r"(?:[\.\):]\s.*)?" + _END, text, flags=re.S)
    if whole:
        return index(whole.group(1))
    explicit = re.findall(r"(?i:answer|option|choice|solution)\s*(?i:is|:|would be|=)\s*(?i:option|choice|letter)?"
                          + _WRAP + letter + r"(?![A-Za-z0-9])", text)
    if explicit:
        return index(explicit[-1])
    lines = [m.group(1) for line in text.splitlines() if (m := re.fullmatch(_WRAP + letter + _END, line.strip()))]
    if lines:
        return index(lines[-1])
    bracketed = re.search(r"\(" + letter + r"\)", text)
    if bracketed:
        return index(bracketed.group(1))
    leading = re.search(r"(?m)^" + _WRAP + letter + r"[\.\)]\s", text)
    if leading:
        return index(leading.group(1))
    lowered = text.lower()
    quoted = [i for i, choice in enumerate(choices) if choice.strip() and choice.strip().lower() in lowered]
    return str(quoted[0]) if len(quoted) == 1 else None


_NUMBER = r"-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"


def parse_number(response: str) -> str | None:
    """The final number a response gives, normalised ("1,234.50" -> "1234.5"), else None.
    Rules, in order: "#### N" (GSM8K's marker); the last "answer is N" / "answer: N";
    the last number in the text. Currency signs, thousands commas and units are ignored."""
    text = response.strip()
    marker = re.findall(r"####\s*(" + _NUMBER + ")", text)
    if marker:
        return _normalise_number(marker[-1])
    explicit = re.findall(r"(?i:answer)\s*(?:is|:|=|would be)\s*\**\s*(" + _NUMBER + ")", text)
    if explicit:
        return _normalise_number(explicit[-1])
    numbers = re.findall(_NUMBER, text)
    return _normalise_number(numbers[-1]) if numbers else None


def _normalise_number(raw: str) -> str | None:
    cleaned = raw.replace("$", "").replace(",", "").replace(" ", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _same_number(a: str, b: str) -> bool:
    try:
        return Decimal(a) == Decimal(b.replace(",", ""))
    except InvalidOperation:
        return False


# --- the tasks ---------------------------------------------------------------------------------

def _lettered(choices: Sequence[str]) -> str:
    return "\n".join(f"{LETTERS[i]}. {choice}" for i, choice in enumerate(choices))


def register_task(fmt: TaskFormat) -> TaskFormat:
    return TASKS.register(fmt.name, kind=fmt.kind)(fmt)


register_task(TaskFormat(
    "sst2", "label", "Classify the sentiment of the movie review below as negative or positive.", "Sentiment:",
    body=lambda item: f"Review: {item.question}",
    aliases={"negative": ("neg",), "positive": ("pos",)}, answer_noun="sentiment",
))
register_task(TaskFormat(
    "agnews", "label", "Which topic does this news article belong to: World, Sports, Business or Sci/Tech?", "Topic:",
    body=lambda item: f"Article: {item.question}",
    aliases={"World": ("world news", "international"), "Sports": ("sport",), "Business": ("economy", "finance"),
             "Sci/Tech": ("science/technology", "sci-tech", "science and technology", "science", "technology", "tech")},
    answer_noun="topic",
))
register_task(TaskFormat(
    "boolq", "label", "Read the passage, then answer the question with yes or no.", "Answer:",
    body=lambda item: f"Passage: {item.context}\nQuestion: {item.question}",
    aliases={"no": ("false",), "yes": ("true",)},
))
register_task(TaskFormat(
    "mmlu", "choice", "Answer the following multiple-choice question with the letter of the correct option.", "Answer:",
    body=lambda item: f"Question: {item.question}\n{_lettered(item.choices)}",
))
register_task(TaskFormat(
    "piqa", "choice", "Which solution achieves the goal more sensibly? Reply with the letter of the better solution.",
    "Answer:", body=lambda item: f"Goal: {item.question}\n{_lettered(item.choices)}", answer_noun="solution",
))
register_task(TaskFormat(
    "gsm8k", "number", "Solve the maths word problem and give the final answer as a number.", "Answer:",
    body=lambda item: f"Problem: {item.question}",
))
