"""Which pytest process owns which farm, so a farm left by a killed worker is found and removed.

A farm's supervisor runs in its own session and outlives a SIGKILLed test
worker, so the farm never looks stale to ``reclaim_stale()`` (its supervisor
is alive). The worker therefore holds an exclusive ``flock`` on
``<state root>/pytest-leases/<farm>.lease`` from before provisioning until
after teardown. The kernel drops the lock when the worker dies, however it
dies, so a lease anyone can lock belongs to a dead worker: its farm is torn
down. Whoever locks it does the cleanup; everyone else skips it, so two
sessions starting together never both act on one farm.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import BadInput, SimfarmError

DIRECTORY = "pytest-leases"
SUFFIX = ".lease"


class Lease:
    """This process's claim on one farm name, held until :meth:`release`."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def farm(self) -> str:
        return self.path.name.removesuffix(SUFFIX)

    def release(self) -> None:
        """Drop the claim (after the farm is gone). Idempotent."""
        if self._fd is not None:
            _unlink_and_close(self.path, self._fd)
            self._fd = None


def lease_dir(state_root: Path) -> Path:
    return state_root / DIRECTORY


def take(state_root: Path, farm: str) -> Lease:
    """Claim ``farm``; BadInput when a live process holds it already."""
    directory = lease_dir(state_root)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{farm}{SUFFIX}"
    fd = _lock(path)
    if fd is None:
        raise BadInput(f"farm {farm!r} is leased by another live pytest process")
    os.write(fd, f"{os.getpid()}\n".encode())  # for whoever debugs; the lock is what counts
    return Lease(path, fd)


def reclaim_dead(state_root: Path, teardown: Callable[[str], object]) -> list[str]:
    """Tear down (with ``teardown(name)``) every farm whose leasing process has died; their names.

    A farm that cannot be removed yet (a reader still holds a node) keeps its
    lease file, unlocked, so the next session tries again.
    """
    directory = lease_dir(state_root)
    reclaimed = []
    for path in sorted(directory.glob(f"*{SUFFIX}")) if directory.is_dir() else []:
        fd = _lock(path, create=False)
        if fd is None:
            continue  # its owner is alive (or another session is reclaiming it)
        farm = path.name.removesuffix(SUFFIX)
        try:
            teardown(farm)
        except SimfarmError:
            os.close(fd)
            continue
        _unlink_and_close(path, fd)
        reclaimed.append(farm)
    return reclaimed


def _lock(path: Path, *, create: bool = True) -> int | None:
    """An fd holding ``path``'s exclusive lock, or None when another process holds it
    (or, unless ``create``, when it no longer exists: its owner released it)."""
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
        # The holder may have unlinked it between our open and flock: then we
        # hold a file nobody else will look at. Start over with the current one.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            return fd
        os.close(fd)


def _unlink_and_close(path: Path, fd: int) -> None:
    # Unlink while still locked: a process that opened the old file meanwhile
    # sees the inode change and retries (see _lock).
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.close(fd)
