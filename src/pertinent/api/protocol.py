"""Request validation and response shaping from botocore's own service models.

botocore's client checks only required members, types and ``min``; the service must
check ``max``, ``pattern`` and ``enum`` itself (spec §1.4). This module walks the
operation's input shape and raises ``InvalidInputException`` with the message style
AWS uses ("1 validation error detected: Value ... at 'name' failed to satisfy
constraint: ..."), so a person sees which field is wrong and why.

Responses go through ``shape_output``, which keeps only the members the model
declares, drops ``None`` and writes timestamps as epoch seconds.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

import botocore.session
import regex
from botocore.model import OperationModel, ServiceModel, Shape

from pertinent.errors import InvalidInputException

SERVICES = ("personalize", "personalize-runtime", "personalize-events")

# Server-side extension of the model: data locations may also name the server's own
# filesystem (DESIGN "data locations"), which the model's S3 pattern does not allow.
LOCAL_LOCATION_PREFIXES = ("file://", "/")
LOCATION_SHAPES = {"S3Location"}


@functools.cache
def service_model(name: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(name)


@functools.cache
def operation(service: str, name: str) -> OperationModel:
    return service_model(service).operation_model(name)


@functools.cache
def _compiled(pattern: str) -> Any:
    # Smithy patterns are ECMA-262 and not implicitly anchored; `regex` understands the
    # \p{...} classes they use, which `re` does not.
    return regex.compile(pattern)


def _describe(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 100 else text[:97] + "..."


class _Validator:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, path: str, value: Any, constraint: str) -> None:
        if value is _MISSING:
            self.errors.append(f"Value null at '{path}' failed to satisfy constraint: {constraint}")
        else:
            self.errors.append(
                f"Value '{_describe(value)}' at '{path}' failed to satisfy constraint: {constraint}"
            )

    def check(self, shape: Shape, value: Any, path: str) -> None:
        kind = shape.type_name
        handler = getattr(self, f"_check_{kind}", None)
        if handler is not None:
            handler(shape, value, path)

    def _check_structure(self, shape: Shape, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.fail(path, value, "Member must be a structure")
            return
        for name in shape.required_members:
            if value.get(name) is None:
                self.fail(_join(path, name), _MISSING, "Member must not be null")
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                self.check(member, value[name], _join(path, name))

    def _check_list(self, shape: Shape, value: Any, path: str) -> None:
        if not isinstance(value, list):
            self.fail(path, value, "Member must be a list")
            return
        self._length(shape, value, path, "length")
        for i, item in enumerate(value):
            self.check(shape.member, item, f"{path}.{i + 1}.member" if path else str(i + 1))

    def _check_map(self, shape: Shape, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.fail(path, value, "Member must be a map")
            return
        self._length(shape, value, path, "length")
        for key, item in value.items():
            self.check(shape.key, key, f"{path}.key")
            self.check(shape.value, item, f"{path}.{key}")

    def _check_string(self, shape: Shape, value: Any, path: str) -> None:
        if not isinstance(value, str):
            self.fail(path, value, "Member must be a string")
            return
        self._length(shape, value, path, "length")
        meta = shape.metadata
        if "enum" in meta and value not in meta["enum"]:
            self.fail(
                path, value, f"Member must satisfy enum value set: [{', '.join(meta['enum'])}]"
            )
        pattern = meta.get("pattern")
        if pattern is None:
            return
        if shape.name in LOCATION_SHAPES and value.startswith(LOCAL_LOCATION_PREFIXES):
            return
        # Names are embedded in ARNs, so the whole value must match, not only a prefix.
        compiled = _compiled(pattern)
        ok = compiled.fullmatch(value) if shape.name == "Name" else compiled.search(value)
        if not ok:
            self.fail(path, value, f"Member must satisfy regular expression pattern: {pattern}")

    def _check_integer(self, shape: Shape, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, value, "Member must be an integer")
            return
        self._range(shape, value, path)

    _check_long = _check_integer

    def _check_double(self, shape: Shape, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(path, value, "Member must be a number")
            return
        self._range(shape, value, path)

    _check_float = _check_double

    def _check_boolean(self, shape: Shape, value: Any, path: str) -> None:
        if not isinstance(value, bool):
            self.fail(path, value, "Member must be a boolean")

    def _check_timestamp(self, shape: Shape, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            self.fail(path, value, "Member must be a timestamp")

    def _length(self, shape: Shape, value: Any, path: str, what: str) -> None:
        meta = shape.metadata
        if "min" in meta and len(value) < meta["min"]:
            self.fail(
                path, value, f"Member must have {what} greater than or equal to {meta['min']}"
            )
        if "max" in meta and len(value) > meta["max"]:
            self.fail(path, value, f"Member must have {what} less than or equal to {meta['max']}")

    def _range(self, shape: Shape, value: float, path: str) -> None:
        meta = shape.metadata
        if "min" in meta and value < meta["min"]:
            self.fail(path, value, f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            self.fail(path, value, f"Member must have value less than or equal to {meta['max']}")


class _Missing:
    pass


_MISSING = _Missing()


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def validate(op: OperationModel, params: Any) -> dict[str, Any]:
    """Check ``params`` against the operation's input shape; return them when valid."""
    shape = op.input_shape
    if shape is None:
        return {}
    v = _Validator()
    v.check(shape, params, "")
    if v.errors:
        count = len(v.errors)
        noun = "error" if count == 1 else "errors"
        raise InvalidInputException(f"{count} validation {noun} detected: " + "; ".join(v.errors))
    assert isinstance(params, dict)
    return params


def _epoch(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return float(value)


def shape_output(shape: Shape | None, value: Any) -> Any:
    """Project ``value`` onto ``shape``: declared members only, no None, epoch times."""
    if shape is None or value is None:
        return {} if shape is None else None
    kind = shape.type_name
    if kind == "structure":
        out: dict[str, Any] = {}
        for name, member in shape.members.items():
            item = value.get(name)
            if item is None:
                continue
            shaped = shape_output(member, item)
            if shaped is not None:
                out[name] = shaped
        return out
    if kind == "list":
        return [shape_output(shape.member, v) for v in value]
    if kind == "map":
        return {k: shape_output(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        return _epoch(value)
    return value


Handler = Callable[..., dict[str, Any]]
