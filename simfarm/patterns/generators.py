"""Every base generator a pattern file can name, by name."""

from __future__ import annotations

from . import bars, fields, media, motion
from .core import Generator

GENERATORS: dict[str, Generator] = {
    gen.name: gen for module in (bars, fields, motion, media) for gen in module.GENERATORS}
