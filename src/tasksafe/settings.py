"""The base of every stage's settings: pydantic models that reject unknown keys, NaN and
infinity, with help text per field, and one way to turn a validation error into the one line
the CLI prints. Defaults live in the models; a YAML/JSON file overrides them and command-line
flags override the file (`load_settings`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from tasksafe.errors import UserError

M = TypeVar("M", bound=BaseModel)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True)


def check_names(names, registry) -> None:
    """Raise `ValueError` (pydantic's way to fail a field) for the first name `registry` lacks."""
    for name in names:
        try:
            registry.get(name)
        except UserError as err:
            raise ValueError(str(err)) from None


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validation_message(err: ValidationError, source: str, flags: bool = False) -> str:
    """The first problem of a pydantic error as one line: `SOURCE: KEY: what (got VALUE)`;
    with `flags`, keys are shown as the command-line options they came from."""
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    where = f"--{loc[0].replace('_', '-')}" if flags and loc else ".".join(loc)
    message = first["msg"].removeprefix("Value error, ")
    got = f" (got {shown(first['input'])})" if "input" in first and first["type"] != "missing" else ""
    return f"{source}: {where}: {message}{got}"


def read_mapping(path: str | Path) -> dict:
    """A YAML or JSON file (JSON is YAML) holding a mapping, read as hostile input."""
    import yaml

    from tasksafe.data.io import read_text

    text = read_text(path, max_bytes=2**20)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    except (ValueError, RecursionError) as err:  # e.g. an integer of thousands of digits
        raise UserError(f"{path}: a value cannot be read ({str(err).split(';')[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of settings (key: value lines)")
    return data


def load_settings(model: type[M], config_file: str | None = None, flags: dict[str, Any] | None = None) -> M:
    """`model` from its defaults, then `config_file` (YAML/JSON), then the given `flags`
    (None and empty values mean "not given"); a bad value is a `UserError`."""
    data = read_mapping(config_file) if config_file else {}
    given = {k: v for k, v in (flags or {}).items() if v is not None and v != ()}
    try:
        return model.model_validate({**data, **given})
    except ValidationError as err:
        from_flags = err.errors()[0]["loc"][:1] and err.errors()[0]["loc"][0] in given
        raise UserError(validation_message(err, "command line" if from_flags else str(config_file),
                                           flags=bool(from_flags))) from None
