"""The recording segments MediaMTX wrote for a farm, found on disk.

Segments are named by config.RECORD_NAME: ``<path>/<Y-m-d_H-M-S-micro>.<ext>``,
the start time in the server's local time. MediaMTX writes one segment per
path at a time, so all but a path's newest are complete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .config import RECORD_FORMATS

_EXTENSIONS = {"fmp4": ".mp4", "mpegts": ".ts"}
assert set(_EXTENSIONS) == set(RECORD_FORMATS)
_NAME = re.compile(r"(\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{6})(\.mp4|\.ts)")


@dataclass(frozen=True)
class Segment:
    path: str  # the MediaMTX path (for a farm: the camera's label)
    file: Path
    start: datetime  # timezone-aware
    size: int  # bytes, when listed
    complete: bool  # a newer segment of the path exists, so this one is closed

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "file": str(self.file), "start": self.start.isoformat(), "size": self.size,
                "complete": self.complete}


def list_segments(directory: Path, path: str | None = None) -> list[Segment]:
    """Every segment under ``directory`` (of path ``path`` only, when given), by path, then oldest first."""
    found: dict[str, list[tuple[datetime, Path]]] = {}
    for file in sorted(directory.rglob("*")) if directory.is_dir() else ():
        match = _NAME.fullmatch(file.name)
        if not match or not file.is_file():
            continue
        name = file.parent.relative_to(directory).as_posix()
        if path is None or name == path:
            start = datetime.strptime(match[1], "%Y-%m-%d_%H-%M-%S-%f").astimezone()
            found.setdefault(name, []).append((start, file))
    segments = []
    for name in sorted(found):
        files = sorted(found[name])
        for index, (start, file) in enumerate(files):
            segments.append(Segment(name, file, start, file.stat().st_size, index < len(files) - 1))
    return segments
