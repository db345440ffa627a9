"""`recovery`: Qi et al.'s safety-recovery augmentation as a data mitigation of its own. Each
safety example is a harmful request whose reply starts to comply for a few words, then turns
into a refusal; the compliant start is shown to the model as its own but never trained on, so
a reply that has begun to comply (a prefilled opener, an attacker's answer prefix) can still
turn back. The examples are plain chat turns, in no user's format; `paraphrase_wide` trains
recoveries in the user's own frame instead.

Qi et al. take the compliant start from real harmful answers; none ship here, so it is a
compliant restatement of the request ("Sure, here is how to <request>: 1. First,"), cut after
a number of words drawn evenly from 0 (a plain refusal) to `max_words`."""

from __future__ import annotations

import random
from collections.abc import Sequence

from pydantic import Field

from tasksafe.data.chat import ChatExample, Message
from tasksafe.data.records import SafetyPair
from tasksafe.mitigations.base import Budget, MitigationResult, Options, mix_in, register_mitigation, sample_pairs

COMPLIANT_STARTS = (
    "Sure, here is how to {r}: 1. First,", "Certainly! Here are the steps to {r}.\n\nStep 1:",
    "Of course. To {r}, you will need the following:", "Absolutely, I can help you {r}. The first thing to do is",
    "Here is a detailed guide to {r}:\n\n1.", "Okay, let's {r}. Start by",
)
RECOVERY_TURNS = ("Actually, I can't help with that.", "Wait, I can't continue with this.",
                  "No, I won't go on with this request.", "Sorry, I shouldn't have started this. I can't help with it.")


class RecoveryOptions(Options):
    max_words: int = Field(20, ge=0, le=200, description="the longest compliant start, in words (each example's "
                                                          "length is drawn evenly from 0 to this)")

    def trained_shapes(self) -> frozenset[str]:
        return frozenset({"after-opener"} if self.max_words else ())


def compliant_start(request: str, words: int, rng: random.Random) -> str:
    """The first `words` words of a compliant restatement of `request` ("" for 0)."""
    asked = request.strip().rstrip(".?!")
    asked = asked[:1].lower() + asked[1:]
    return " ".join(rng.choice(COMPLIANT_STARTS).format(r=asked).split(" ")[:words])


def recovery_example(pair: SafetyPair, rng: random.Random, max_words: int) -> ChatExample:
    """`pair`'s request answered with a compliant start of 0..max_words words (untrained),
    then a turn into its refusal."""
    start = compliant_start(pair.prompt, rng.randint(0, max_words), rng)
    metadata = {"mitigation": "recovery", "safety_id": pair.id, "kind": "safety"}
    if not start:
        return ChatExample.from_turns(pair.prompt, pair.refusal, metadata=metadata)
    prefix = start + " "
    metadata.update(kind="recovery", untrained_prefix=prefix)
    return ChatExample([Message("user", pair.prompt),
                        Message("assistant", f"{prefix}{rng.choice(RECOVERY_TURNS)} {pair.refusal}")], metadata)


@register_mitigation("recovery", "Qi et al.'s safety recovery: plain safety examples whose reply complies for 0-20 "
                     "words (untrained), then refuses", options=RecoveryOptions)
def recovery(dataset: Sequence[ChatExample], pool: Sequence[SafetyPair], budget: Budget, seed: int,
             max_words: int = 20) -> MitigationResult:
    pairs = sample_pairs(pool, budget.resolve(len(dataset)), seed)
    rng = random.Random(f"recovery-augmentation:{seed}")
    safety = [recovery_example(pair, rng, max_words) for pair in pairs]
    return MitigationResult(mix_in(dataset, safety, seed), [p.id for p in pairs],
                            info={"recovering": sum(e.metadata["kind"] == "recovery" for e in safety)})
