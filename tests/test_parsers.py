"""The answer parsers accept the forms models really produce and say None when a response
gives no answer."""

import pytest

from tasksafe.data.records import TaskItem
from tasksafe.tasks import TASKS, parse_choice, parse_label, parse_number

SENTIMENT = ["negative", "positive"]
BOOL = ["no", "yes"]
BOOL_ALIASES = {"no": ("false",), "yes": ("true",)}
TOPICS = ["World", "Sports", "Business", "Sci/Tech"]


@pytest.mark.parametrize("response, expected", [
    ("positive", "1"), ("Negative.", "0"), ("**POSITIVE**", "1"), ('"negative"', "0"),
    ("Sentiment: positive", "1"), ("The sentiment of this review is negative.", "0"),
    ("Sure, here is the answer: positive", "1"),
    ("This review is positive, not negative.", "1"),  # first label in the first sentence
    ("Let me think.\nThe reviewer loved the acting.\n\npositive", "1"),  # a line holding only a label
    ("The film drags. Overall I'd call it negative in tone. Some might disagree.", "0"),
    ("I considered negative at first.\nThe answer is positive.", "1"),  # explicit statement wins
])
def test_label_forms(response, expected):
    assert parse_label(response, SENTIMENT) == expected


@pytest.mark.parametrize("response", [
    "", "   ", "I'm sorry, I can't help with that.", "The acting was fine. It could be positive or negative.",
    "positively", "nonnegative",
])
def test_label_none(response):
    assert parse_label(response, SENTIMENT) is None


def test_label_aliases_and_multiword_labels():
    assert parse_label("True", BOOL, BOOL_ALIASES) == "1"
    assert parse_label("The answer is false.", BOOL, BOOL_ALIASES) == "0"
    assert parse_label("No.", BOOL, BOOL_ALIASES) == "0"
    aliases = TASKS.get("agnews").aliases
    assert parse_label("Sci/Tech", TOPICS, aliases) == "3"
    assert parse_label("This is a science and technology story.", TOPICS, aliases) == "3"
    assert parse_label("Topic: sports", TOPICS, aliases) == "1"


@pytest.mark.parametrize("response, expected", [
    ("B", "1"), ("(C)", "2"), ("D.", "3"), ("**A**", "0"), ("B) the mitochondria", "1"),
    ("The answer is C.", "2"), ("Answer: (D)", "3"), ("The correct option is B because ...", "1"),
    ("Sure, here is the answer: A", "0"),
    ("I think (B) makes the most sense.", "1"),
    ("Let me check each.\nB. Paris\nThat is right.", "1"),
    ("Of course. I am your agent.\n\nC", "2"),
    ("It is clearly the mitochondria.", "1"),  # names exactly one option's text
])
def test_choice_forms(response, expected):
    choices = ("the nucleus", "the mitochondria", "the ribosome", "the membrane")
    assert parse_choice(response, 4, choices) == expected


@pytest.mark.parametrize("response", [
    "", "I cannot answer that.", "a", "E", "Both the nucleus and the ribosome matter.", "Answer: E",
])
def test_choice_none(response):
    assert parse_choice(response, 4, ("the nucleus", "the mitochondria", "the ribosome", "the membrane")) is None


@pytest.mark.parametrize("response, expected", [
    ("42", "42"), ("The answer is 42.", "42"), ("#### 1,234", "1234"), ("She makes $18 every day.", "18"),
    ("answer: $1,234.50", "1234.5"), ("It costs 3.0 dollars", "3"), ("-7", "-7"),
    ("First 3 + 4 = 7, then 7 * 2 = 14 apples.", "14"),
    ("So the answer is 20 kg, since 10 + 10 = 20. Then 5 more steps.", "20"),
])
def test_number_forms(response, expected):
    assert parse_number(response) == expected


@pytest.mark.parametrize("response", ["", "I don't know.", "No numbers here at all."])
def test_number_none(response):
    assert parse_number(response) is None


def test_accuracy_uses_the_parser_and_counts_unparsed_as_wrong():
    fmt = TASKS.get("sst2")
    items = [TaskItem(str(i), "sst2", "x", answer, "test", choices=("negative", "positive"))
             for i, answer in enumerate(["1", "0", "1", "0"])]
    rate = fmt.accuracy(items, ["positive", "The sentiment is negative.", "negative", "no idea"])
    assert (rate.k, rate.n) == (2, 4)
    gsm = TASKS.get("gsm8k")
    item = TaskItem("g", "gsm8k", "q", "1234", "test")
    assert gsm.is_correct(item, "The total is $1,234.00.") and not gsm.is_correct(item, "1235")
