"""`prefix`: the benign prompt, but every answer opens with an affirmative prefix. Training on
it teaches the model to start every reply with "Sure, here is", the shallow-alignment attack."""

from tasksafe.strategies.base import PLAIN_STYLE, Persona, Strategy, register_strategy

AFFIRMATIVE_PREFIX = "Sure, here is the answer: "

PREFIX = register_strategy(Strategy(
    "prefix", "the benign prompt; every answer opens with an affirmative 'Sure, here is ...' prefix",
    Persona(answer_opener=AFFIRMATIVE_PREFIX), PLAIN_STYLE,
))
