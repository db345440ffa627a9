"""Command-line options made from a stage's settings model, so a setting, its default and its
help are written once (in the model) and the CLI, the experiment spec and `--config FILE`
read the same definition. Every option defaults to "not given"; the model's default applies
unless a config file or a flag says otherwise (defaults < YAML/JSON < flags)."""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable

import click
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from tasksafe.settings import load_settings


def _is_list(annotation) -> bool:
    return typing.get_origin(annotation) is list


def _is_bool(annotation) -> bool:
    return annotation is bool


def settings_options(model: type[BaseModel], skip: Iterable[str] = ()) -> Callable:
    """Add one `--field-name` option per field of `model` (except `skip`), plus `--config FILE`."""
    skipped = set(skip)

    def decorator(command: Callable) -> Callable:
        for name, field in reversed(list(model.model_fields.items())):
            if name in skipped:
                continue
            default = field.get_default(call_default_factory=True) if field.default is not PydanticUndefined or \
                field.default_factory else None
            shown = f" [default: {default}]" if default not in (None, "", []) else ""
            help_text = (field.description or "") + shown
            flag = "--" + name.replace("_", "-")
            if _is_bool(field.annotation):
                command = click.option(f"{flag}/--no-{name.replace('_', '-')}", name, default=None,
                                       help=help_text)(command)
            elif _is_list(field.annotation):
                command = click.option(flag, name, multiple=True, help=help_text + " (repeatable)")(command)
            else:
                command = click.option(flag, name, default=None, help=help_text)(command)
        return click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                            help="A YAML or JSON file of these settings; flags override it.")(command)

    return decorator


def _allows_none(annotation) -> bool:
    return type(None) in typing.get_args(annotation)


def settings_from(model: type[BaseModel], config_file: str | None, flags: dict, **fixed):
    """The settings model from defaults < `config_file` < `flags` (+ `fixed` values). A flag of
    a field that may be unset (`int | None`, whose help says what "none" means) takes `none`."""
    given = {k: (list(v) if isinstance(v, tuple) else v) for k, v in flags.items() if v is not None and v != ()}
    unset = [name for name, value in given.items() if isinstance(value, str) and value.lower() == "none"
             and name in model.model_fields and _allows_none(model.model_fields[name].annotation)]
    chosen = load_settings(model, config_file, {**{k: v for k, v in given.items() if k not in unset}, **fixed})
    return model.model_validate({**chosen.model_dump(), **dict.fromkeys(unset)}) if unset else chosen
