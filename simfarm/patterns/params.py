"""Typed parameters of generators and overlays, checked when a pattern file loads.

Each parameter knows its default and how to turn a YAML value into the value
the renderer uses; a bad value raises ValueError with a message the library
prefixes with the file and line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Colour = tuple[int, int, int]
Check = Callable[[Any, Path], Any]


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Param:
    """One parameter: its default (or REQUIRED), a checker, and a line of documentation."""

    default: Any
    check: Check
    doc: str


class ParamError(ValueError):
    """A parameter problem; ``name`` is the parameter at fault (None: the mapping as a whole)."""

    def __init__(self, name: str | None, message: str) -> None:
        super().__init__(message)
        self.name = name


def resolve(specs: Mapping[str, Param], given: Mapping[str, Any], base: Path, *,
            defaults: bool = True) -> dict[str, Any]:
    """The ``given`` values checked, plus (with ``defaults``) every other parameter's default.

    ``base`` is the directory file parameters are relative to. Unknown or
    missing names and bad values raise :class:`ParamError`.
    """
    for name in given:
        if name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            raise ParamError(name, f"unknown parameter {name!r} (known: {known})")
    values = {}
    for name, spec in specs.items():
        if name in given:
            try:
                values[name] = spec.check(given[name], base)
            except ValueError as exc:
                raise ParamError(name, f"{name}: {exc}") from None
        elif not defaults:
            continue
        elif spec.default is REQUIRED:
            raise ParamError(None, f"parameter {name!r} is required ({spec.doc})")
        else:
            values[name] = spec.default
    return values


def number(default: float, low: float, high: float, doc: str, *, integer: bool = False,
           low_open: bool = False) -> Param:
    """A number in [low, high] (or (low, high] with ``low_open``); ``integer`` refuses fractions."""
    kind = "an integer" if integer else "a number"
    bracket = "(" if low_open else "["

    def check(value: Any, _base: Path) -> float:
        # bool is an int in Python, but `true` as a size is a mistake.
        if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
            raise ValueError(f"{value!r} is not {kind}")
        if not (low < value if low_open else low <= value) or value > high:
            raise ValueError(f"{value!r} is outside {bracket}{low:g}, {high:g}]")
        return value

    return Param(default, check, doc)


def choice(default: str, options: Sequence[str], doc: str) -> Param:
    def check(value: Any, _base: Path) -> str:
        if value not in options:
            raise ValueError(f"{value!r} is not one of {', '.join(options)}")
        return value

    return Param(default, check, doc)


def flag(default: bool, doc: str) -> Param:
    def check(value: Any, _base: Path) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not true or false")
        return value

    return Param(default, check, doc)


def text(default: str, doc: str) -> Param:
    def check(value: Any, _base: Path) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError(f"{value!r} is not a non-empty string")
        return value

    return Param(default, check, doc)


def parse_colour(value: Any) -> Colour:
    """[r, g, b] with 0..255 integers, or '#rrggbb'."""
    if isinstance(value, str) and len(value) == 7 and value.startswith("#"):
        try:
            return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))
        except ValueError:
            pass
    elif (isinstance(value, list) and len(value) == 3
          and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value)):
        return (value[0], value[1], value[2])
    raise ValueError(f"{value!r} is not a colour ([r, g, b] with 0..255, or '#rrggbb')")


def colour(default: Colour | None, doc: str, *, optional: bool = False) -> Param:
    """A colour; ``optional`` also accepts null (meaning: none)."""

    def check(value: Any, _base: Path) -> Colour | None:
        return None if optional and value is None else parse_colour(value)

    return Param(default, check, doc)


def colours(default: Sequence[Colour], doc: str, *, count: int | None = None) -> Param:
    """A list of colours (exactly ``count`` of them when given, else at least one)."""

    def check(value: Any, _base: Path) -> tuple[Colour, ...]:
        if not isinstance(value, list) or not value or (count is not None and len(value) != count):
            raise ValueError(f"{value!r} is not a list of {count or 'one or more'} colours")
        return tuple(parse_colour(c) for c in value)

    return Param(tuple(default), check, doc)


def file(doc: str) -> Param:
    """A required path to an existing file, relative to the pattern file's directory."""

    def check(value: Any, base: Path) -> Path:
        if not isinstance(value, str) or not value:
            raise ValueError(f"{value!r} is not a file path")
        path = (base / value).resolve()
        if not path.is_file():
            raise ValueError(f"{path} does not exist or is not a file")
        return path

    return Param(REQUIRED, check, doc)
