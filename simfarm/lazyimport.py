"""Package attributes imported on first use, so a package can name its whole API cheaply.

The CLI runs at the start of every CI job and in fault-script loops: a
command that only reads the farm's state must not pay for numpy, OpenCV or
linuxpy just because a package's ``__init__`` re-exports something that
needs them. A package lists where each public name lives and lets this
module's ``__getattr__`` import it when it is first asked for; the same
names are imported under ``TYPE_CHECKING`` so type checkers and editors
still see them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def exports(package: str, modules: Mapping[str, Sequence[str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` giving the names each (relative) module
    in ``modules`` provides, e.g. ``{".farm.farm": ["Farm"]}``; a value is cached on the package."""
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        try:
            module = where[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
