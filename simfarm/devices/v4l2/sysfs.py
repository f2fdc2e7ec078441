"""Reading one sysfs attribute, where a missing file means "no such thing (now)"."""

from __future__ import annotations

from pathlib import Path


def read(path: Path) -> str | None:
    """The attribute's value without its newline; None when it cannot be read (gone, unplugged)."""
    try:
        return path.read_text().strip()
    except OSError:
        return None
