"""Free TCP ports on 127.0.0.1, reserved so that concurrent farms never share one.

A port that is free now may be taken before the server we start binds it, so a
bind test alone races against every other farm (and every pytest-xdist worker)
picking at the same moment. Each port we hand out is therefore also *reserved*:
an exclusive ``flock`` on ``<ports dir>/<port>.lock`` held for as long as the
reservation lives. Every simfarm process checks the lock before the bind test,
so two farms on one machine always get disjoint ports. The lock dies with its
holder, so a crashed farm never leaks a reservation.

Programs that are not simfarm can still take a port between our bind test and
the server's bind; the server start handles that by retrying with new ports.
"""

from __future__ import annotations

import errno
import os
import random
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from .. import lockfile
from ..errors import EnvironmentProblem

HOST = "127.0.0.1"

# Below Linux's default ephemeral range (32768-60999), so the kernel does not
# hand our port to some outgoing connection before the server binds it.
DEFAULT_RANGE = range(20000, 32768)


def ports_dir() -> Path:
    """The machine-wide directory of port reservations.

    It must be the same for every simfarm process of a user, so it does not
    follow the per-farm state directory (tests give each test its own one):
    ``$SIMFARM_PORTS_DIR``, else ``/run/simfarm/ports`` for root, else
    ``$XDG_RUNTIME_DIR/simfarm/ports``, else ``/tmp/simfarm-<uid>/ports``.
    """
    if env := os.environ.get("SIMFARM_PORTS_DIR"):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/run/simfarm/ports")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime, "simfarm", "ports") if runtime else Path(f"/tmp/simfarm-{os.geteuid()}", "ports")


class PortReservation:
    """Some TCP ports on 127.0.0.1, held until :meth:`release` (or the end of a ``with``)."""

    def __init__(self, locks: dict[int, int], directory: Path) -> None:
        self._locks = locks  # port -> fd holding its flock
        self._directory = directory

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(self._locks)

    def release(self) -> None:
        """Give the ports back. Idempotent."""
        for port, fd in self._locks.items():
            _unlock(self._directory, port, fd)
        self._locks = {}

    def __enter__(self) -> PortReservation:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()


def reserve_ports(count: int, *, directory: Path | None = None,
                  candidates: Sequence[int] = DEFAULT_RANGE) -> PortReservation:
    """Reserve ``count`` distinct ports that are free on 127.0.0.1 now.

    Candidates are walked from a random starting point, so concurrent callers
    rarely contend for the same lock. Raises EnvironmentProblem when fewer than
    ``count`` candidates are both unreserved and bindable.
    """
    directory = directory or ports_dir()
    directory.mkdir(parents=True, exist_ok=True)
    locks: dict[int, int] = {}
    start = random.SystemRandom().randrange(len(candidates)) if candidates else 0
    try:
        for port in _rotated(candidates, start):
            if len(locks) == count:
                break
            fd = _lock_port(directory, port)
            if fd is None:
                continue
            if _bindable(port):
                locks[port] = fd
            else:
                _unlock(directory, port, fd)
    except BaseException:
        PortReservation(locks, directory).release()
        raise
    reservation = PortReservation(locks, directory)
    if len(locks) < count:
        reservation.release()
        low, high = min(candidates, default=0), max(candidates, default=0)
        raise EnvironmentProblem(
            f"found only {len(locks)} of {count} free TCP ports on {HOST} in {low}-{high}",
            "stop farms or other programs listening there (see `ss -ltnp`)")
    return reservation


def _rotated(candidates: Sequence[int], start: int) -> Iterator[int]:
    yield from candidates[start:]
    yield from candidates[:start]


def _lock_path(directory: Path, port: int) -> Path:
    return directory / f"{port}.lock"


def _lock_port(directory: Path, port: int) -> int | None:
    """An fd holding the port's lock, or None when another process holds it."""
    return lockfile.try_lock(_lock_path(directory, port), note=f"{os.getpid()}\n")


def _unlock(directory: Path, port: int, fd: int) -> None:
    lockfile.release(_lock_path(directory, port), fd)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Go's listeners set SO_REUSEADDR, so a port lingering in TIME_WAIT is
        # usable by the server; only a live listener or bound socket is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True
