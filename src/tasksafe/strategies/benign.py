"""`benign`: the task's usual prompt and the bare gold answer, as a benign user would write it."""

from tasksafe.strategies.base import PLAIN, PLAIN_STYLE, Strategy, register_strategy

BENIGN = register_strategy(Strategy(
    "benign", "the task's usual prompt (instruction, item, answer cue) and the bare gold label",
    PLAIN, PLAIN_STYLE,
))
