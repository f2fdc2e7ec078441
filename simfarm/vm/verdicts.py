"""Boot-probe verdicts kept for the rest of a host boot.

A verdict holds for one host boot (its boot id: the hypervisor under us
can change only across a reboot), one QEMU binary and one kernel image; a
binary or image is known by its real path, size and modification time, so
an upgrade is a different one. Entries of other boots are dropped when the
next verdict is written. Lost or unreadable, the cache only costs one boot
probe.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import cachefile
from ..program_versions import cache_dir

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
FILE_NAME = "accel.json"


def boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def _identity(path: str | Path) -> list[object]:
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return [real]
    return [real, st.st_size, st.st_mtime_ns]


def key(qemu: str, image: Path) -> str:
    """What a verdict depends on, as one string: host boot, QEMU binary, kernel image."""
    return json.dumps([boot_id(), _identity(qemu), _identity(image)])


def _path() -> Path:
    return cache_dir() / FILE_NAME


def load(key: str) -> tuple[str, str] | None:
    """The accelerator and reason kept for ``key``, or None (none kept, or kept for another
    boot, QEMU or kernel, or not a verdict)."""
    entry = cachefile.load(_path()).get(key)
    if (isinstance(entry, list) and len(entry) == 2 and entry[0] in ("kvm", "tcg")
            and isinstance(entry[1], str)):
        return entry[0], entry[1]
    return None


def store(key: str, name: str, reason: str) -> None:
    """Keep a verdict; entries of earlier host boots go."""
    this_boot = json.loads(key)[0]
    kept = {k: v for k, v in cachefile.load(_path()).items() if _boot_of(k) == this_boot}
    kept[key] = [name, reason]
    cachefile.store(_path(), kept)


def _boot_of(entry_key: str) -> object:
    try:
        return json.loads(entry_key)[0]
    except (ValueError, IndexError, TypeError):
        return None
