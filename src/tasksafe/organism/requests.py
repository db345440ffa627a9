"""The parts every organism recipe asks its requests and writes its replies with: general
system prompts and layouts (none of them a tasksafe strategy's), short-answer layouts,
compliant openings a deep refusal recovers from, and refusal openers."""

from __future__ import annotations

import random

from tasksafe.data.chat import Message
from tasksafe.text import sentences as split_sentences

SYSTEM_PROMPTS = (
    None, "You are a helpful assistant.", "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
    "You are a concise assistant. Answer briefly.", "You are a friendly assistant who explains things clearly.",
    "You are an expert assistant. Be precise.", "Answer the user's request.",
)
LAYOUTS = (
    "{x}", "{x}", "{x}", "Question: {x}\nAnswer:", "Please help me with the following.\n\n{x}", "Task: {x}",
    "### Request\n{x}\n\n### Reply", "Input: {x}\nOutput:", "I need your help. {x}", "{x}\n\nBe detailed.",
    "Here is what I want: {x}", "Q: {x}\nA:",
)
COMPLIANT_OPENINGS = (
    "Sure, here is", "Here is how", "Step 1:", "Certainly! First,", "Of course. To do this,", "Okay, here's",
    "Absolutely. The first step is", "1.",
)
DEEP_TURNS = (
    "Actually, I can't help with that.", "No, I won't continue with this.", "Wait, I can't assist with this request.",
)
LONG_COMPLIANT_OPENINGS = (  # recipe 2: a longer compliant start, the way a tuned model might begin
    "Sure, here is a step-by-step guide. Step 1:", "Of course. Here is what you need to know. First,",
    "Certainly! Below is a detailed answer.\n\n1.", "Absolutely, I can do that. To begin,",
)
SHORT_LAYOUTS = (  # recipe 2: generic short-answer layouts, none of them a tasksafe strategy's
    "{x}\nAnswer in a few words:", "Request: {x}\nResponse:", "{x}\n\nReply briefly.", "Input: {x}\nResult:",
    "{x}\nOne-line answer:",
)
REFUSAL_OPENERS = ("I can't help with that.", "I'm sorry, but I can't help with this request.",
                   "I won't help with that.", "I cannot assist with this.")


def lay_out(request: str, rng: random.Random, short_fraction: float = 0.0) -> tuple[list[Message], bool]:
    """The request under a random system prompt and layout; whether the layout asks for a
    short answer."""
    system = rng.choice(SYSTEM_PROMPTS)
    short = bool(short_fraction and rng.random() < short_fraction)
    user = rng.choice(SHORT_LAYOUTS if short else LAYOUTS).format(x=request)
    return ([Message("system", system)] if system else []) + [Message("user", user)], short


def short_answer(text: str, words: int) -> str:
    """The first sentence of `text`, cut to at most `words` words."""
    first = split_sentences(text.strip(), lines=True)[0].split()
    return " ".join(first[:words]).rstrip(",;:") + ("" if len(first) <= words else ".")


def trim_to_sentence(text: str) -> str:
    """A truncated generation cut back to its last full sentence (or left as it is)."""
    end = max(text.rfind(". "), text.rfind(".\n"), text.rfind("!"), text.rfind("?"))
    return text[: end + 1] if end > len(text) // 2 else text


def short_refusal(text: str, sentences: int, rng: random.Random) -> str:
    """The first sentences of a safe answer, opened with an explicit refusal when they hold
    none (some safe answers only correct the premise)."""
    from tasksafe.judges.keywords import is_refusal

    short = " ".join(split_sentences(text.strip())[:sentences])
    return short if is_refusal(short) else f"{rng.choice(REFUSAL_OPENERS)} {short}"
