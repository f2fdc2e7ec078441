"""Publishing a farm's cameras through MediaMTX, run inside the farm's supervisor.

Each camera becomes a MediaMTX path named after its label, fed by a
``runOnInit`` FFmpeg that reads the camera's node and publishes H.264 with a
keyframe a second (a snapshot or a new recording segment waits at most that
long). The server is either *managed* (started and owned by the supervisor,
its pid in the farm's record from the moment it exists, its config, logs
and recordings in the farm's state directory) or *external*
(``--mediamtx-api URL``: only the farm's paths are added, and removed at the
end; the server is otherwise left alone).

Paths are added through the API once the server is ready, in both cases, so
a path's publisher can be changed at run time (``replace``: MediaMTX stops
the old FFmpeg and starts the new one). A watchdog keeps each publisher in
step with its camera:

- off while the camera is unplugged or an unplug waits for readers: FFmpeg
  holds the node open, and v4l2loopback cannot remove a node that is open;
- pointed at the new node after a replug (the number may change);
- off while the camera renegotiates (resize, reformat: LiveCamera.node_to_itself),
  then started again, so it reads the new format;
- restarted when the path's ``inboundBytes`` stop growing while the camera
  writes frames: MediaMTX restarts a publisher that exits, not one that hangs.

Stream faults (Role.STREAM) are carried out here: ``kick`` through the API,
``publisher-loss`` and ``bitstream-noise`` by replacing the publisher, and
the toxics by the camera's TCP fault proxy, which sits in front of the RTSP
port (each camera has its own, so a toxic hits only that camera's readers).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import binaries
from ..backends.live import LiveCamera
from ..devices.v4l2 import nodes
from ..errors import BadInput, EnvironmentProblem, SimfarmError
from ..faults import FaultHandle, FaultListener, FaultSpec
from ..publishers.mediamtx import ApiClient, MediaMTX, RecordOptions, Version, path_entry, v4l2_publish_argv, versions
from ..publishers.mediamtx.process import kill_session
from ..publishers.ports import HOST
from ..publishers.proxy import TOXICS, FaultProxy
from ..state.records import FarmRecord, ProcessId
from .publish_plan import WORKDIR, path_name

WATCH_S = 1.0
STALL_S = 15.0  # longer than MediaMTX's fixed 5 s restart pause plus FFmpeg's start
READY_TIMEOUT_S = 90.0  # FFmpeg (libraries paged in over 9p in the VM) opening a node, sending a keyframe
STEP_OFF_TIMEOUT_S = 15.0  # MediaMTX stops a hook with SIGINT; FFmpeg finishes its output first


def path_settings(cam: LiveCamera, ffmpeg: str, version: Version) -> dict[str, Any]:
    """The path settings ``cam`` calls for now, as server ``version`` names them: no publisher ({}) or FFmpeg
    reading its node.

    No publisher while the camera is unplugged or an unplug waits for
    readers (the publisher would hold the node), or a publisher-loss is in
    force; the publisher corrupts its packets while a bitstream-noise is.
    """
    faults = {handle.kind: handle for handle in cam.stream_faults.values()}
    if "publisher-loss" in faults or cam.device is None or cam.held_by is not None:
        return {}
    noise = faults["bitstream-noise"].spec.params["amount"] if "bitstream-noise" in faults else None
    gop = max(1, round(float(cam.spec.fps)))  # a keyframe a second
    return versions.adapt(path_entry(v4l2_publish_argv(cam.device, gop=gop, ffmpeg=ffmpeg, noise=noise)), version)


def _rtsp_url(host: str, port: int, path: str) -> str:
    return f"rtsp://{f'[{host}]' if ':' in host else host}:{port}/{path}"


@dataclass(eq=False)
class _Feed:
    """One camera's path, publisher and proxy."""

    cam: LiveCamera
    name: str
    proxy: FaultProxy
    applied: dict[str, Any] | None = None  # the path's settings as last set
    restarts: int = 0  # by the watchdog
    off: bool = False  # kept off the node while the camera renegotiates
    guard: Callable[[], contextlib.AbstractContextManager[None]] | None = None  # in cam.node_guards
    # Flow watch: inboundBytes and the camera's frames written when last seen moving.
    seen_bytes: int = -1
    seen_written: int | None = None
    since: float = field(default_factory=time.monotonic)

    def flowing(self, inbound: int, written: int | None) -> None:
        self.seen_bytes, self.seen_written, self.since = inbound, written, time.monotonic()


class Publisher:
    """The farm's MediaMTX paths, their publishers, their proxies and their stream faults."""

    def __init__(self, api: ApiClient, rtsp: tuple[str, int], cameras: list[LiveCamera], listener: FaultListener,
                 server: MediaMTX | None, on_exit: Callable[[int], None], ffmpeg: str, version: Version) -> None:
        self.api = api
        self.version = version  # the server's: path settings are written as it names them
        self.rtsp = rtsp
        self.server = server
        self._listener = listener
        self._on_exit = on_exit
        self._ffmpeg = ffmpeg
        self._lock = threading.RLock()
        self._ids = itertools.count()
        self._timers: list[threading.Timer] = []
        self._feeds = {cam.index: _Feed(cam, path_name(cam.node.label), FaultProxy(rtsp, seed=cam.index))
                       for cam in cameras}
        for feed in self._feeds.values():
            feed.guard = guard = functools.partial(self._stepped_off, feed)
            feed.cam.node_guards.append(guard)
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="publisher-watchdog", daemon=True)

    @classmethod
    def start(cls, plan: dict[str, Any], record: FarmRecord, cameras: list[LiveCamera],
              listener: FaultListener) -> Publisher:
        """Start (or reach) the server, add a path per camera and wait until each is available.

        A managed server's pid goes into ``record.processes`` as soon as it
        exists. On failure everything started here is stopped again.
        """
        def launched(pid: int) -> None:
            if (proc := ProcessId.of(pid)) is not None:
                record.processes.append(proc)
                record.save()

        def exited(pid: int) -> None:
            record.processes = [proc for proc in record.processes if proc.pid != pid]
            record.save()

        ffmpeg = binaries.require("ffmpeg")
        server = None
        if plan["api"]:
            api = ApiClient(plan["api"])
            rtsp = api.rtsp_address()
            if rtsp is None:
                raise EnvironmentProblem(f"the MediaMTX at {plan['api']} has RTSP switched off", "set rtsp: yes")
            version = versions.of_server(api.info().version)
        else:
            options = RecordOptions(plan["record_format"], plan["segment_seconds"]) if plan["record"] else None
            server = MediaMTX.start(record.directory / WORKDIR, {}, record=options, binary=plan["binary"],
                                    on_launch=launched)
            api, rtsp, version = server.api, (HOST, server.ports.rtsp), server.version
        try:
            publisher = cls(api, rtsp, cameras, listener, server, exited, ffmpeg, version)
        except BaseException:
            if server is not None:
                server.stop()
                exited(server.pid)
            raise
        try:
            publisher._add_paths()
            for feed in publisher._feeds.values():
                publisher._wait_available(feed.name)
        except BaseException:
            publisher.close()
            raise
        publisher._watchdog.start()
        return publisher

    # -- what status shows ------------------------------------------------
    def publishes(self, cam: object) -> bool:
        """Whether ``cam`` has a path of simfarm's (not on a MediaMTX for the service under test)."""
        return isinstance(cam, LiveCamera) and cam.index in self._feeds

    def rtsp_url(self, cam: LiveCamera) -> str:
        return _rtsp_url(*self.rtsp, self._feeds[cam.index].name)

    def proxy_url(self, cam: LiveCamera) -> str:
        feed = self._feeds[cam.index]
        return _rtsp_url(HOST, feed.proxy.port, feed.name)

    def camera_status(self, cam: LiveCamera) -> dict[str, Any]:
        feed = self._feeds[cam.index]
        try:
            state = self.api.path(feed.name)
        except SimfarmError:  # the server is gone or failing: status still answers, saying unavailable
            state = None
        return {"path": feed.name, "rtsp_url": self.rtsp_url(cam), "proxy_url": self.proxy_url(cam),
                "available": bool(state and state.available), "readers": len(state.readers) if state else 0,
                "publisher_restarts": feed.restarts, "toxics": feed.proxy.toxics.active()}

    def status(self) -> dict[str, Any]:
        server = self.server
        api_port = urllib.parse.urlsplit(self.api.base_url).port
        return {"managed": server is not None, "camera_paths": bool(self._feeds), "api": self.api.base_url,
                "api_port": api_port, "rtsp": _rtsp_url(*self.rtsp, ""), "rtsp_port": self.rtsp[1],
                "pid": server.pid if server else None, "version": str(self.version),
                "log": str(server.files.log) if server else None,
                "recordings": str(server.files.recordings) if server else None}

    # -- stream faults -----------------------------------------------------
    def inject(self, cam: LiveCamera, spec: FaultSpec, *, fault_id: str | None = None) -> dict[str, Any]:
        """Carry out stream fault ``spec`` on ``cam``; returns the fault's JSON plus what was observed."""
        with self._lock:
            feed = self._feeds[cam.index]
            handle = FaultHandle(fault_id or f"c{cam.index}.s{next(self._ids)}", cam.index, spec,
                                 lambda h: self.end(cam, h, "cleared"))
            if handle.id in cam.stream_faults or handle.id in cam.device_faults or cam.faults.get(handle.id):
                raise BadInput(f"camera {cam.index} already has a fault {handle.id!r}")
            if same := next((h for h in cam.stream_faults.values() if h.kind == spec.kind), None):
                raise BadInput(f"camera {cam.index} already has {spec.kind} in force ({same.id}): clear it first")
            started = cam.mark()
            observed: dict[str, Any] = {}
            if spec.kind == "kick":
                observed["kicked"] = self._kick(feed, everyone=spec.params["who"] == "all")
            elif spec.kind in TOXICS:
                feed.proxy.set(spec.kind, **spec.params)
                cam.stream_faults[handle.id] = handle
            else:  # publisher-loss, bitstream-noise: path_settings reads them
                cam.stream_faults[handle.id] = handle
                try:
                    self._apply(feed)
                except SimfarmError:
                    del cam.stream_faults[handle.id]
                    raise
            handle.mark_started(started)
            self._listener.fault_started(handle)
            if spec.kind == "kick":
                handle.mark_ended(cam.mark(), "done")
                self._listener.fault_ended(handle)
            elif spec.duration_s is not None:
                timer = threading.Timer(spec.duration_s, self.end, (cam, handle, "duration"))
                timer.daemon = True
                self._timers = [t for t in self._timers if t.is_alive()] + [timer]
                timer.start()
            return {**handle.to_json(), **observed}

    def end(self, cam: LiveCamera, handle: FaultHandle, reason: str) -> None:
        """Undo a stream fault and log its end; a no-op once it has ended."""
        with self._lock:
            if cam.stream_faults.get(handle.id) is not handle:
                return
            del cam.stream_faults[handle.id]
            feed = self._feeds[cam.index]
            if handle.kind in TOXICS:
                feed.proxy.clear(handle.kind)
            else:
                self._apply(feed)
            handle.mark_ended(cam.mark(), reason)
            self._listener.fault_ended(handle)

    def _kick(self, feed: _Feed, *, everyone: bool) -> list[str]:
        kicked = []
        for session in self.api.rtsp_sessions():
            if session.path == feed.name and (everyone or session.state == "read"):
                self.api.kick_rtsp_session(session.id)
                kicked.append(session.id)
        return kicked

    # -- keeping publishers in step ----------------------------------------
    def _add_paths(self) -> None:
        added: list[str] = []
        try:
            for feed in self._feeds.values():
                if self.api.path_config(feed.name) is not None:
                    raise BadInput(f"MediaMTX at {self.api.base_url} already has a path {feed.name!r}, "
                                   "which simfarm did not make: remove it, or name the farm otherwise")
                feed.applied = path_settings(feed.cam, self._ffmpeg, self.version)
                self.api.add_path(feed.name, feed.applied)
                added.append(feed.name)
        except BaseException:
            for feed in self._feeds.values():
                if feed.name not in added:
                    feed.applied = None  # not ours: close() must not delete it
            raise

    @contextlib.contextmanager
    def _stepped_off(self, feed: _Feed) -> Iterator[None]:
        """The camera's publisher off its node until the context ends, then started again (in the new format)."""
        try:
            with self._lock:
                feed.off = True
                self._apply(feed)
            deadline = time.monotonic() + STEP_OFF_TIMEOUT_S
            # MediaMTX stops the hook in the background: wait until its FFmpeg has closed the node.
            while held := self._publisher_pids(feed):
                if time.monotonic() > deadline:
                    raise EnvironmentProblem(f"the publisher of camera {feed.cam.index} (pids {held}) did not let "
                                             f"go of {feed.cam.device} within {STEP_OFF_TIMEOUT_S:g}s")
                if self._stop.wait(0.1):
                    break
            yield
        finally:
            with self._lock:
                feed.off = False
                try:
                    self._apply(feed)
                except SimfarmError as exc:  # the watchdog tries again every WATCH_S
                    print(f"supervisor: publisher of camera {feed.cam.index} not restarted yet: {exc}", flush=True)

    @staticmethod
    def _publisher_pids(feed: _Feed) -> list[int]:
        """Holders of the camera's node whose command line names its path: its publisher (MediaMTX's child)."""
        device = feed.cam.device
        return [pid for pid in (nodes.holders(device) if device else [])
                if f"/{feed.name}".encode() in _cmdline(pid)]

    def _apply(self, feed: _Feed, *, force: bool = False) -> None:
        with self._lock:
            wanted = {} if feed.off else path_settings(feed.cam, self._ffmpeg, self.version)
            if force and wanted:
                self.api.replace_path(feed.name, {})  # a replace with the same settings would change nothing
            if force or wanted != feed.applied:
                self.api.replace_path(feed.name, wanted)
                feed.applied = wanted
                feed.flowing(-1, None)

    def _wait_available(self, name: str) -> None:
        if self.server is not None:  # its own wait also notices the server dying, and shows its log
            self.server.wait_available(name, READY_TIMEOUT_S)
        else:
            self.api.wait_available(name, READY_TIMEOUT_S, pause=lambda: self._stop.wait(0.1))

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_S):
            for feed in self._feeds.values():
                try:
                    self._apply(feed)
                    self._check_flow(feed)
                except SimfarmError as exc:  # one bad round does not end the watch
                    print(f"supervisor: publisher of camera {feed.cam.index}: {exc}", flush=True)

    def _check_flow(self, feed: _Feed) -> None:
        if not feed.applied:
            return
        state = self.api.path(feed.name)
        stats = feed.cam.producer.stats() if feed.cam.producer else None
        written = stats.written if stats else None
        if state is None or state.inbound_bytes != feed.seen_bytes or written == feed.seen_written:
            # Moving, or the camera itself writes nothing (a stall fault): nothing for a restart to fix.
            feed.flowing(state.inbound_bytes if state else -1, written)
        elif time.monotonic() - feed.since > STALL_S:
            print(f"supervisor: publisher of camera {feed.cam.index} sent nothing for {STALL_S:g}s: restarting it",
                  flush=True)
            self._apply(feed, force=True)
            feed.restarts += 1

    # -- the end -------------------------------------------------------------
    def close(self) -> None:
        """Stop the watchdog, end stream faults (logged as stopped), close proxies, stop or leave the server."""
        self._stop.set()
        if self._watchdog.is_alive():
            self._watchdog.join()
        with self._lock:
            for timer in self._timers:
                timer.cancel()
            for feed in self._feeds.values():
                for handle in feed.cam.stream_faults.values():
                    handle.mark_ended(feed.cam.mark(), "stopped")
                    self._listener.fault_ended(handle)
                feed.cam.stream_faults.clear()
                if feed.guard in feed.cam.node_guards:
                    feed.cam.node_guards.remove(feed.guard)
                feed.proxy.close()
        if self.server is not None:
            try:
                self.server.stop()
            finally:
                self._on_exit(self.server.pid)
            return
        for feed in self._feeds.values():
            if feed.applied is not None:
                try:
                    self.api.delete_path(feed.name)
                except SimfarmError as exc:  # the server went away: nothing of ours is left there
                    print(f"supervisor: could not remove MediaMTX path {feed.name}: {exc}", flush=True)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def reclaim(record: FarmRecord, timeout: float) -> None:
    """After a supervisor died: kill what its managed MediaMTX left (its FFmpegs), remove external paths.

    The server itself is in ``record.processes`` and already killed; its
    hooks live on in its session (see process.kill_session).
    """
    for proc in record.processes:
        if proc.alive() or ProcessId.of(proc.pid) is None:
            kill_session(proc.pid, timeout)
    plan = record.spec.get("publish") or {}
    if plan.get("api"):
        api = ApiClient(plan["api"], timeout=2)
        for node in record.nodes:
            try:
                api.delete_path(path_name(node.label))
            except SimfarmError:
                pass  # gone already, or the server is: nothing of ours left there
