"""Device-level faults on a running farm: the bookkeeping they share, and loopback's four.

:class:`DeviceFaults` gives each device-level fault a FaultHandle, marked
and logged like frame-level ones, ends timed ones when their duration
passes, and leaves what is done to the device to a backend's subclass
(vivid's is in vivid_farm.py). The loopback backend's, carried out by the
supervisor itself (the producer only knows frames):

- unplug stops the producer and removes the node, after checking it still
  carries our label. v4l2loopback refuses (EBUSY) while any fd is open on
  the node, so an unplug waits for readers to close, up to ``timeout``, and
  reports the pids that held it; if they outlast it the camera streams on as
  before and the error names them. Ending an unplug (clear, its duration, or
  a replug) plugs it again.
- replug adds the node again with the same label (its number may differ, as
  with real USB), records the number so teardown still owns it, and restarts
  the producer, which carries on the camera's sequence numbers and faults.
- resize and reformat stop the producer and reopen the node's output in the
  new format; ending them switches back. They are refused while any other
  process holds the node open, naming the pids: v4l2loopback 0.15 accepts
  the new output format then, but keeps the capture side's old format for
  as long as a reader holds the node, so readers (even ones opening later)
  would get frames cut to the old size (seen in the VM tier). The camera
  carries on unchanged. Readers the farm runs itself (a publishing farm's
  publisher) step off the node meanwhile and come back afterwards.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from ..devices import loopback, loopback_params, nodes
from ..devices.nodes import NodeBusy
from ..errors import BadInput, EnvironmentProblem, SimfarmError
from ..faults import FaultHandle, FaultListener, FaultSpec, Mark
from ..spec import CameraSpec
from .live import LiveCamera
from .state import global_lock

_RENEGOTIATIONS = ("resize", "reformat")


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


class LoopbackDeviceFaults(DeviceFaults[LiveCamera]):
    """unplug, replug, resize and reformat on v4l2loopback nodes fed by simfarm's producers.

    ``hotplug()`` is False on v4l2loopback 0.12, which cannot add or remove a node at run time.
    """

    def __init__(self, save_record: Callable[[], None], listener: FaultListener, *,
                 hotplug: Callable[[], bool]) -> None:
        super().__init__(save_record, listener)
        self._hotplug = hotplug

    def _start(self, cam: LiveCamera, spec: FaultSpec, timeout: float) -> dict:
        if spec.kind in ("unplug", "replug") and not self._hotplug():
            raise EnvironmentProblem(f"{spec.kind} needs v4l2loopback >= 0.13 (runtime add/remove); this farm "
                                     "runs on 0.12, whose nodes exist only while the module is loaded",
                                     loopback_params.NEEDS_CONTROL)
        if spec.kind == "replug":
            return self._replug(cam)
        if spec.kind == "unplug":
            return self._unplug(cam, timeout)
        return self._renegotiate(cam, spec)

    def _undo(self, cam: LiveCamera, handle: FaultHandle) -> None:
        if handle.kind == "unplug":
            self._plug(cam)
        else:
            self._switch(cam, cam.base_spec)

    def _unplug(self, cam: LiveCamera, timeout: float) -> dict:
        if not cam.plugged:
            raise BadInput(f"camera {cam.index} is already unplugged")
        number = cam.node.number
        assert number is not None
        cam.stop_stream()
        held_by: list[int] = []
        try:
            try:
                loopback.remove(number, cam.node.label, timeout=0)
            except NodeBusy as busy:
                held_by = cam.held_by = busy.pids
                loopback.remove(number, cam.node.label, timeout=timeout)
        except SimfarmError:
            cam.start_stream()  # readers outlasted the wait: the camera carries on as it was
            raise
        finally:
            cam.held_by = None
        cam.node.number = None
        self._save()
        return {"removed": nodes.node_path(number), "held_by": held_by}

    def _replug(self, cam: LiveCamera) -> dict:
        unplugged = next((h for h in cam.device_faults.values() if h.kind == "unplug"), None)
        if unplugged is None:
            raise BadInput(f"camera {cam.index} is plugged in: unplug it first")
        self.end(cam, unplugged, "replugged")
        return {"device": cam.device}

    def _plug(self, cam: LiveCamera) -> None:
        with global_lock():
            cam.node.number = loopback.create(cam.node.label)
            self._save()
        cam.start_stream()

    def _renegotiate(self, cam: LiveCamera, spec: FaultSpec) -> dict:
        if not cam.plugged:
            raise BadInput(f"camera {cam.index} is unplugged: replug it first")
        if busy := next((h for h in cam.device_faults.values() if h.kind in _RENEGOTIATIONS), None):
            raise BadInput(f"camera {cam.index} is already renegotiated by {busy.id} ({busy.spec}): clear it first")
        if spec.kind == "resize":
            wanted = dataclasses.replace(cam.spec, size=spec.params["size"])
        else:
            wanted = dataclasses.replace(cam.spec, format=spec.params["format"])
        self._switch(cam, wanted)
        return {"spec": wanted.to_json()}

    def _switch(self, cam: LiveCamera, spec: CameraSpec) -> None:
        with cam.node_to_itself():  # the farm's own readers (a publisher) step off the node meanwhile
            self._switch_now(cam, spec)

    def _switch_now(self, cam: LiveCamera, spec: CameraSpec) -> None:
        previous = cam.spec
        assert cam.device is not None
        if readers := [pid for pid in nodes.holders(cam.device) if pid != os.getpid()]:
            raise EnvironmentProblem(
                f"{cam.device} is held open (pids: {', '.join(map(str, readers))}): v4l2loopback keeps "
                f"the old capture format while readers hold it, so they would get misframed data",
                "close the readers, then renegotiate (or clear the fault) again")
        cam.stop_stream()
        cam.faults.set_format(spec.format, spec.size)
        try:
            cam.start_stream(spec)
        except SimfarmError:
            cam.faults.set_format(previous.format, previous.size)
            cam.start_stream(previous)
            raise
