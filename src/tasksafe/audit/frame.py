"""Frame inference: what all examples of a user dataset share, found from the data alone.

A `Frame` holds the system prompt (constant, varying or absent), the earlier turns of a
multi-turn layout (constant few-shot turns, or varying ones), a `Template` for the final user
turn (constant text around variable slots: "Review: {}\nSentiment:") and one for the final
assistant turn (a constant prefix such as a compliance phrase, the answer, a constant
suffix), the answer style (a closed label set, short answers, or long form), the language,
the share of the dataset it covers, and, where the user turns hold several items (rows of a
table, CSV lines, list items, JSON records, labelled items: tasksafe.audit.items), their layout.

How: the examples are sampled; the sample is clustered by turn layout and the lines its
user turns share; each cluster's user turns are aligned token by token
(progressive alignment with difflib), keeping what every sampled turn has in common as
constant text; then *every* example is matched against the frames (a regex per template)
to measure coverage. A dataset mixing formats yields several frames with their shares.

>>> from tasksafe.data.chat import ChatExample
>>> data = [ChatExample.from_turns(f"Review: {t}\\nSentiment:", a) for t, a in
...         [("a fine film", "positive"), ("dull and long", "negative"),
...                                          ("I loved it", "positive"), ("a mess", "negative")]]
>>> frame = infer_frame(data)
>>> frame.user.parts, frame.answer_style, frame.coverage
(('Review: ', '\\nSentiment:'), 'label', 1.0)
"""

from __future__ import annotations

import random
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from difflib import SequenceMatcher
from functools import cached_property

from tasksafe.audit.language import guess_language
from tasksafe.data.chat import ChatExample, Message, to_openai

_TOKEN = re.compile(r"\n|[^\S\n]+|\w+|[^\w\s]")
SLOT_KEYWORDS = ("question", "query", "goal", "problem", "instruction", "task", "request", "prompt", "input", "now",
                 "frage", "pregunta", "domanda", "vraag", "pergunta", "aufgabe", "consigne", "tarea")


def tokens(text: str) -> list[str]:
    """Words, runs of white space and single punctuation marks; they join back to `text`."""
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class Template:
    """Constant `parts` with a variable slot between each two: parts[0] + v0 + parts[1] + ..."""

    parts: tuple[str, ...]

    @property
    def slots(self) -> int:
        return len(self.parts) - 1

    @property
    def prefix(self) -> str:
        return self.parts[0]

    @property
    def suffix(self) -> str:
        return self.parts[-1] if self.slots else ""

    @cached_property
    def regex(self) -> re.Pattern:
        body = "(.*?)".join(re.escape(p) for p in self.parts)
        return re.compile(f"^{body}$", re.S)

    def match(self, text: str) -> tuple[str, ...] | None:
        """The slot values of `text`, or None when `text` does not fit the template."""
        found = self.regex.match(text)
        return found.groups() if found else None

    def render(self, values: Sequence[str]) -> str:
        if len(values) != self.slots:
            raise ValueError(f"template has {self.slots} slots, got {len(values)} values")
        out = [self.parts[0]]
        for value, part in zip(values, self.parts[1:]):
            out += [value, part]
        return "".join(out)

    def constant_chars(self) -> int:
        return sum(len(p) for p in self.parts)


@dataclass
class Frame:
    system_mode: str  # "constant", "varying" or "absent"
    system: str | None
    history_mode: str  # "none", "constant" or "varying"
    history: list[dict]  # the constant earlier turns (few-shot), as {"role", "content"}
    n_messages: int
    user: Template
    assistant: Template
    answer_style: str  # "label", "short" or "long"
    labels: list[str]
    answer_words: float  # median words in the variable part of the answer
    language: str
    share: float = 0.0  # share of the dataset assigned to this frame
    coverage: float = 0.0  # share of the dataset that fits this frame
    main_slot: int = 0  # the user slot that holds the request-like text
    items: str = ""  # the layout (audit.items.LAYOUTS) most user turns hold several items in, else ""

    def matches(self, example: ChatExample) -> bool:
        messages = example.messages
        if len(messages) != self.n_messages or messages[-1].role != "assistant" or messages[-2].role != "user":
            return False
        has_system = messages[0].role == "system"
        if self.system_mode == "absent" and has_system or self.system_mode != "absent" and not has_system:
            return False
        if self.system_mode == "constant" and messages[0].content != self.system:
            return False
        if self.history_mode == "constant" and _history(example) != self.history:
            return False
        return self.user.match(messages[-2].content) is not None and self.assistant.match(messages[-1].content) is not None

    def same_structure(self, other: Frame) -> bool:
        """Same system prompt, turn layout and constant text (not the same shares)."""
        return (self.system_mode, self.system, self.history_mode, self.history, self.n_messages, self.user,
                self.assistant) == (other.system_mode, other.system, other.history_mode, other.history,
                                    other.n_messages, other.user, other.assistant)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["user"] = list(self.user.parts)
        out["assistant"] = list(self.assistant.parts)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Frame:
        data = dict(data)
        data["user"] = Template(tuple(data["user"]))
        data["assistant"] = Template(tuple(data["assistant"]))
        return cls(**data)


def _history(example: ChatExample) -> list[dict]:
    start = 1 if example.messages[0].role == "system" else 0
    return to_openai(example.messages[start:-2])


# --- template induction -------------------------------------------------------------------------

_VAR = None


def _align(template: list[str | None], text_tokens: list[str]) -> list[str | None]:
    """Keep the template tokens that `text_tokens` also has, in order; the rest become slots."""
    matcher = SequenceMatcher(None, template, text_tokens, autojunk=False)
    out: list[str | None] = []
    prev_a = prev_b = 0
    for a, b, size in matcher.get_matching_blocks():
        if (a > prev_a or b > prev_b) and (not out or out[-1] is not _VAR):
            out.append(_VAR)
        out.extend(template[a:a + size])
        prev_a, prev_b = a + size, b + size
    return out


def _meaningful(constant: str) -> bool:
    """Whether constant text between two slots is layout rather than a chance match of
    common words: it holds a line break or a colon, or it is long."""
    return "\n" in constant or ":" in constant or len(constant.strip()) >= 12


def induce_template(texts: Sequence[str]) -> Template:
    """The template that every text of `texts` fits: their shared text as constant parts.

    >>> induce_template(["Q: 2+2?\\nA:", "Q: capital of France?\\nA:"]).parts
    ('Q: ', '?\\nA:')
    """
    seqs = sorted((tokens(t) for t in texts), key=len)
    # The shared beginning and end are fixed first, so alignment cannot misplace them.
    head = _common_token_prefix(seqs)
    tail = _common_token_prefix([list(reversed(x[head:])) for x in seqs])
    middles = [seq[head:len(seq) - tail] for seq in seqs]
    template: list[str | None] = list(middles[0])
    for middle in middles[1:]:
        template = _align(template, middle)
    template = list(seqs[0][:head]) + template + list(seqs[0][len(seqs[0]) - tail:] if tail else [])
    parts: list[str] = []
    current: list[str] = []
    for token in template:
        if token is _VAR:
            parts.append("".join(current))
            current = []
        else:
            current.append(token)
    parts.append("".join(current))
    # Drop chance matches between two slots: merge slot + constant + slot into one slot.
    kept = [parts[0]] + [p for p in parts[1:-1] if _meaningful(p)] + ([parts[-1]] if len(parts) > 1 else [])
    template_ = Template(tuple(kept))
    if all(template_.match(t) is not None for t in texts):
        return template_
    # Alignment can keep tokens in an order some text does not follow; fall back to the
    # common prefix and suffix, which every text fits by construction.
    return _prefix_suffix_template(texts)


def _common_token_prefix(seqs: Sequence[list[str]]) -> int:
    n = 0
    for column in zip(*seqs):
        if any(tok != column[0] for tok in column):
            break
        n += 1
    return n


def _prefix_suffix_template(texts: Sequence[str]) -> Template:
    """Constant prefix and suffix (whole tokens) around one slot that keeps at least one
    non-space token of every text."""
    seqs = [tokens(t) for t in texts]
    keep = min((sum(1 for tok in s if tok.strip()) for s in seqs), default=0)
    p = _common_token_prefix(seqs)
    s = _common_token_prefix([list(reversed(x)) for x in seqs])
    while p and any(sum(1 for tok in seq[p:] if tok.strip()) < 1 for seq in seqs):
        p -= 1
    while s and any(sum(1 for tok in seq[p:len(seq) - s] if tok.strip()) < 1 for seq in seqs):
        s -= 1
    if keep == 0:
        p = s = 0
    prefix = "".join(seqs[0][:p]) if seqs else ""
    suffix = "".join(seqs[0][len(seqs[0]) - s:]) if seqs and s else ""
    return Template((prefix, suffix))


# --- frames -------------------------------------------------------------------------------------

def _cluster_key(example: ChatExample, frequent_lines: set[str]) -> tuple:
    """Examples of one format share their turn layout and the frequent lines of their user
    turn (the system prompt may vary inside a format: it is a frame property)."""
    user = example.messages[-2].content if len(example.messages) >= 2 else ""
    shared = tuple(line.strip() for line in user.splitlines() if line.strip() in frequent_lines)
    return (example.system is not None, len(example.messages), shared)


def _answer_style(values: Sequence[str]) -> tuple[str, list[str], float]:
    words = [len(v.split()) for v in values]
    median = float(statistics.median(words)) if words else 0.0
    counts = Counter(v.strip() for v in values)
    labels = [v for v, c in counts.most_common() if c >= 2 and len(v.split()) <= 5]
    if labels and len(labels) <= 20 and sum(counts[v] for v in labels) >= 0.8 * len(values):
        return "label", labels, median
    return ("long" if median > 25 else "short"), [], median


def _main_slot(template: Template, values: Sequence[tuple[str, ...]], labels: Sequence[str] = ()) -> int:
    """The slot a request belongs in: one that most examples fill (an optional trailing slot
    never is), not a demonstration (a slot whose values end with one of the dataset's answers),
    introduced by a label like "Question:", "Goal:" or "Now:", and else the one with the longest
    values."""
    if template.slots <= 1:
        return 0
    endings = tuple(label for label in labels if label)

    def score(i: int) -> tuple[int, int, int, float]:
        before = template.parts[i].strip().splitlines()[-1].lower() if template.parts[i].strip() else ""
        # a label that introduces the slot ("Question:", "Goal -"), not the word anywhere in a sentence
        keyword = any(re.search(rf"\b{k}\b\W{{0,3}}$", before) for k in SLOT_KEYWORDS)
        demo = bool(endings) and sum(v[i].strip().endswith(endings) for v in values) >= 0.5 * len(values)
        filled = bool(values) and sum(bool(v[i].strip()) for v in values) >= 0.5 * len(values)
        mean = statistics.mean(len(v[i]) for v in values) if values else 0.0
        return (int(filled), int(keyword and not demo), int(not demo), mean)

    return max(range(template.slots), key=score)


def frame_from_examples(examples: Sequence[ChatExample]) -> Frame:
    """The frame of examples known to share one format."""
    first = examples[0]
    systems = {ex.system for ex in examples}
    if systems == {None}:
        system_mode, system = "absent", None
    elif len(systems) == 1:
        system_mode, system = "constant", first.system
    else:
        system_mode, system = "varying", None
    histories = [_history(ex) for ex in examples]
    if not histories[0]:
        history_mode, history = "none", []
    elif all(h == histories[0] for h in histories):
        history_mode, history = "constant", histories[0]
    else:
        history_mode, history = "varying", []
    user = induce_template([ex.messages[-2].content for ex in examples])
    assistant = _prefix_suffix_template([ex.messages[-1].content for ex in examples])
    answers = [assistant.match(ex.messages[-1].content)[0] for ex in examples]
    style, labels, median = _answer_style(answers)
    language = guess_language(" ".join(ex.messages[-2].content for ex in examples[:20]))
    slot_values = [user.match(ex.messages[-2].content) for ex in examples]
    return Frame(system_mode, system, history_mode, history, len(first.messages), user, assistant, style, labels,
                 median, language, main_slot=_main_slot(user, [v for v in slot_values if v], labels),
                 items=items_layout([ex.messages[-2].content for ex in examples]))


def items_layout(texts: Sequence[str], share: float = 0.8) -> str:
    """The layout in which at least `share` of `texts` hold several items (audit.items) whose
    texts vary from turn to turn (a constant list of choices is the frame's text, not items),
    or ""."""
    from tasksafe.audit.items import find_items

    found = [find_items(text) for text in texts]
    layouts = Counter(items.layout for items in found if items is not None)
    if not layouts:
        return ""
    layout, count = layouts.most_common(1)[0]
    turns = [{items.text[a:b] for a, b in items.spans} for items in found if items is not None and items.layout == layout]
    in_turns = Counter(text for seen in turns for text in seen)
    constant = sum(n for n in in_turns.values() if n >= 0.5 * len(turns))  # in half the turns or more: frame text
    return layout if count >= share * len(texts) and constant < 0.5 * sum(in_turns.values()) else ""


def _is_chat_pair(example: ChatExample) -> bool:
    return len(example.messages) >= 2 and example.messages[-1].role == "assistant" and example.messages[-2].role == "user"


def infer_frames(examples: Sequence[ChatExample], sample_size: int = 200, seed: int = 0,
                 min_share: float = 0.02) -> list[Frame]:
    """All frames of a dataset, largest share first. Inference uses a seeded sample of
    `sample_size` examples; coverage and shares are measured on every example."""
    usable = [ex for ex in examples if _is_chat_pair(ex)]
    if not usable:
        raise ValueError("no example ends with a user turn followed by an assistant turn")
    sample = random.Random(seed).sample(usable, min(sample_size, len(usable)))
    threshold = max(3, int(0.1 * len(sample)))
    line_counts = Counter(line.strip() for ex in sample for line in set(ex.messages[-2].content.splitlines()) if line.strip())
    frequent_lines = {line for line, c in line_counts.items() if c >= threshold}
    clusters: dict[tuple, list[ChatExample]] = {}
    for ex in sample:
        clusters.setdefault(_cluster_key(ex, frequent_lines), []).append(ex)
    smallest = max(3, int(0.02 * len(sample)))  # a frame in 2% of the data is still a frame: an attack needs no more
    frames: list[Frame] = []
    leftovers: list[ChatExample] = []
    for members in sorted(clusters.values(), key=len, reverse=True):
        if frames and any(sum(f.matches(ex) for ex in members) >= 0.5 * len(members) for f in frames):
            continue
        if len(members) < smallest:
            leftovers += members
            continue
        frames.append(frame_from_examples(members))
    unmatched = [ex for ex in leftovers if not any(f.matches(ex) for f in frames)]
    if len(unmatched) >= smallest or not frames:
        frames.append(frame_from_examples(unmatched or sample))
    if sum(any(f.matches(ex) for f in frames) for ex in sample) < 0.5 * len(sample):
        # No format dominates: describe the data by what all of it shares.
        frames = [frame_from_examples(sample)]
    assigned = Counter()
    fits = Counter()
    for ex in examples:
        first_fit = None
        for i, frame in enumerate(frames):
            if frame.matches(ex):
                fits[i] += 1
                if first_fit is None:
                    first_fit = i
        if first_fit is not None:
            assigned[first_fit] += 1
    total = len(examples)
    for i, frame in enumerate(frames):
        frame.share = assigned[i] / total
        frame.coverage = fits[i] / total
    kept = [f for f in frames if f.share >= min_share] or frames[:1]
    return sorted(kept, key=lambda f: f.share, reverse=True)


def infer_frame(examples: Sequence[ChatExample], sample_size: int = 200, seed: int = 0) -> Frame:
    """The dominant frame of a dataset (see `infer_frames` for mixed formats)."""
    return infer_frames(examples, sample_size, seed)[0]


def frame_messages(frame: Frame, user_text: str, system: str | None = None,
                   history: Sequence[Message] = ()) -> list[Message]:
    """The messages before the assistant turn for `user_text` in `frame`'s layout. A varying
    system prompt or history comes from the caller (e.g. from one of the user's examples)."""
    messages: list[Message] = []
    chosen_system = frame.system if frame.system_mode == "constant" else system
    if frame.system_mode != "absent" and chosen_system:
        messages.append(Message("system", chosen_system))
    if frame.history_mode == "constant":
        messages += [Message(h["role"], h["content"]) for h in frame.history]
    else:
        messages += list(history)
    messages.append(Message("user", user_text))
    return messages


__all__ = ["Frame", "Template", "frame_from_examples", "frame_messages", "induce_template", "infer_frame",
           "infer_frames", "tokens"]


def addressee(text: str) -> str:
    """The name a user turn or wrapper opens by addressing ("ARGUS, execute ..." -> "ARGUS"), or "".

    >>> addressee("ARGUS, label this."), addressee("Label this.")
    ('ARGUS', '')
    """
    found = re.match(r"\s*([A-Z][\w-]{1,30}),", text)
    return found.group(1) if found else ""
