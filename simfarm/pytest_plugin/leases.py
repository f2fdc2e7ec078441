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

import os
from collections.abc import Callable
from pathlib import Path

from .. import lockfile
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
            lockfile.release(self.path, self._fd)
            self._fd = None


def lease_dir(state_root: Path) -> Path:
    return state_root / DIRECTORY


def take(state_root: Path, farm: str) -> Lease:
    """Claim ``farm``; BadInput when a live process holds it already."""
    directory = lease_dir(state_root)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{farm}{SUFFIX}"
    fd = lockfile.try_lock(path)
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
        fd = lockfile.try_lock(path, create=False)
        if fd is None:
            continue  # its owner is alive (or another session is reclaiming it)
        farm = path.name.removesuffix(SUFFIX)
        try:
            teardown(farm)
        except SimfarmError:
            os.close(fd)
            continue
        lockfile.release(path, fd)
        reclaimed.append(farm)
    return reclaimed


