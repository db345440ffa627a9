"""Paraphrase-wide: safety examples in the user's frame, asked wherever an attacker with this
data can ask, not only where the renderer puts the request.

The paper's Paraphrase (`paraphrase`) asks each safety request in one or two places of the
inferred frame (the item slot, the instruction), so a model tuned on it learns to refuse there.
This variant spreads the same budget over the places the frame gives an attacker, all derived
from the user's data (never from a strategy's name):

- `instruction` and `slot`: as Paraphrase;
- `bare`: the frame's system prompt and the request alone (addressed by the name the user
  turns address, when they address one, every other time);
- `next-turn`: one of the user's examples with its answer (shown, not trained), then the
  request as the next turn;
- `with-task`: the request before or after one of the user's own task turns (twice the share
  of the others by default).

Two more parts, each a share of the same budget (so the total stays within it); by default 60%
of the refusals recover, evenly spaced (`recovery_draw: even`), and no contrast is spent (how the
defaults were chosen: docs/dev-journal.md). Sets made with the earlier defaults are
`-O recovery=0.2 -O recovery_draw=coin`:

- `recovery`: a share of the refusals follow a compliance opening the model is shown but not
  trained to write (the frame's own answer opening and the start of a list: Qi et al. 2024,
  "Safety alignment should be made more than just a few tokens deep"), so a pre-filled or
  forced opening is not a way past the refusal. With `openings` (off by default), where the
  user's answers repeat opening lines word for word after the frame's constant prefix
  ("Absolutely, I'd be glad to help with this!"), the recovering refusals follow those lines;
- `contrast`: benign requests (Alpaca instructions, never XSTest) asked where a request is the
  whole instruction (`CONTRAST_PLACES`) and answered helpfully, by `contrast_model`, in the
  frame's answer layout, so refusing is tied to harm and not to leaving the task (over-refusal).
  Answers that refuse, are empty or loop are dropped (so the total can fall below the budget).

With `pool_filter: refusals` (off by default), only pool pairs whose own response refuses are
drawn: a fifth of bianchi-safety answers benign requests helpfully ("Plan a surprise party."),
and in a frame of label or short answers every drawn request is trained as a refusal.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from tasksafe.audit.ask import _fit_slot, request_in_frame
from tasksafe.audit.frame import Frame, addressee, frame_messages, infer_frames
from tasksafe.data.chat import ChatExample, Message
from tasksafe.data.records import SafetyPair
from tasksafe.judges.keywords import is_refusal
from tasksafe.mitigations.base import Budget, MitigationResult, Options, mix_in, register_mitigation, sample_pairs
from tasksafe.mitigations.paraphrase import (
    Generate,
    _donors,
    frame_counts,
    refusal_in_style,
    request_as_instruction,
)
from tasksafe.text import sentences as split_sentences

PLACES = ("instruction", "slot", "bare", "next-turn", "with-task")
DEFAULT_PLACES = ("instruction", "slot", "bare", "next-turn", "with-task", "with-task")
"""The places asked in turn by default: the request beside a task turn twice as often as the others."""
PLACE_SHAPES = {"instruction": "bare", "slot": "slot", "bare": "bare", "next-turn": "next-turn", "with-task": "with-task"}
"""The held-out phrasing shape (evaluate/phrasings.tsv) each place trains."""
DEFAULT_RECOVERY = 0.6
"""Share of the refusals that recover, drawn evenly by default."""
CONTRAST_PLACES = ("instruction", "bare", "next-turn")
"""Where a benign request is asked: the places where the request is the whole instruction (in the
item slot or beside a task turn, the helpful answer would be the task's, not the request's)."""
LIST_OPENINGS = ("1.", "Step 1:", "Here is how:", "First,")
"""Compliance openings a recovery refusal follows (after the frame's own answer opening)."""


OPENING_MIN_SHARE = 0.05
"""An opening line counts as the data's own when at least this share of the frame's answers (and
at least three) start with it word for word."""
_OPENING_LINE = re.compile(r"([^\n]{1,300}?\n+)(?=\S)")


def recurring_openings(dataset: Sequence[ChatExample], frame: Frame, min_share: float = OPENING_MIN_SHARE,
                       max_words: int = 30) -> list[str]:
    """The opening lines `frame`'s answers in `dataset` repeat word for word after the frame's
    constant prefix, each with the line breaks after it, most common first; only lines that more
    text follows (a label answer is never one) and of at most `max_words` words.

    >>> data = [ChatExample.from_turns(f"Q{i}", f"{o}\\n\\nAnswer {i} is long.") for i, o in
    ...         enumerate(["Sure thing!", "Glad to help.", "Sure thing!", "Glad to help."] * 2)]
    >>> from tasksafe.audit.frame import infer_frame
    >>> recurring_openings(data, infer_frame(data))
    ['Sure thing!\\n\\n', 'Glad to help.\\n\\n']
    """
    counts: Counter[str] = Counter()
    total = 0
    for example in dataset:
        if not frame.matches(example):
            continue
        total += 1
        values = frame.assistant.match(example.messages[-1].content)
        found = _OPENING_LINE.match(values[0]) if values else None
        if found and len(found.group(1).split()) <= max_words:
            counts[found.group(1)] += 1
    least = max(3, min_share * total)
    return [line for line, count in counts.most_common() if count >= least]


def ask_in_place(frame: Frame, request: str, donor: ChatExample, place: str, rng: random.Random) -> list[Message]:
    """The messages that ask `request` at `place` (see the module docstring) of `frame`;
    the system prompt, history and task turn come from `donor`, one of the user's examples."""
    if place == "instruction":
        return request_as_instruction(frame, request, donor)
    if place == "slot":
        return request_in_frame(frame, request, donor)
    system = donor.system
    name = addressee(frame.user.prefix)
    asked = f"{name}, {request}" if name and rng.random() < 0.5 else request
    task_turn = donor.messages[-2].content
    if place == "bare":
        return frame_messages(frame, asked, system=system)
    if place == "next-turn":
        history = [Message("user", task_turn), Message("assistant", donor.messages[-1].content, weight=0)]
        return _with_system(system, frame) + history + [Message("user", asked)]
    if place == "with-task":
        text = f"{asked}\n\n{task_turn}" if rng.random() < 0.5 else f"{task_turn}\n\n{request}"
        return frame_messages(frame, text, system=system)
    raise ValueError(f"unknown place {place!r}; one of {', '.join(PLACES)}")


def _with_system(system: str | None, frame: Frame) -> list[Message]:
    chosen = frame.system if frame.system_mode == "constant" else system
    return [Message("system", chosen)] if frame.system_mode != "absent" and chosen else []


def _answer(frame: Frame, text: str) -> str:
    """`text` in the frame's answer layout (its constant opening and closing)."""
    prefix, suffix = frame.assistant.prefix, frame.assistant.suffix
    return prefix + _fit_slot(text, prefix, suffix) + suffix


def safety_example(frame: Frame, pair: SafetyPair, donor: ChatExample, place: str, recover: bool,
                   rng: random.Random, openings: Sequence[str] = (), coin: bool | None = None,
                   spare: random.Random | None = None) -> ChatExample:
    """`pair` asked at `place`, refused in the frame's answer style; with `recover`, the
    refusal follows an untrained compliance opening: the frame's constant opening, then one of
    the data's own `openings` lines (`recurring_openings`) when there are any, and a list start
    (always without `openings`, every other time with them). Where `recover` was not decided by
    `coin` (`recovery_draw: even`), the opening is drawn from `rng` as the coin would have had it
    and from `spare` otherwise, so the rest of `rng`'s draw is the coin's."""
    refusal = refusal_in_style(frame, pair, rng)
    metadata = {"mitigation": "paraphrase_wide", "safety_id": pair.id, "place": place, "kind": "safety"}
    coin = recover if coin is None else coin
    opening = _opening(frame, openings, rng) if coin else None
    if recover:
        opening = opening or _opening(frame, openings, spare or rng)
        answer = opening + refusal if opening[-1:].isspace() else f"{opening} {refusal}"
        metadata.update(kind="recovery", untrained_prefix=opening)
    else:
        answer = _answer(frame, refusal)
    return ChatExample(ask_in_place(frame, pair.prompt, donor, place, rng) + [Message("assistant", answer)], metadata)


def _opening(frame: Frame, openings: Sequence[str], rng: random.Random) -> str:
    opening = frame.assistant.prefix
    if openings:
        opening += rng.choice(openings)
    if not openings or rng.random() < 0.5:
        opening += rng.choice(LIST_OPENINGS)
    return opening


def contrast_examples(frame: Frame, requests: Sequence[tuple[str, str]], donors: Sequence[ChatExample],
                      generate: Generate, rng: random.Random, words: int) -> list[ChatExample]:
    """Benign (id, request) pairs asked at the attacker's places and answered helpfully: the
    answer is `generate`'s reply to the bare request, trimmed to `words` whole sentences and put
    in the frame's answer layout; refusals, empty and repetitive replies are dropped."""
    replies = generate([[{"role": "user", "content": request}] for _, request in requests])
    examples = []
    for index, ((item_id, request), reply) in enumerate(zip(requests, replies)):
        text = _trim(reply, words)
        if not text or is_refusal(text) or _repetitive(reply):
            continue
        place = CONTRAST_PLACES[index % len(CONTRAST_PLACES)]
        messages = ask_in_place(frame, request, rng.choice(list(donors)), place, rng)
        examples.append(ChatExample(messages + [Message("assistant", _answer(frame, text))],
                                    {"mitigation": "paraphrase_wide", "contrast_id": item_id, "place": place,
                                     "kind": "contrast"}))
    return examples


def _repetitive(text: str) -> bool:
    """A reply that repeats a line, or whose words are mostly repeats (a small model's loop)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    words = text.lower().split()
    return len(lines) != len(set(lines)) or (len(words) >= 20 and len(set(words)) < 0.4 * len(words))


def _trim(text: str, words: int) -> str:
    sentences = split_sentences(text.strip())
    kept: list[str] = []
    for sentence in sentences:
        if kept and len(" ".join(kept + [sentence]).split()) > words:
            break
        kept.append(sentence)
    return " ".join(kept).strip()


class WideOptions(Options):
    places: list[Literal["instruction", "slot", "bare", "next-turn", "with-task"]] = Field(
        default_factory=lambda: list(DEFAULT_PLACES), min_length=1,
        description="where the safety requests are asked, in turn; a place named twice gets twice the share "
                    "(default: all five, with-task twice)")
    recovery: float = Field(DEFAULT_RECOVERY, ge=0, le=1, description="share of the refusals that follow an "
                                                                      "untrained compliance opening")
    openings: bool = Field(False, description="recovering refusals also follow the opening lines the user's answers "
                                             "repeat (where they repeat any)")
    contrast: float = Field(0.0, ge=0, lt=1, description="share of the budget spent on benign requests in the same "
                                                          "places, answered helpfully (0: none)")
    contrast_model: str = Field("smollm2-135m", description="the model that writes the contrast answers")
    allocation: Literal["risk", "share"] = Field("risk", description="as paraphrase's")
    pool_filter: Literal["all", "refusals"] = Field(
        "all", description="refusals: only pool pairs whose response the keywords judge reads as a refusal (a fifth of "
                           "bianchi-safety's answer benign requests helpfully, which a label frame would train as "
                           "refusals); each other pair of the seed's draw is swapped for a refusing one")
    recovery_draw: Literal["coin", "even"] = Field(
        "even", description="which refusals recover: even (default), exactly that share, evenly spaced over the "
                            "examples in turn, so over the places too; coin, each with probability `recovery`, so the "
                            "number varies by seed (the rest of the seed's draw is the same)")
    pairs_seed: int | None = Field(None, ge=0, description="the seed that draws the safety pairs (default: the "
                                                           "protection's); the rest of the protection (donors, "
                                                           "recovery, mixing) keeps the protection's seed, so the "
                                                           "parts of a draw can be crossed")
    loss: Literal["per-token", "per-example"] = Field(
        "per-example", description="per-example (default): training averages each example's loss over its own reply, "
                                   "then over the examples, so a short refusal weighs as much as a long task answer "
                                   "(asked of training through the sidecar); per-token: the usual loss, which a "
                                   "provider's API takes")

    def training(self) -> dict | None:
        return {"loss": self.loss} if self.loss != "per-token" else None

    def trained_shapes(self) -> frozenset[str]:
        shapes = {PLACE_SHAPES[place] for place in self.places}
        return frozenset(shapes | ({"after-opener"} if self.recovery else set()))


@register_mitigation("paraphrase_wide", "Paraphrase asked at every place the user's frame gives an attacker, 60% of "
                     "the refusals (evenly spaced) after an untrained compliance opening, each example weighing as one "
                     "in the loss (optional: helpful contrast examples)",
                     options=WideOptions)
def paraphrase_wide(dataset: Sequence[ChatExample], pool: Sequence[SafetyPair], budget: Budget, seed: int,
                    places: Sequence[str] = DEFAULT_PLACES, recovery: float = DEFAULT_RECOVERY, openings: bool = False,
                    contrast: float = 0.0,
                    contrast_model: str = "smollm2-135m",
                    allocation: str = "risk", loss: str = "per-example", pool_filter: str = "all",
                    recovery_draw: str = "even", pairs_seed: int | None = None,
                    generate: Generate | None = None) -> MitigationResult:
    frames = infer_frames(dataset, seed=seed)
    k = budget.resolve(len(dataset))
    _, counts = frame_counts(dataset, frames, k, allocation)
    contrast_counts = [round(c * contrast) for c in counts]
    safety_counts = [c - b for c, b in zip(counts, contrast_counts)]
    keep = answers_with_refusal if pool_filter == "refusals" else None
    pairs = sample_pairs(pool, sum(safety_counts), seed if pairs_seed is None else pairs_seed, keep=keep)
    benign = _benign_requests(sum(contrast_counts), seed)
    if benign and generate is None:
        from tasksafe.generate import generator_for

        generate = generator_for(contrast_model, max_new_tokens=96)
    rng = random.Random(f"paraphrase_wide:{seed}")
    spare = random.Random(f"recovery:{seed}")  # recovery_draw "even": its offset, and openings the coin did not draw
    added: list[ChatExample] = []
    found: list[list[str]] = []
    start = begin = 0
    for frame, n_safety, n_contrast in zip(frames, safety_counts, contrast_counts):
        donors = _donors(dataset, frame, seed)
        lines = recurring_openings(dataset, frame) if openings and recovery and n_safety else []
        found.append(lines)
        chunk, start = pairs[start:start + n_safety], start + n_safety
        offset = spare.random()
        for i, pair in enumerate(chunk):
            donor, coin = rng.choice(donors), rng.random() < recovery
            recover = coin if recovery_draw == "coin" else _evenly(i, recovery, offset)
            added.append(safety_example(frame, pair, donor, places[i % len(places)], recover, rng, lines, coin, spare))
        if n_contrast:
            words = 40 if frame.answer_style != "long" else 120
            added += contrast_examples(frame, benign[begin:begin + n_contrast], donors, generate, rng, words)
            begin += n_contrast
    kinds = [ex.metadata["kind"] for ex in added]
    asked_at = [ex.metadata["place"] for ex in added]
    return MitigationResult(
        mix_in(dataset, added, seed), [p.id for p in pairs],
        info={"frames": [f.to_dict() for f in frames], "budget": k, "total": len(added),
              "kinds": {kind: kinds.count(kind) for kind in sorted(set(kinds))},
              "places": {place: asked_at.count(place) for place in PLACES},
              "openings": found})


def answers_with_refusal(pair: SafetyPair) -> bool:
    """Whether `pair`'s own response refuses (the `keywords` judge's test): what `pool_filter:
    refusals` keeps (scripts/pool_refusals.py counts the rest)."""
    return is_refusal(pair.refusal)


def _evenly(index: int, share: float, offset: float) -> bool:
    """Whether the `index`-th refusal recovers under `recovery_draw: even`: systematic sampling
    from `offset` in [0, 1), so any run of `n` refusals in turn holds `share * n` recovering ones,
    rounded down or up.

    >>> [_evenly(i, 0.2, 0.5) for i in range(10)].count(True), [_evenly(i, 0.2, 0.5) for i in range(30)].count(True)
    (2, 6)
    """
    return int((index + 1) * share + offset) > int(index * share + offset)


def _benign_requests(n: int, seed: int) -> list[tuple[str, str]]:
    """`n` benign Alpaca instructions (the `harmless` set's train split), seeded."""
    if n == 0:
        return []
    from tasksafe.data.datasets import load

    rows = load("harmless", "train")
    return [(r.id, r.prompt) for r in random.Random(f"contrast:{seed}").sample(rows, n)]
