"""Running a scenario file inside the supervisor, so its log repeats from run to run.

The scenario starts on each camera at the top of that camera's next frame
slot, in the producer thread: its frame-level faults are added with start
times on that camera's stream clock (origin + ``at``), which counts served
slots, so each one starts a fixed number of slots after the origin whatever
the scheduler did. The log gets a ``scenario`` line per camera naming the
sequence number at the origin; subtract it and two runs with the same seed
give the same sequence numbers. Device and
stream faults are carried out by a timer thread at their times, by wall clock.

A run's faults go to the farm's log and to the run's own log (``log``), which
ends with a ``done`` line and is closed once every fault of the run has
ended (a fault leaves ``faults`` a moment before its end line is written, so
wait for ``done``, not for an empty ``faults``). A device step the farm
refuses (a replug of a camera that is plugged in) gets a ``refused`` line
with the error in both logs instead, and the run stops waiting for it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from ..backends.live import LiveCamera
from ..errors import BadInput, EnvironmentProblem, SimfarmError
from ..faults import FaultHandle, FaultLog, FaultSpec, Scenario, ScheduledFault

# How long the request waits for every camera's next slot (a slot is at most a second at 1 fps).
_ORIGIN_TIMEOUT_S = 5.0


RunFinished = Callable[[FaultLog, "str | None"], None]


def write_done(log: FaultLog, path: str | None) -> None:
    """End a run's log: its last line says every fault of the run has ended."""
    log.note({"event": "done", "wall": time.time()})
    log.close()


class Router:
    """The farm's FaultListener: every fault to the farm log, a scenario's also to its run log.

    ``finished(log, path)`` is called once the last fault of a run has ended
    (``path``: the run log's, as requested); it writes the ``done`` line, or,
    in a worker process that runs a part of the run, tells the supervisor.
    """

    def __init__(self, farm_log: FaultLog, finished: RunFinished = write_done) -> None:
        self.farm_log = farm_log
        self.finished = finished
        self._lock = threading.Lock()
        self._routes: dict[tuple[int, str], FaultLog] = {}
        self._paths: dict[FaultLog, str | None] = {}

    def route(self, keys: list[tuple[int, str]], log: FaultLog, path: str | None = None) -> None:
        with self._lock:
            if taken := next((key for key in keys if key in self._routes), None):
                raise BadInput(f"a scenario with fault {taken[1]!r} on camera {taken[0]} is still running")
            self._routes.update(dict.fromkeys(keys, log))
            self._paths[log] = path

    def fault_started(self, handle: FaultHandle) -> None:
        self.farm_log.fault_started(handle)
        if log := self._routes.get((handle.camera, handle.id)):
            log.fault_started(handle)

    def fault_ended(self, handle: FaultHandle) -> None:
        self.farm_log.fault_ended(handle)
        self._unroute((handle.camera, handle.id), lambda log: log.fault_ended(handle))

    def step_refused(self, event: ScheduledFault, error: str) -> None:
        """A scenario step the farm refused (a replug of a camera that is plugged in): both logs
        say so, and the run no longer waits for it to end."""
        line = {"event": "refused", "fault": event.fault_id, "camera": event.camera, **event.spec.to_json(),
                "error": error, "wall": time.time(), "sequence": None}
        self.farm_log.note(line)
        self._unroute((event.camera, event.fault_id), lambda log: log.note(line))

    def _unroute(self, key: tuple[int, str], write: Callable[[FaultLog], None]) -> None:
        with self._lock:
            log = self._routes.pop(key, None)
            last = log is not None and log not in self._routes.values()
            path = self._paths.pop(log, None) if last and log is not None else None
        if log is not None:
            write(log)
            if last:  # the run's last fault: its log is complete, and says so for whoever tails it
                self.finished(log, path)


DeviceAction = Callable[[LiveCamera, ScheduledFault], object]


def comparable(lines: list[dict]) -> list[dict]:
    """A run's log (as read by ``read_log``) in the form two runs with one seed share.

    Sequence numbers become relative to each camera's origin, wall times go,
    and lines are sorted (cameras log from their own threads, so lines of
    different cameras interleave differently from run to run).
    """
    origin = {line["camera"]: line["sequence"] for line in lines if line["event"] == "scenario"}

    def rebase(line: dict) -> dict:
        base = origin[line["camera"]]
        out = {key: value for key, value in line.items() if key != "wall"}
        out["sequence"] = None if line["sequence"] is None else line["sequence"] - base
        if line.get("started"):
            out["started"] = {"sequence": line["started"]["sequence"] - base}
        if "touched" in line:
            out["touched"] = [[first - base, last - base] for first, last in line["touched"]]
        return out

    rebased = [rebase(line) for line in lines if line["event"] not in ("scenario", "done")]
    return sorted(rebased, key=lambda line: json.dumps(line, sort_keys=True))


def run_scenario(path: str, seed: int | None, log_path: str | None, cameras: list[LiveCamera],
                 router: Router, device_action: DeviceAction, cancel: threading.Event, *,
                 check: Callable[[LiveCamera, FaultSpec], None] = lambda cam, spec: None,
                 farm_cameras: list[int] | None = None) -> dict:
    """Schedule ``path`` on ``cameras``; returns once every camera has its origin.

    ``check`` refuses (raising BadInput) a fault a camera cannot take, before anything is scheduled.
    ``farm_cameras``: the whole farm's camera indices when ``cameras`` are a worker's share of
    them; the run is scheduled for the farm (so a seed gives the same faults however the farm is
    split) and this share's events run here.
    """
    scenario = Scenario.load(path)
    seed = scenario.seed if seed is None else seed
    by_camera = {cam.index: cam for cam in cameras}
    events = [event for event in scenario.schedule(farm_cameras or list(by_camera), seed)
              if event.camera in by_camera]
    for event in events:
        check(by_camera[event.camera], event.spec)
    framed = [event for event in events if event.spec.frame_level]
    if stopped := sorted({event.camera for event in framed if by_camera[event.camera].producer is None}):
        raise BadInput(f"camera {stopped[0]} is not streaming: its frame faults could not start "
                       "(a uvc webcam streams only while a reader streams it)")
    reply = {"scenario": str(Path(path)), "seed": seed, "events": len(events), "origins": {},
             "duration_s": scenario.duration_s, "log": log_path}
    if not events:  # nothing of the run here (a worker's share of the cameras): nothing to log
        return reply
    log = FaultLog.open(log_path or os.devnull)
    try:
        router.route([(event.camera, event.fault_id) for event in events], log, log_path)
    except BadInput:
        log.close()
        raise
    reply["origins"] = _start_on_slots(scenario, seed, framed, by_camera, log)
    devices = [event for event in events if not event.spec.frame_level]
    if devices:
        threading.Thread(target=_device_timeline, args=(devices, by_camera, device_action, router, cancel),
                         name="scenario-devices", daemon=True).start()
    return reply


def _start_on_slots(scenario: Scenario, seed: int, framed: list[ScheduledFault],
                    by_camera: dict[int, LiveCamera], log: FaultLog) -> dict[int, int]:
    origins: dict[int, int] = {}
    cameras = sorted({event.camera for event in framed})
    lock, all_started = threading.Lock(), threading.Event()

    def start(camera: int, origin: float, sequence: int) -> None:
        log.note({"event": "scenario", "camera": camera, "file": scenario.path, "seed": seed,
                  "sequence": sequence})
        for event in framed:
            if event.camera == camera:
                by_camera[camera].faults.add(event.spec, fault_id=event.fault_id,
                                             start=origin + event.time_s, seed=seed)
        with lock:  # the producer thread must not wait for the others: it has frames to write
            origins[camera] = sequence
            if len(origins) == len(cameras):
                all_started.set()

    for camera in cameras:
        producer = by_camera[camera].producer
        assert producer is not None  # run_scenario refused cameras that are not streaming
        producer.at_next_slot(partial(start, camera))
    if cameras and not all_started.wait(_ORIGIN_TIMEOUT_S):
        raise EnvironmentProblem("the cameras did not reach their next frame slot in time")
    return origins


def _device_timeline(events: list[ScheduledFault], by_camera: dict[int, LiveCamera],
                     action: DeviceAction, router: Router, cancel: threading.Event) -> None:
    began = time.monotonic()
    for event in events:
        if cancel.wait(max(0.0, began + event.time_s - time.monotonic())):
            return
        try:
            action(by_camera[event.camera], event)
        except SimfarmError as exc:  # one failed step does not stop the rest of the timeline
            router.step_refused(event, str(exc))
