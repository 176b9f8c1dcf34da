"""What every config model shares: strict pydantic models (unknown keys refused, values frozen), and `validated`,
which turns pydantic's report into one line that names the key."""

from __future__ import annotations

import difflib
import typing

from pydantic import BaseModel, ConfigDict, ValidationError

from bai_core.errors import BaiError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def validated(model: type[BaseModel], **values) -> BaseModel:
    """Build a config, turning pydantic's multi-line report into one BaiError line that names the key.

    An unknown key is reported before anything else: `instuct:` is a typo of `instruct`, and saying so beats
    reporting the `instruct` it left missing."""
    try:
        return model(**values)
    except ValidationError as e:
        errors = sorted(e.errors(), key=lambda error: error["type"] != "extra_forbidden")
        first = errors[0]
        key = ".".join(str(part) for part in first["loc"]) or model.__name__
        if first["type"] == "extra_forbidden":
            known = _field_names(model, first["loc"][:-1])
            close = difflib.get_close_matches(str(first["loc"][-1]), known, n=1)
            message = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else
                                       f" (known: {', '.join(known)})" if known else "")
        else:
            message = first["msg"].removeprefix("Value error, ")
        raise BaiError(f"invalid {key}: {message}" if first["loc"] else f"invalid config: {message}") from None


def _field_names(model: type[BaseModel], path: tuple) -> list[str]:
    """The keys a (nested) model accepts at `path`, for suggestions."""
    for part in path:
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        nested = [t for t in (field.annotation, *typing.get_args(field.annotation))
                  if isinstance(t, type) and issubclass(t, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return list(model.model_fields)
