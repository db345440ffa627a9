"""Click parameter types for the counts and seeds of the commands whose options are not made
from a settings model (`cli/settings.py` makes the rest, checked by the model)."""

from __future__ import annotations

import click

AT_LEAST_ONE = click.IntRange(min=1)
AT_LEAST_ZERO = click.IntRange(min=0)
