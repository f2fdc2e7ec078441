"""The loopback backend's device-level faults, carried out by the process that runs the camera
(the producer only knows frames):

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
import os
from collections.abc import Callable

from ...devices.loopback import nodes as loopback_nodes, params as loopback_params
from ...devices.v4l2 import nodes
from ...devices.v4l2.nodes import NodeBusy
from ...errors import BadInput, EnvironmentProblem, SimfarmError
from ...faults import FaultHandle, FaultListener, FaultSpec
from ...spec import CameraSpec
from ...state.records import global_lock
from ..device_faults import DeviceFaults
from ..live import LiveCamera

_RENEGOTIATIONS = ("resize", "reformat")


class LoopbackDeviceFaults(DeviceFaults[LiveCamera]):
    """unplug, replug, resize and reformat on v4l2loopback nodes fed by simfarm's producers.

    ``hotplug()`` is False on v4l2loopback 0.12, which cannot add or remove a node at run time.
    A replugged node gets ``max_buffers`` frame buffers, like the farm's other nodes.
    """

    def __init__(self, save_record: Callable[[], None], listener: FaultListener, *,
                 hotplug: Callable[[], bool], max_buffers: int) -> None:
        super().__init__(save_record, listener)
        self._hotplug = hotplug
        self._max_buffers = max_buffers

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
                loopback_nodes.remove(number, cam.node.label, timeout=0)
            except NodeBusy as busy:
                held_by = cam.held_by = busy.pids
                loopback_nodes.remove(number, cam.node.label, timeout=timeout)
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
            cam.node.number = loopback_nodes.create(cam.node.label, max_buffers=self._max_buffers)
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
