"""Patterns: named, declarative generators of test frames.

    from simfarm.patterns import PatternLibrary
    rendered = PatternLibrary(["my-patterns"]).get("ball").render("640x480", 30)
    rendered.frames            # one cycle of RGB frames, pre-rendered once
    rendered.dynamic_overlays  # per-frame patches (the clock)

See ``library`` for the file format and ``generators`` for the bases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import lazyimport

if TYPE_CHECKING:
    from .core import Generator
    from .generators import GENERATORS
    from .library import DEFAULT_MAX_SECONDS, PatternDef, PatternLibrary, RenderedPattern, load_pattern
    from .overlays import OVERLAYS, ClockOverlay, DynamicOverlay

# Imported on first use: fault parameters (params.py) are checked without numpy.
__getattr__ = lazyimport.exports(__name__, {
    ".core": ["Generator"],
    ".generators": ["GENERATORS"],
    ".library": ["DEFAULT_MAX_SECONDS", "PatternDef", "PatternLibrary", "RenderedPattern", "load_pattern"],
    ".overlays": ["OVERLAYS", "ClockOverlay", "DynamicOverlay"],
})

__all__ = ["DEFAULT_MAX_SECONDS", "GENERATORS", "OVERLAYS", "ClockOverlay", "DynamicOverlay",
           "Generator", "PatternDef", "PatternLibrary", "RenderedPattern", "load_pattern"]
