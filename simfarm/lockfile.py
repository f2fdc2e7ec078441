"""Lock files that say "a live process holds this": port reservations, test leases.

The kernel drops an flock when its holder dies, so a lock held is proof of
life that survives SIGKILL. Releasing unlinks the file while still holding
the lock; a process that opened the old file meanwhile notices the inode
changed and retries on the current one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


def try_lock(path: Path, *, create: bool = True, note: str | None = None) -> int | None:
    """An fd holding ``path``'s exclusive lock, or None when another process holds it
    (or, unless ``create``, when it no longer exists: its owner released it).
    ``note`` is written into the file, for whoever debugs."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        # The holder may have released (unlinked) between our open and flock:
        # then we hold a file nobody else will look at. Start over.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            if note:
                os.write(fd, note.encode())
            return fd
        os.close(fd)


def release(path: Path, fd: int) -> None:
    """Unlink ``path`` while still holding its lock, then let go."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.close(fd)
