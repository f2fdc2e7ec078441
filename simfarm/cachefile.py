"""A JSON object kept in simfarm's cache directory, best effort.

A cache that cannot be read is empty and one that cannot be written only
means asking again next time (read-only home, full disk). Each write goes
whole to a file of its own and is renamed into place, so two processes
writing at once each leave a valid file.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


def load(path: Path) -> dict[str, object]:
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return kept if isinstance(kept, dict) else {}


def store(path: Path, kept: dict[str, object]) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(kept))
        os.replace(partial, path)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink()
