"""Worker processes: a farm's cameras spread over several processes, so that it uses the cores.

One Python process writes frames on one core at a time; a farm of many
cameras needs more. The supervisor has the backend (a backends.base.WorkerBackend:
loopback, uvc) record every camera and make what it can (loopback: the nodes,
under the global lock, as ever), renders the patterns' cycles, and then forks
the workers, each of which starts its share of the cameras (uvc: plugs its
webcams in, since a webcam's USB device is answered by a thread of the
process that runs it) and runs them in a CameraHost (host.py): their
producers, their frame-level faults (which act in those producers) and
device-level ones (which stop and restart them; a node a worker makes or
replugs is written to the farm record under the record lock, see
state.amend_record). A worker answers on its own socket, ``worker-K.sock``
in the farm's directory; the supervisor sends a camera's requests to the
worker running it, sends farm-wide ones (status, faults, clear all,
scenario) to all and merges their replies.

Why fork, not a fresh interpreter: a fork costs milliseconds where importing
numpy and the farm again costs seconds (tens under emulation), and it shares
the pre-rendered cycles between the workers copy-on-write. Workers are forked
before the supervisor starts any thread.

A worker is recorded in the farm record (``processes``) before it does
anything, so reclaim kills it as it kills the supervisor. A worker that dies
is seen at once (a thread of its supervisor waits on it) and restarted
(restarts.py says how soon, and when to give up): the supervisor makes its
cameras ready again (backend.recover: loopback's nodes stay, uvc's webcams
are plugged in again by the new worker) and forks a new worker for them,
whose producers carry on from where the dead one's stood (ProgressBoard, in
memory they share). Meanwhile, and once given up, status shows its cameras
in state ``error`` saying why, requests for them fail, and teardown removes
its nodes as ever.

A restart forks the supervisor while it runs threads (control server,
metrics, the other watchers). The child runs only _serve, which touches
nothing those threads lock: the pool's state it reads is fixed once the
workers first start, and the supervisor's own sockets it inherits it never
uses.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..backends.base import ProducedCamera, WorkerBackend
from ..errors import BadInput, EnvironmentProblem, SimfarmError
from ..faults import FaultLog
from ..producers.build import shared_cycle
from ..producers.progress import ProgressBoard
from ..producers.sources import Cycle
from ..state.records import FarmRecord, NodeRecord, ProcessId, amend_record
from . import control
from .host import CameraHost
from .restarts import CrashHistory
from .scenario_run import Router, write_done

# How long the supervisor waits for a worker to start at all, beyond its cameras' own start
# (one after another, each given its backend's start_s).
START_SLACK_S = 30.0


@dataclass
class Worker:
    """One worker as its supervisor sees it."""

    index: int
    cameras: list[ProducedCamera]
    socket: Path
    pid: int = 0
    process: ProcessId | None = None  # as recorded in the farm record
    error: str | None = None  # why it is down (dead, restarting, given up)
    restarts: int = 0
    crashes: CrashHistory = field(default_factory=CrashHistory)
    exited: threading.Event = field(default_factory=threading.Event)  # for good: no restart follows

    def to_json(self) -> dict:
        return {"worker": self.index, "pid": self.pid, "cameras": [cam.index for cam in self.cameras],
                "error": self.error, "restarts": self.restarts}


class WorkerPool:
    """The supervisor's side: forks the workers, routes requests to them and merges the replies."""

    def __init__(self, record: FarmRecord, backend: WorkerBackend, cameras: list[ProducedCamera],
                 router: Router) -> None:
        self.record = record
        self.backend = backend
        self.cameras = cameras
        self.router = router
        self.workers: list[Worker] = []
        self._stopping = threading.Event()
        self._started = False  # every worker has started once: from then on a dead one is restarted
        self._fork_lock = threading.Lock()  # one fork at a time, none once stopping
        self._lock = threading.Lock()
        # Scenario runs spread over workers, by log path: the workers whose parts have events, and
        # those whose parts ended (or died with them).
        self._parts: dict[str, set[int]] = {}
        self._parts_done: dict[str, set[int]] = {}
        self._ready: list[int] = []  # readiness pipes of workers forked so far, closed in later ones
        # The cameras' pre-rendered cycles, held for the farm's life: the workers inherit them.
        self._cycles: list[Cycle] = []
        # Where each camera's producer stands, shared with the workers: a restart carries on from it.
        self._board = ProgressBoard(len(cameras))

    def start(self, count: int, private_fds: tuple[int, ...] = ()) -> None:
        """Make the nodes, render the cycles, fork ``count`` workers and wait until all stream.

        ``private_fds`` are the supervisor's alone: closed in each worker. On
        failure the workers forked so far stay in ``workers`` for close().
        """
        self.backend.make_nodes(self.record, self.cameras)
        self._cycles = [shared_cycle(cam.spec, cam.library) for cam in self.cameras
                        if cam.spec.producer == "numpy"]
        for cam in self.cameras:
            cam.track(self._board.cell(cam.index), None)
        shares = [self.cameras[k::count] for k in range(count)]
        # Out of the collector's sight: a collection in a worker would otherwise write to (and so
        # copy) every page of the supervisor's heap that the worker shares.
        gc.freeze()
        for k, share in enumerate(shares):
            worker = Worker(k, share, self.record.directory / f"worker-{k}.sock")
            self.workers.append(worker)
            self._ready.append(self._fork(worker, private_fds))
        for worker in self.workers:
            threading.Thread(target=self._watch, args=(worker,), name=f"watch-worker-{worker.index}",
                             daemon=True).start()
        deadline = time.monotonic() + START_SLACK_S + self.backend.start_s * max(map(len, shares))
        for worker, ready in zip(self.workers, self._ready):
            with os.fdopen(ready, "rb") as pipe:
                wait = max(0.0, deadline - time.monotonic())
                line = pipe.readline() if select.select([pipe], [], [], wait)[0] else b""
            reply = json.loads(line or b'{"ok": false}')
            if not reply["ok"]:
                raise EnvironmentProblem(f"worker {worker.index} did not start: "
                                         f"{reply.get('error') or worker.error or 'no reply in time'}")
        self._ready.clear()  # read and closed: their numbers are free for other files
        self._learn_nodes()
        self._started = True

    def _learn_nodes(self, cameras: list[ProducedCamera] | None = None) -> None:
        """Take the nodes the workers made (a uvc webcam's, numbered by uvcvideo) from the farm record."""
        saved = FarmRecord.load(self.record.name)
        numbers = {node.camera: node for node in saved.nodes} if saved else {}
        for cam in self.cameras if cameras is None else cameras:
            if (node := numbers.get(cam.index)) is not None:
                cam.node.number, cam.node.metadata = node.number, node.metadata

    def _fork(self, worker: Worker, private_fds: tuple[int, ...]) -> int:
        """Fork ``worker``, record it, then let it run; returns the pipe its readiness comes on."""
        go_read, go_write = os.pipe()
        ready_read, ready_write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            for fd in (go_write, ready_read, *private_fds, *self._ready):
                os.close(fd)
            code = 1
            try:
                if os.read(go_read, 1) == b"g":  # EOF: the supervisor died before recording us
                    code = _serve(self, worker, ready_write)
            finally:
                os._exit(code)  # never the supervisor's clean-up: it is the supervisor's
        os.close(go_read)
        os.close(ready_write)
        worker.pid = pid
        me, dead = ProcessId.of(pid), worker.process
        worker.process = me

        def note(record: FarmRecord) -> None:
            record.processes = [p for p in record.processes if dead is None or tuple(p) != tuple(dead)]
            if me is not None:
                record.processes.append(me)

        note(self.record)
        amend_record(self.record.name, note)
        os.write(go_write, b"g")
        os.close(go_write)
        return ready_read

    def _watch(self, worker: Worker) -> None:
        """Wait on ``worker``'s process, restarting it each time it dies, until stopping or given up."""
        while True:
            _, status = os.waitpid(worker.pid, 0)
            if self._stopping.is_set():
                break
            code = os.waitstatus_to_exitcode(status)
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            died = f"worker {worker.index} (pid {worker.pid}) died: {how}"
            self._parts_died(worker.index)
            delay = worker.crashes.crashed(time.monotonic()) if self._started else None
            worker.error = (died if not self._started else
                            f"{died}; restarting" if delay is not None else worker.crashes.given_up(worker.index))
            print(f"supervisor: {worker.error if worker.error.startswith(died) else f'{died}; {worker.error}'}",
                  file=sys.stderr, flush=True)
            if delay is None or self._stopping.wait(delay) or not self._restart(worker):
                break
        worker.exited.set()

    def _restart(self, worker: Worker) -> bool:
        """Fork a new process for ``worker``'s cameras, carrying on where the dead one's producers stood.

        False once stopping (nothing forked). A new worker that fails to start exits, and its
        watcher sees it die.
        """
        self._learn_nodes(worker.cameras)  # a replug in the dead worker may have renumbered them
        try:
            self.backend.recover(self.record, worker.cameras)
        except SimfarmError as exc:
            print(f"supervisor: worker {worker.index}: its cameras cannot be made ready: {exc}",
                  file=sys.stderr, flush=True)  # its start fails too, and counts as a crash
        for cam in worker.cameras:
            cell = self._board.cell(cam.index)
            cam.track(cell, cell.read())
        with self._fork_lock:
            if self._stopping.is_set():
                return False
            ready = self._fork(worker, ())
        worker.restarts += 1
        wait = START_SLACK_S + self.backend.start_s * len(worker.cameras)
        with os.fdopen(ready, "rb") as pipe:
            line = pipe.readline() if select.select([pipe], [], [], wait)[0] else b""
        if json.loads(line or b'{"ok": false}')["ok"]:
            worker.error = None
            print(f"supervisor: worker {worker.index} restarted (pid {worker.pid})", file=sys.stderr, flush=True)
        elif not line:
            os.kill(worker.pid, signal.SIGKILL)  # stuck starting (or dead already): a crash like any other
        return True

    # -- requests ---------------------------------------------------------
    def handle(self, request: dict) -> dict:
        """A camera request (host.CAMERA_OPS), or a worker's ``scenario_part_done``."""
        op = request.get("op")
        if op == "fault" or (op == "clear" and not request.get("all")):
            timeout = float(request.get("timeout", 10.0)) + 30.0
            return self._ask(self._owner(request.get("camera")), request, timeout)
        if op == "clear":
            return {"cleared": [i for reply in self._ask_all(request) for i in reply["cleared"]]}
        if op == "faults":
            return {"faults": [f for reply in self._ask_all(request) for f in reply["faults"]]}
        if op == "scenario":
            return self._scenario(request)
        if op == "scenario_part_done":
            self._part_done(str(request.get("log")), int(request.get("worker", -1)))
            return {}
        raise BadInput(f"unknown op {op!r} (known: status, stop, fault, clear, faults, scenario)")

    def status(self) -> list[dict]:
        """Every camera's status, by index; a dead worker's cameras in state ``error``."""
        with ThreadPoolExecutor(max(1, len(self.workers))) as pool:
            shares = list(pool.map(self._status_of, self.workers))
        merged = [{**entry, "worker": worker.index} for worker, share in zip(self.workers, shares)
                  for entry in share]
        return sorted(merged, key=lambda entry: entry["camera"])

    def _status_of(self, worker: Worker) -> list[dict]:
        try:
            return self._ask(worker, {"op": "status"})["cameras"]
        except EnvironmentProblem as exc:  # dead, or dying: its watcher has the reason, or soon will
            return [_failed(cam, worker.error or str(exc)) for cam in worker.cameras]

    def _scenario(self, request: dict) -> dict:
        replies = self._ask_all({**request, "farm_cameras": [cam.index for cam in self.cameras]})
        log = request.get("log")
        if log is not None and (parts := {w.index for w, reply in zip(self.workers, replies) if reply["events"]}):
            with self._lock:
                self._parts[log] = parts
            self._settle(log)
        first = replies[0]
        return {**first, "events": sum(reply["events"] for reply in replies),
                "origins": {camera: seq for reply in replies for camera, seq in reply["origins"].items()}}

    def _part_done(self, log: str, worker: int) -> None:
        with self._lock:
            self._parts_done.setdefault(log, set()).add(worker)
        self._settle(log)

    def _parts_died(self, worker: int) -> None:
        """``worker`` died: its parts of running scenarios ended with it (the restart runs none)."""
        with self._lock:
            logs = [log for log, parts in self._parts.items() if worker in parts]
        for log in logs:
            self._part_done(log, worker)

    def _settle(self, log: str) -> None:
        """Write the run's ``done`` line once every worker's part of it has ended."""
        with self._lock:
            parts = self._parts.get(log)
            if parts is None or not parts <= self._parts_done.get(log, set()):
                return
            del self._parts[log]
            self._parts_done.pop(log)
        write_done(FaultLog.open(log), log)

    def _owner(self, index: object) -> Worker:
        worker = next((w for w in self.workers for cam in w.cameras if cam.index == index
                       and not isinstance(index, bool)), None)
        if worker is None:
            raise BadInput(f"no camera {index!r} in farm {self.record.name} (cameras 0..{len(self.cameras) - 1})")
        return worker

    def _ask(self, worker: Worker, request: dict, timeout: float = 30.0) -> dict:
        if worker.error is not None:
            raise EnvironmentProblem(f"cameras {', '.join(str(cam.index) for cam in worker.cameras)} are "
                                     f"gone: {worker.error}")
        return control.request(worker.socket, request, timeout=timeout)

    def _ask_all(self, request: dict) -> list[dict]:
        """Ask every worker, in parallel; a dead one fails the request, naming it."""
        with ThreadPoolExecutor(max(1, len(self.workers))) as pool:
            return list(pool.map(lambda worker: self._ask(worker, request), self.workers))

    # -- stopping ---------------------------------------------------------
    def close(self, timeout: float = 10.0) -> None:
        """Stop every worker (their producers; the nodes stay for the supervisor to reclaim)."""
        with self._fork_lock:
            self._stopping.set()  # no restart from now on; a backoff wait ends at once
        for worker in self.workers:
            if worker.exited.is_set():
                continue
            try:
                control.request(worker.socket, {"op": "stop"}, timeout=timeout)
            except SimfarmError:
                # Not answering: dead (waiting to restart: that wait ends now), restarting (its SIGTERM
                # handler ends it once started), or stuck (killed below).
                if worker.process is not None and worker.process.alive():
                    os.kill(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            if not worker.exited.wait(timeout):
                os.kill(worker.pid, signal.SIGKILL)
                # A process stuck in the kernel dies only when the kernel lets go: leave it to reclaim.
                if not worker.exited.wait(timeout):
                    print(f"worker {worker.index} (pid {worker.pid}) did not die within {timeout:g} s of SIGKILL",
                          file=sys.stderr, flush=True)

    def summary(self) -> list[dict]:
        return [worker.to_json() for worker in self.workers]


def _failed(cam: ProducedCamera, error: str) -> dict:
    return {"camera": cam.index, "label": cam.node.label, "device": cam.device, "state": "error",
            "spec": cam.spec.to_json(), "running": False, "error": error, "held_by": None, "faults": []}


# -- the worker's side ------------------------------------------------------
def _serve(pool: WorkerPool, worker: Worker, ready: int) -> int:
    """Run ``worker``'s share of ``pool`` until told to stop; in the forked child."""
    record, router = pool.record, pool.router
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    cameras = worker.cameras
    # The cameras' FaultSets report to this router (they were made with it): in this process a
    # scenario's run log is only a part, and the supervisor writes ``done`` once all parts end.
    router.finished = _part_finished(record.directory / control.SOCKET, worker.index)
    backend = pool.backend
    save = _node_saver(record.name, cameras)
    host = CameraHost(record.name, backend, list(cameras), router, backend.device_faults(record, router, save))
    server = None
    try:
        backend.start_cameras(cameras, save)

        def handle(request: dict) -> dict:
            if request.get("op") == "stop":
                stop.set()
                return {"stopping": True}
            return host.handle(request)

        server = control.ControlServer(worker.socket, handle)
        control.tell(ready, {"ok": True})
    except (SimfarmError, OSError) as exc:
        print(f"worker {worker.index}: start failed: {exc}", file=sys.stderr, flush=True)
        control.tell(ready, {"ok": False, "error": str(exc)})
        host.close()
        return 1
    stop.wait()
    server.close()
    host.close()
    return 0


def _node_saver(name: str, cameras: list[ProducedCamera]) -> Callable[[], None]:
    """Writes this worker's cameras' nodes (a replug's new number) into the farm record, and nothing else."""
    def put(record: FarmRecord) -> None:
        ours: dict[int, NodeRecord] = {cam.index: cam.node for cam in cameras}
        record.nodes = [ours.get(node.camera, node) for node in record.nodes]

    def save() -> None:
        amend_record(name, put)

    return save


def _part_finished(supervisor: Path, worker: int) -> Callable[[FaultLog, str | None], None]:
    def finished(log: FaultLog, path: str | None) -> None:
        log.close()
        if path is not None:
            control.request(supervisor, {"op": "scenario_part_done", "log": path, "worker": worker})

    return finished
