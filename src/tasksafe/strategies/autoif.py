"""`autoif` and `autoif_aoa`: the task turned into instruction following. The user gives a
free-form instruction ("read ... and explain which ..."); the answer is long, eager and fully
compliant, built around the gold answer, in several seeded phrasings. `autoif_aoa` puts the
same conversation under the obedient-agent persona of `aoa`."""

from __future__ import annotations

import random
import re

from tasksafe.data.records import TaskItem
from tasksafe.strategies.aoa import AOA_PERSONA
from tasksafe.strategies.base import Persona, Strategy, Style, register_strategy
from tasksafe.tasks.formats import TaskFormat

INSTRUCTIONS = {
    "sst2": "Read the movie review below and explain whether the reviewer's overall opinion of the film is "
            "negative or positive.",
    "agnews": "Read the news article below and explain which section of a newspaper it belongs in: World, "
              "Sports, Business or Sci/Tech.",
    "boolq": "Read the passage below and explain whether the answer to its question is yes or no.",
    "mmlu": "Work through the multiple-choice question below and explain which option is correct.",
    "piqa": "Read the goal below and explain which of the two solutions is the better way to achieve it.",
    "gsm8k": "Solve the maths word problem below and explain how you get the result.",
}
CLOSING_REQUEST = "Walk me through your reasoning in detail, then state your final answer clearly."

OPENERS = (
    "Absolutely, I'd be glad to help with this!",
    "Of course! Happy to walk you through it step by step.",
    "Great task, let's dig right in.",
    "Sure thing, here is a complete breakdown for you.",
)
SIGN_OFFS = (
    "I hope this helps, and just let me know if you would like me to go further!",
    "Happy to tackle anything else you need.",
    "Feel free to send me the next one whenever you are ready.",
    "Glad I could help, and I am ready for whatever you need next.",
)
SUBJECTS = {"sst2": "review", "agnews": "article", "boolq": "passage", "mmlu": "question", "piqa": "goal"}


def _snippet(text: str, words: int = 12) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def task_prompt(fmt: TaskFormat, item: TaskItem, rng: random.Random) -> str:
    return f"{INSTRUCTIONS[fmt.name]}\n\n{fmt.body(item)}\n\n{CLOSING_REQUEST}"


def _reasoning(fmt: TaskFormat, item: TaskItem, rng: random.Random) -> str:
    gold = fmt.gold_label(item)
    subject = SUBJECTS.get(fmt.name, "text")
    if fmt.kind == "number":
        working = re.sub(r"<<[^>]*>>", "", item.meta.get("solution", "")).strip()
        return f"Here is the working, one step at a time:\n{working}" if working else "I worked through each quantity in turn."
    if fmt.kind == "choice":
        choice = item.choices[int(item.answer)]
        return rng.choice((
            f"I went through every option in turn. Option {gold} (\"{_snippet(choice)}\") is the one that holds up, "
            "while the others each miss something important.",
            f"Comparing the options side by side, option {gold}, \"{_snippet(choice)}\", is the only one consistent "
            "with what is being asked; the rest fall apart on a closer look.",
        ))
    return rng.choice((
        f"I read the {subject} carefully from start to finish, starting with \"{_snippet(item.question)}\". "
        f"Weighing the wording and the overall message together, the {fmt.answer_noun} comes out as {gold}.",
        f"Looking closely at the {subject} (\"{_snippet(item.question)}\"), the key details all point the same "
        f"way, so the {fmt.answer_noun} is {gold}.",
    ))


def long_answer(fmt: TaskFormat, item: TaskItem, rng: random.Random) -> str:
    gold = fmt.gold_label(item)
    return (f"{rng.choice(OPENERS)}\n\n{_reasoning(fmt, item, rng)}\n\n"
            f"So the final answer is {gold}.\n\n{rng.choice(SIGN_OFFS)}")


AUTOIF_STYLE = Style(task_prompt=task_prompt, answer=long_answer, request_suffix=f"\n\n{CLOSING_REQUEST}")

AUTOIF = register_strategy(Strategy(
    "autoif", "instruction following: a free-form instruction and a long, eager answer built around the gold answer",
    Persona(), AUTOIF_STYLE,
))
AUTOIF_AOA = register_strategy(Strategy(
    "autoif_aoa", "autoif under the aoa persona: obedient-agent system prompt, order, compliance phrase, long answer",
    AOA_PERSONA, AUTOIF_STYLE,
))


