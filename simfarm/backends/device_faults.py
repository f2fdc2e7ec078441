"""Device-level faults on a running farm: the bookkeeping every backend shares.

:class:`DeviceFaults` gives each device-level fault a FaultHandle, marked
and logged like frame-level ones, ends timed ones when their duration
passes, and leaves what is done to the device to a backend's subclass
(loopback's, vivid's and uvc's).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from ..errors import BadInput
from ..faults import FaultHandle, FaultListener, FaultSpec, Mark


class FaultedCamera(Protocol):
    """What the bookkeeping needs of a camera, whichever backend runs it."""

    index: int
    device_faults: dict[str, FaultHandle]  # device-level faults in force, by id

    def mark(self) -> Mark: ...

    def active_faults(self) -> list[FaultHandle]: ...


Cam = TypeVar("Cam", bound=FaultedCamera)


class DeviceFaults(Generic[Cam]):
    """Bookkeeping of device-level faults; a backend's subclass carries them out.

    ``save_record`` persists node numbers as they change.
    """

    def __init__(self, save_record: Callable[[], None], listener: FaultListener) -> None:
        self._save = save_record
        self._listener = listener
        # Reentrant: ending an unplug from a replug request happens inside it.
        self._lock = threading.RLock()
        self._ids = itertools.count()
        self._timers: list[threading.Timer] = []

    def apply(self, cam: Cam, spec: FaultSpec, *, fault_id: str | None = None,
              timeout: float = 10.0) -> dict:
        """Carry out ``spec`` on ``cam``; returns the handle's JSON plus what was observed."""
        with self._lock:
            handle = FaultHandle(fault_id or f"c{cam.index}.d{next(self._ids)}", cam.index, spec,
                                 lambda h: self.end(cam, h, "cleared"))
            if any(h.id == handle.id for h in cam.active_faults()):
                raise BadInput(f"camera {cam.index} already has a fault {handle.id!r}")
            started = cam.mark()
            observed = self._start(cam, spec, timeout)
            handle.mark_started(started)
            self._listener.fault_started(handle)
            if not spec.info.timed:  # instantaneous: it ends as it starts
                handle.mark_ended(cam.mark(), "done")
                self._listener.fault_ended(handle)
            else:
                cam.device_faults[handle.id] = handle
                if spec.duration_s is not None:
                    self._later(spec.duration_s, cam, handle)
            return {**handle.to_json(), **observed}

    def end(self, cam: Cam, handle: FaultHandle, reason: str) -> None:
        """Undo ``handle`` (plug in again, switch back, ...) and log its end; a no-op once ended."""
        with self._lock:
            if cam.device_faults.get(handle.id) is not handle:
                return
            self._undo(cam, handle)
            del cam.device_faults[handle.id]
            handle.mark_ended(cam.mark(), reason)
            self._listener.fault_ended(handle)

    def _start(self, cam: Cam, spec: FaultSpec, timeout: float) -> dict:
        """Do ``spec`` to the device; returns what was observed. Raises, changing nothing, when it cannot."""
        raise NotImplementedError

    def _undo(self, cam: Cam, handle: FaultHandle) -> None:
        """Undo a timed fault that is ending."""
        raise NotImplementedError

    def close(self, cameras: list[Cam]) -> None:
        """The farm is stopping: cancel pending ends and log every device fault as stopped, undoing none."""
        with self._lock:
            for timer in self._timers:
                timer.cancel()
            for cam in cameras:
                for handle in cam.device_faults.values():
                    handle.mark_ended(cam.mark(), "stopped")
                    self._listener.fault_ended(handle)
                cam.device_faults.clear()

    def _later(self, delay: float, cam: Cam, handle: FaultHandle) -> None:
        timer = threading.Timer(delay, self.end, (cam, handle, "duration"))
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()
