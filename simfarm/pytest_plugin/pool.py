"""The farms of one pytest process: made on first use, lent to tests, removed at the end.

One pool per process, so each xdist worker has its own farms (named after
the run and the worker, see naming.py) and needs no coordination with the
others: node numbers are picked by the kernel, state records are per farm,
and ports are reserved machine-wide (publishers.ports).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import SimfarmError
from ..farm.farm import Camera, Farm, teardown
from ..spec import CameraSpec
from . import leases, naming
from .frames import streaming_problem
from .request import FarmRequest

STATE_ENV = "SIMFARM_STATE_DIR"
# Farms of other specs kept for later tests besides the default one: each
# costs a supervisor process, and suites usually use one or two specs.
KEPT_FARMS = 2


@dataclass
class _Held:
    farm: Farm
    lease: leases.Lease


class WorkerFarms:
    """Farms keyed by backend and camera spec; a request for more cameras than a farm has replaces it."""

    def __init__(self, run: str, worker: str, state_root: Path, default: FarmRequest) -> None:
        self.run = run
        self.worker = worker
        # Pinned when the session starts: suites often point SIMFARM_STATE_DIR
        # at a per-test directory, but session farms must be found (and
        # reclaimed by the next run) where they were made.
        self.state_root = state_root
        self.default = default
        self._farms: dict[tuple[str, CameraSpec], _Held] = {}
        self._own: dict[str, _Held] = {}  # farms of single tests, by name
        self._serial = 0

    @contextlib.contextmanager
    def pinned_state(self) -> Iterator[None]:
        """Run farm operations against the session's state root (the supervisor inherits it)."""
        before = os.environ.get(STATE_ENV)
        os.environ[STATE_ENV] = str(self.state_root)
        try:
            yield
        finally:
            if before is None:
                del os.environ[STATE_ENV]
            else:
                os.environ[STATE_ENV] = before

    def reclaim_dead(self) -> list[str]:
        """Remove farms left by killed pytest processes (any run); their names."""
        with self.pinned_state():
            return leases.reclaim_dead(self.state_root, teardown)

    def farm_for(self, request: FarmRequest) -> Farm:
        """A running farm with at least ``request.cameras`` cameras of ``request.spec``."""
        key = (request.backend, request.spec)
        held = self._farms.pop(key, None)
        if held is not None and len(held.farm.cameras) < request.cameras:
            self._remove(held)
            held = None
        if held is None:
            wanted = max(request.cameras, self.default.cameras if key == self._default_key else 1)
            held = self._provision(wanted, request.spec, request.backend)
        self._farms[key] = held  # most recently used last
        self._evict()
        return held.farm

    def new_farm(self, cameras: int, spec: CameraSpec) -> Farm:
        """A farm no other test shares, for tests that make and remove cameras; see :meth:`remove`."""
        held = self._provision(cameras, spec)
        self._own[held.farm.name] = held
        return held.farm

    def remove(self, farm: Farm) -> None:
        """Tear down a farm from :meth:`new_farm`."""
        self._remove(self._own.pop(farm.name))

    def cameras_for(self, request: FarmRequest) -> list[Camera]:
        return self.farm_for(request).cameras[:request.cameras]

    def give_back(self, cameras: list[Camera]) -> str | None:
        """Clear the cameras' faults and check each streams its own codes again.

        Returns what was wrong, or None. A farm with a camera that does not
        recover is replaced, so one broken test does not fail the ones after it.
        """
        # Every camera of a farm has the farm's backend and spec, which key it here.
        key = (cameras[0].farm.backend, cameras[0].spec)
        held = self._farms[key]
        try:
            for camera in cameras:
                camera.clear_faults()  # plugs an unplugged camera in again, undoes a resize
            with self.pinned_state():
                # A replugged node may have another number: look the cameras up again.
                held.farm = Farm.attach(held.farm.name)
        except SimfarmError as exc:
            problems = [str(exc)]
        else:
            lent = {camera.index for camera in cameras}
            back = [camera for camera in held.farm.cameras if camera.index in lent]
            problems = [f"camera {i} is not plugged in" for i in sorted(lent - {c.index for c in back})]
            problems += [problem for camera in back if (problem := streaming_problem(camera)) is not None]
        if not problems:
            return None
        self._remove(self._farms.pop(key))
        return "; ".join(problems) + f" (farm {held.farm.name} replaced)"

    def close(self) -> None:
        """Tear down every farm; raise the first failure after trying all of them."""
        failures = []
        everything = [*self._farms.values(), *self._own.values()]
        self._farms.clear()
        self._own.clear()
        for held in everything:
            try:
                self._remove(held)
            except Exception as exc:  # noqa: BLE001 - keep tearing down the others
                failures.append(exc)
        if failures:
            raise failures[0]

    @property
    def _default_key(self) -> tuple[str, CameraSpec]:
        return self.default.backend, self.default.spec

    def _provision(self, cameras: int, spec: CameraSpec, backend: str = "loopback") -> _Held:
        name = naming.farm_name(self.run, self.worker, self._serial)
        self._serial += 1
        lease = leases.take(self.state_root, name)
        try:
            with self.pinned_state():
                farm = Farm.provision(cameras, name=name, spec=spec, backend=backend)
        except BaseException:
            lease.release()
            raise
        return _Held(farm, lease)

    def _remove(self, held: _Held) -> None:
        with self.pinned_state():
            held.farm.teardown()
        # Kept while the farm may still exist: if teardown raised, the lease
        # dies with this process and the next session finishes the job.
        held.lease.release()

    def _evict(self) -> None:
        others = [key for key in self._farms if key != self._default_key]
        for key in others[:-KEPT_FARMS] if len(others) > KEPT_FARMS else []:
            self._remove(self._farms.pop(key))


class NewFarms:
    """A test's own farms (the ``simfarm_new_farm`` fixture): ``new_farm(cameras=1, spec=None)``
    makes one, ``new_farm.remove(farm)`` removes it; whatever is left goes after the test.

    Remove them through this, not ``farm.teardown()``: that looks the farm up
    in the current ``$SIMFARM_STATE_DIR``, which a suite may point elsewhere
    during a test (see ``WorkerFarms.pinned_state``).
    """

    def __init__(self, pool: WorkerFarms, spec: CameraSpec) -> None:
        self._pool = pool
        self._spec = spec
        self._made: list[Farm] = []

    def __call__(self, cameras: int = 1, spec: CameraSpec | None = None) -> Farm:
        self._made.append(self._pool.new_farm(cameras, spec or self._spec))
        return self._made[-1]

    def remove(self, farm: Farm) -> None:
        self._made.remove(farm)
        self._pool.remove(farm)

    def remove_all(self) -> None:
        while self._made:
            self.remove(self._made[-1])
