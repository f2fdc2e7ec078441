"""Pattern files: loading and checking them, finding them by name, rendering them.

A pattern file names a base generator, its parameters and overlays::

    name: ball                      # optional; defaults to the file name
    description: white ball bouncing over dark grey
    base: moving-ball
    params: {radius: 0.08, speed: 1.0}
    overlays:
      - {kind: text, text: simfarm, position: bottom-right}

Everything is checked at load time and every mistake names the file and
line. Paths in parameters are relative to the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from .. import yamlfile
from ..errors import BadInput
from ..spec import Size, parse_fps
from ..yamlfile import Located
from .generators import GENERATORS
from .overlays import OVERLAYS, DynamicOverlay
from .params import Param, ParamError, resolve

BUILTIN_DIR = Path(str(files("simfarm.builtin_patterns")))
# One cycle is held in memory as RGB (W*H*3 bytes a frame); this bounds it.
DEFAULT_MAX_SECONDS = 2.0
_KEYS = {"name", "description", "base", "params", "overlays"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class OverlaySpec:
    kind: str
    params: Mapping[str, Any]


@dataclass
class RenderedPattern:
    """One cycle of a pattern, ready to loop.

    ``frames`` are (H, W, 3) uint8 RGB, played in order and repeated; a
    static pattern has one. They take ``nbytes`` (W*H*3 per frame: 2.7 MB at
    1280x720, so a 2 s cycle at 30 fps is 166 MB). ``dynamic_overlays`` are
    drawn per frame by the producer: ``patch(frame_index, wall_time)`` gives
    (y, x, RGB patch) for ``pixfmt.write_rgb_patch``.
    """

    frames: list[np.ndarray]
    dynamic_overlays: list[DynamicOverlay] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(frame.nbytes for frame in self.frames)

    def composed(self, frame_index: int, wall_time: float) -> np.ndarray:
        """A copy of frame ``frame_index`` (mod the cycle) with the dynamic overlays drawn in, as RGB."""
        frame = self.frames[frame_index % len(self.frames)].copy()
        for overlay in self.dynamic_overlays:
            y, x, patch = overlay.patch(frame_index, wall_time)
            frame[y:y + patch.shape[0], x:x + patch.shape[1]] = patch
        return frame


@dataclass(frozen=True)
class PatternDef:
    """A checked pattern file: its ``params`` hold a value for every parameter of ``base``."""

    name: str
    description: str
    base: str
    params: Mapping[str, Any]
    overlays: tuple[OverlaySpec, ...]
    source: Path

    def render(self, size: Size | str, fps: Fraction | float | str,
               overrides: Mapping[str, Any] | None = None, *,
               max_seconds: float = DEFAULT_MAX_SECONDS) -> RenderedPattern:
        """Render one cycle at ``size`` and ``fps``; ``overrides`` replace file parameters.

        Overrides are checked like the file's own values (paths relative to
        the current directory). A cycle longer than ``max_seconds`` (a slow ball, many noise frames)
        is refused with BadInput rather than eating memory; clips are cut to it.
        """
        size, fps = Size.parse(size), parse_fps(fps)
        generator = GENERATORS[self.base]
        params = dict(self.params)
        try:
            params.update(resolve(generator.params, overrides or {}, Path.cwd(), defaults=False))
        except ParamError as exc:
            raise BadInput(f"pattern {self.name}: override {exc}") from None
        try:
            frames = generator.render(params, size, fps, max(1, round(max_seconds * fps)))
        except BadInput as exc:
            raise BadInput(f"pattern {self.name} ({self.source}) at {size} {fps} fps: {exc}") from None
        dynamic = []
        for overlay in self.overlays:
            made = OVERLAYS[overlay.kind].apply(overlay.params, frames, size)
            if made is not None:
                dynamic.append(made)
        return RenderedPattern(frames, dynamic)


class PatternLibrary:
    """The built-in patterns plus those in ``extra_dirs``; later directories override earlier names.

    Every file is loaded and checked here, so a broken file in any directory
    is reported (with its line) before any camera starts.
    """

    def __init__(self, extra_dirs: Iterable[str | os.PathLike[str]] = ()) -> None:
        self._patterns: dict[str, PatternDef] = {}
        for directory in (BUILTIN_DIR, *(Path(d) for d in extra_dirs)):
            self._patterns.update(_load_dir(directory))

    def names(self) -> list[str]:
        return sorted(self._patterns)

    def get(self, name: str) -> PatternDef:
        try:
            return self._patterns[name]
        except KeyError:
            raise BadInput(f"unknown pattern {name!r} (known: {', '.join(self.names())})") from None


def _load_dir(directory: Path) -> dict[str, PatternDef]:
    if not directory.is_dir():
        raise BadInput(f"patterns directory {directory} does not exist")
    found: dict[str, PatternDef] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        pattern = load_pattern(path)
        if pattern.name in found:
            raise BadInput(f"{path}: pattern {pattern.name!r} is also defined in {found[pattern.name].source}")
        found[pattern.name] = pattern
    return found


def load_pattern(path: str | os.PathLike[str]) -> PatternDef:
    """Load and check one pattern file; any mistake is a BadInput naming the file and line."""
    path = Path(path)
    data = yamlfile.load(path)
    if not isinstance(data, Located):
        raise BadInput(f"{path}:1: a pattern file is a mapping with at least 'base'")
    data.check_keys(_KEYS, "pattern")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise data.fail("name", f"name {name!r} is not letters, digits, '-', '_' or '.'")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise data.fail("description", "description is text")
    base = data.get("base")
    if base not in GENERATORS:
        what = f"unknown base {base!r}" if "base" in data else "missing 'base'"
        raise data.fail("base" if "base" in data else None, f"{what} (known: {', '.join(sorted(GENERATORS))})")
    params_data = data.get("params")
    if params_data is None:  # all defaults; a missing required one is reported at `base`
        params = _checked(GENERATORS[base].params, {}, data, path.parent, whole="base")
    elif isinstance(params_data, Located):
        params = _checked(GENERATORS[base].params, params_data, params_data, path.parent)
    else:
        raise data.fail("params", "params is a mapping of parameter names to values")
    overlays_data = data.get("overlays") or []
    if not isinstance(overlays_data, list):
        raise data.fail("overlays", "overlays is a list of mappings, each with a kind")
    overlays = tuple(_overlay(item, data, path.parent) for item in overlays_data)
    return PatternDef(name, description, base, params, overlays, path)


def _checked(specs: Mapping[str, Param], given: Mapping[str, Any], where: Located, base: Path, *,
             whole: str | None = None) -> dict[str, Any]:
    """``given`` checked against ``specs``; an error points at its key's line in ``where``.

    A problem with no single key (a missing parameter) points at ``whole``,
    or at the mapping itself.
    """
    try:
        return resolve(specs, given, base)
    except ParamError as exc:
        raise where.fail(exc.name if exc.name is not None else whole, str(exc)) from None


def _overlay(item: Any, pattern: Located, base: Path) -> OverlaySpec:
    if not isinstance(item, Located):
        raise pattern.fail("overlays", f"overlay {item!r} is not a mapping with a kind")
    kind = item.get("kind")
    if kind not in OVERLAYS:
        what = f"unknown overlay kind {kind!r}" if "kind" in item else "overlay without a kind"
        raise item.fail("kind" if "kind" in item else None, f"{what} (known: {', '.join(sorted(OVERLAYS))})")
    given = {key: value for key, value in item.items() if key != "kind"}
    return OverlaySpec(kind, _checked(OVERLAYS[kind].params, given, item, base))
