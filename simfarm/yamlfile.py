"""YAML files whose errors name the line: shared by pattern, farm and scenario files.

Mappings load as ``Located`` dicts that remember the line of each key, so a
validator can say ``farm.yaml:7: fps must be > 0`` rather than just "bad fps".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .errors import BadInput


class Located(dict):
    """A mapping that knows its file and the line of itself and of each key."""

    path: str = "?"
    line: int = 0
    key_lines: dict[str, int]

    def where(self, key: str | None = None) -> str:
        line = self.key_lines.get(key, self.line) if key is not None else self.line
        return f"{self.path}:{line}"

    def fail(self, key: str | None, message: str) -> BadInput:
        """A BadInput naming the file and line of ``key`` (or of the mapping)."""
        return BadInput(f"{self.where(key)}: {message}")

    def check_keys(self, allowed: set[str], what: str) -> None:
        for key in self:
            if key not in allowed:
                raise self.fail(key, f"unknown {what} key {key!r} (known: {', '.join(sorted(allowed))})")


def load(path: str | Path) -> Any:
    """Parse ``path``; a syntax error or duplicate key becomes BadInput with its line."""
    import yaml  # here: a farm given on the command line alone reads no file, and provisioning it needs no parser

    path = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None

    # libyaml's parser where PyYAML has it: the pure-Python one took most of a supervisor's loading
    # of the pattern files, a second or more of every provision under emulation.
    safe: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class _Loader(safe):  # type: ignore[valid-type, misc]
        pass

    # YAML 1.1 reads 0x0 as hex and 1:30 as base 60; a size or a time here
    # is meant as text, so only plain decimals become integers.
    _Loader.yaml_implicit_resolvers = {
        first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:int"]
        for first, resolvers in safe.yaml_implicit_resolvers.items()}
    _Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?(0|[1-9][0-9]*)$"),
                                  list("-+0123456789"))

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Located:
        result = Located()
        result.path, result.line, result.key_lines = path, node.start_mark.line + 1, {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                raise BadInput(f"{path}:{key_node.start_mark.line + 1}: duplicate key {key!r}")
            result[key] = loader.construct_object(value_node, deep=True)
            result.key_lines[key] = key_node.start_mark.line + 1
        return result

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise BadInput(f"{path}:{line}: {exc.problem or exc.context}") from None
