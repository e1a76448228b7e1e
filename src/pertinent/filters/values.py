"""``filterValues`` (spec §10.4): one string per placeholder, holding quoted values.

``{"GENRES": "\\"comedy\\",\\"drama\\""}`` is two values; a number may come quoted
(``"\\"10\\""``) or bare (``"10"``). A value containing a comma or a quote must be
quoted (inside quotes, ``\\"`` is a quote).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pertinent.errors import InvalidInputException

_QUOTED = re.compile(r'\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


def decode(name: str, raw: str) -> tuple[str, ...]:
    """The values of one placeholder; InvalidInputException for a malformed string."""
    text = raw.strip()
    if not text:
        raise InvalidInputException(
            f'filterValues["{name}"] is empty; give one or more quoted values, e.g. "\\"a\\"".'
        )
    if not text.startswith('"'):
        if '"' in text or "," in text:
            raise InvalidInputException(
                f'filterValues["{name}"] = {raw!r} is not a list of quoted values; write each '
                'value in double quotes, separated by commas: "\\"a\\",\\"b\\"".'
            )
        return (text,)
    out: list[str] = []
    pos = 0
    while pos < len(text):
        found = _QUOTED.match(text, pos)
        if found is None:
            raise InvalidInputException(
                f'filterValues["{name}"] = {raw!r} is not a list of quoted values (stopped at '
                f'character {pos + 1}); write "\\"a\\",\\"b\\"".'
            )
        out.append(found.group(1).replace('\\"', '"').replace("\\\\", "\\"))
        pos = found.end()
        if found.group(2) == "," and pos >= len(text):
            raise InvalidInputException(f'filterValues["{name}"] = {raw!r} ends with a comma.')
    return tuple(out)


def decode_all(values: Mapping[str, str] | None) -> dict[str, tuple[str, ...]]:
    return {name: decode(name, raw) for name, raw in (values or {}).items()}


def number(name: str, values: tuple[str, ...], where: str) -> float:
    """The one number a comparison placeholder must hold."""
    if len(values) != 1:
        raise InvalidInputException(
            f'filterValues["{name}"] must hold exactly one number for {where}, '
            f"got {len(values)} values."
        )
    try:
        return float(values[0])
    except ValueError:
        raise InvalidInputException(
            f'filterValues["{name}"] must be a number for {where}, got {values[0]!r}.'
        ) from None
