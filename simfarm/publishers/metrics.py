"""A farm's figures for Prometheus (``--metrics-listen``), in its text format.

Every scrape turns the supervisor's own status (the reply `simfarm status`
gets) into metric families, so the metrics say exactly what status says and
nothing reads a camera's counters twice. The scrape runs on the HTTP
server's thread: the producers never wait for it. Names and labels follow
Prometheus' conventions (``_total`` counters, units in names, ``farm`` and
``camera`` labels); prometheus-client renders them.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import make_wsgi_app
from prometheus_client.registry import Collector, CollectorRegistry

from ..errors import BadInput
from ..listen import endpoint
from ..procfs import stat_fields

CAMERA = ("farm", "camera", "label")
_TICKS = os.sysconf("SC_CLK_TCK")
# (status key, metric name, help) of each camera counter; a camera without the key (vivid) has none.
_CAMERA_COUNTERS = (
    ("written", "simfarm_frames_written", "Frames the camera's producer wrote"),
    ("late", "simfarm_frames_late", "Frames written after their slot"),
    ("dropped", "simfarm_frames_dropped", "Frames dropped by faults or skipped slots"),
)


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU time of process ``pid`` (None once it has ended)."""
    fields = stat_fields(pid)
    # utime and stime are fields 14 and 15 of /proc/PID/stat; stat_fields starts at field 3.
    return None if fields is None else (int(fields[11]) + int(fields[12])) / _TICKS


class FarmCollector(Collector):
    """The metric families of one status reply, asked for afresh at each scrape."""

    def __init__(self, status: Callable[[], Mapping[str, Any]]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        farm = status["farm"]
        yield _gauge("simfarm_farm_start_time_seconds", "When the farm's supervisor started (Unix time)",
                     ("farm", "backend"), [((farm, status["backend"]), status["started_at"])])
        yield from _process_cpu(farm, status)
        yield from _worker_restarts(farm, status)
        cameras = status["cameras"]
        keys = [(farm, str(cam["camera"]), cam["label"]) for cam in cameras]
        for key, name, text in _CAMERA_COUNTERS:
            yield _counter(name, text, CAMERA, [(k, cam[key]) for k, cam in zip(keys, cameras) if key in cam])
        yield _gauge("simfarm_camera_fps", "Frames per second the camera delivers now", CAMERA,
                     [(k, cam["fps"]) for k, cam in zip(keys, cameras) if "fps" in cam])
        yield _gauge("simfarm_camera_active_faults", "Faults active on the camera", CAMERA,
                     [(k, len(cam.get("faults") or ())) for k, cam in zip(keys, cameras)])
        yield _gauge("simfarm_camera_state", "1 for the camera's state (streaming, unplugged, error, ...)",
                     (*CAMERA, "state"), [((*k, cam["state"]), 1) for k, cam in zip(keys, cameras)])
        yield _gauge("simfarm_camera_uptime_seconds", "Seconds the camera's producer has run", CAMERA,
                     [(k, cam["uptime_s"]) for k, cam in zip(keys, cameras) if "uptime_s" in cam])
        yield from _publishing(keys, cameras)
        yield from _usb(keys, cameras)


def _process_cpu(farm: str, status: Mapping[str, Any]) -> Iterator[Metric]:
    processes = [("supervisor", status["supervisor_pid"])]
    processes += [(f"worker-{worker['worker']}", worker["pid"]) for worker in status.get("workers", ())
                  if worker.get("pid")]
    samples = [((farm, role), cpu) for role, pid in processes if (cpu := cpu_seconds(pid)) is not None]
    yield _counter("simfarm_process_cpu_seconds", "CPU time of the farm's supervisor and worker processes",
                   ("farm", "process"), samples)


def _worker_restarts(farm: str, status: Mapping[str, Any]) -> Iterator[Metric]:
    """How often each worker process died and was restarted (absent on a farm without workers)."""
    if workers := status.get("workers"):
        yield _counter("simfarm_worker_restarts", "Times the supervisor restarted the worker after it died",
                       ("farm", "worker"), [((farm, str(w["worker"])), w.get("restarts", 0)) for w in workers])


def _publishing(keys: list[tuple[str, ...]], cameras: list[dict]) -> Iterator[Metric]:
    """MediaMTX's view of a publishing farm's paths (absent elsewhere)."""
    published = [(k, cam) for k, cam in zip(keys, cameras) if "available" in cam]
    if not published:
        return
    yield _gauge("simfarm_mediamtx_path_available", "1 while the camera's MediaMTX path is available", CAMERA,
                 [(k, int(bool(cam["available"]))) for k, cam in published])
    yield _gauge("simfarm_mediamtx_path_readers", "Readers of the camera's MediaMTX path", CAMERA,
                 [(k, len(cam.get("readers") or ())) for k, cam in published])
    yield _counter("simfarm_mediamtx_publisher_restarts", "Restarts of the camera's publishing FFmpeg", CAMERA,
                   [(k, cam.get("publisher_restarts", 0)) for k, cam in published])


def _usb(keys: list[tuple[str, ...]], cameras: list[dict]) -> Iterator[Metric]:
    """USB webcams' own figures: frames the host had not taken, and what USB/IP importers were served."""
    yield _counter("simfarm_usb_frames_dropped", "Frames a USB webcam dropped: the host had not taken the last",
                   CAMERA, [(k, cam["usb"]["dropped"]) for k, cam in zip(keys, cameras)
                            if "dropped" in (cam.get("usb") or {})])
    exported = [(k, cam["usbip"]) for k, cam in zip(keys, cameras) if cam.get("usbip")]
    if not exported:
        return
    yield _gauge("simfarm_usbip_imported", "1 while a USB/IP importer has the webcam", (*CAMERA, "busid"),
                 [((*k, usbip["busid"]), int(usbip.get("state") == "imported")) for k, usbip in exported])
    yield _counter("simfarm_usbip_frames_served", "Frames served to USB/IP importers", (*CAMERA, "busid"),
                   [((*k, usbip["busid"]), usbip.get("frames", 0)) for k, usbip in exported])
    yield _counter("simfarm_usbip_served_bytes", "Bytes of frames served to USB/IP importers", (*CAMERA, "busid"),
                   [((*k, usbip["busid"]), usbip.get("bytes", 0)) for k, usbip in exported])


def _counter(name: str, text: str, labels: tuple[str, ...], samples: list[tuple[tuple, float]]) -> Metric:
    family = CounterMetricFamily(name, text, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


def _gauge(name: str, text: str, labels: tuple[str, ...], samples: list[tuple[tuple, float]]) -> Metric:
    family = GaugeMetricFamily(name, text, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """Scrapes come every few seconds: none is worth a line in the supervisor's log."""


class MetricsServer:
    """The HTTP endpoint (``GET /metrics``, any path in fact) of one farm's collector.

    Bound when made, so a taken or unusable address fails provisioning before any
    camera exists; served from :meth:`start`, which starts its thread (after the
    supervisor has forked its workers: a fork copies no thread)."""

    def __init__(self, address: tuple[str, int], status: Callable[[], Mapping[str, Any]]) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FarmCollector(status))
        server_class = _server_class(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
        try:
            self._server = make_server(*address, make_wsgi_app(registry), server_class, _Quiet)
        except OSError as exc:
            raise BadInput(f"metrics listen address {endpoint(*address)}: cannot listen there: "
                           f"{exc.strerror or exc}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)

    @property
    def listen(self) -> str:
        """The address and port listened on (the port bound when port 0 asked for a free one)."""
        host, port = self._server.server_address[:2]
        return endpoint(str(host), int(port))

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


def _server_class(family: socket.AddressFamily) -> type[WSGIServer]:
    class Server(ThreadingMixIn, WSGIServer):
        address_family = family
        daemon_threads = True  # a slow scraper never holds shutdown
    return Server
