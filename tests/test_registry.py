import pytest

from tasksafe.errors import UnknownNameError
from tasksafe.registry import Registry


def test_register_lookup_and_info():
    things = Registry("thing")

    @things.register("a", colour="red")
    def make_a():
        return "A"

    assert things.get("a")() == "A"
    assert things.info("a") == {"colour": "red"}
    assert things.names() == ["a"] and "a" in things and len(things) == 1


def test_unknown_name_lists_the_names_that_exist():
    things = Registry("thing")
    things.register("alpha")(object)
    things.register("beta")(object)
    with pytest.raises(UnknownNameError, match=r"unknown thing 'gamma'; choose one of: alpha, beta"):
        things.get("gamma")


def test_registering_a_name_twice_is_a_bug():
    things = Registry("thing")
    things.register("a")(object)
    with pytest.raises(ValueError, match="twice"):
        things.register("a")(object)
