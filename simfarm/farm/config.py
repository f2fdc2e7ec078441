"""Farm files: a YAML description of a farm, one spec per camera.

    name: lab                 # farm name (default: default)
    backend: vivid            # loopback (default), vivid or uvc
    nodes: 40-43              # node numbers, or a list; default: the kernel picks
    patterns_dirs: [mine]     # relative to this file
    defaults: {size: 640x480, fps: 30, format: YUYV, pattern: smpte75}
                              # uvc: also profile (a camera profile's name or file)
    cameras:                  # a count, or one mapping per camera
      - {pattern: ball}
      - {size: 1280x720, producer: ffmpeg, source: testsrc2}
    publish: true             # each camera a MediaMTX path (see publishing.py)
    service_mediamtx: true    # or: a MediaMTX with no paths of simfarm's, for the service under test
    record: true              # ... recorded into the farm's directory
    record_segment: 10s       # segment length (default 1h)
    mediamtx: /opt/mediamtx   # the binary (default: $SIMFARM_MEDIAMTX, then PATH)
    mediamtx_api: http://127.0.0.1:9997   # or an existing server instead
    workers: 4                # processes writing the frames (default: one per core; 0: the supervisor)
    usbip_listen: 0.0.0.0:3240  # uvc: offer the webcams over USB/IP instead of plugging them in here
    usbip_allow: [192.168.1.0/24]  # ... to these networks (a CIDR, a list, or comma-separated)
    metrics_listen: 127.0.0.1:9464  # serve the farm's figures to Prometheus here
    loopback_buffers: 16      # frame buffers per loopback node, 4..32 (default 4; PipeWire needs 16)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import yamlfile
from ..devices.loopback.control import check_max_buffers
from ..errors import BadInput, SimfarmError
from ..faults.durations import parse_duration
from ..spec import CameraSpec, parse_backend, parse_node_numbers

if TYPE_CHECKING:
    from .publish_plan import PublishOptions

PUBLISH_KEYS = ("publish", "service_mediamtx", "record", "record_segment", "mediamtx", "mediamtx_api")
# Keys whose value is one address (checked when the farm is provisioned).
ADDRESS_KEYS = ("usbip_listen", "metrics_listen")
KEYS = {"name", "backend", "nodes", "patterns_dirs", "defaults", "cameras", "workers", "usbip_allow",
        "loopback_buffers", *ADDRESS_KEYS, *PUBLISH_KEYS}


@dataclass
class FarmPlan:
    """A farm file's content, before the CLI's flags are applied."""

    name: str = "default"
    backend: str | None = None
    nodes: list[int] | None = None
    patterns_dirs: list[str] = field(default_factory=list)
    defaults: dict = field(default_factory=dict)
    camera_specs: list[dict] | None = None
    publishing: dict = field(default_factory=dict)  # the file's PUBLISH_KEYS
    workers: int | None = None
    usbip_listen: str | None = None
    usbip_allow: list[str] = field(default_factory=list)
    metrics_listen: str | None = None
    loopback_buffers: int | None = None

    def cameras(self, count: int | None, overrides: dict,
                base: Callable[[Mapping[str, object]], CameraSpec] | None = None) -> list[CameraSpec]:
        """One spec per camera: ``base`` (the backend's default for what is given) < file defaults <
        per-camera entries < flags."""
        entries = self.camera_specs or [{}] * (count if count is not None else 1)
        if count is not None and self.camera_specs and count != len(self.camera_specs):
            raise BadInput(f"--cameras {count} contradicts the farm file's {len(self.camera_specs)} cameras")
        specs = []
        for entry in entries:
            try:
                given = {**self.defaults, **entry, **overrides}
                specs.append(CameraSpec.parse(**{**(base(given) if base else CameraSpec()).to_json(), **given}))
            except SimfarmError as exc:
                if isinstance(entry, yamlfile.Located):
                    raise BadInput(f"{entry.where()}: {exc}") from None
                raise
        return specs

    def publish(self, overrides: dict) -> PublishOptions | None:
        """How the farm publishes (None: it does not): file < command-line flags (``PUBLISH_KEYS``)."""
        given = {**self.publishing, **{key: value for key, value in overrides.items() if value}}
        if given.get("publish") and given.get("service_mediamtx"):
            raise BadInput("publish and service-mediamtx exclude each other: the farm's publishers would hold "
                           "the nodes the service reads")
        if not (given.get("publish") or given.get("service_mediamtx")):
            if extra := [key for key in PUBLISH_KEYS[2:] if given.get(key)]:
                raise BadInput(f"{extra[0].replace('_', '-')} needs publish or service-mediamtx "
                               "(--publish, or publish: true)")
            return None
        segment = given.get("record_segment")
        if segment is not None and not given.get("record"):
            raise BadInput("record-segment needs record (--record, or record: true)")
        from .publish_plan import PublishOptions  # here: it brings the MediaMTX client, which only publishing needs

        return PublishOptions(record=bool(given.get("record")), mediamtx=given.get("mediamtx"),
                              api=given.get("mediamtx_api"), camera_paths=not given.get("service_mediamtx"),
                              segment_seconds=None if segment is None else _whole_seconds(segment))


def _whole_seconds(value: object) -> int:
    seconds = parse_duration(value, "record segment")
    if seconds != int(seconds):
        raise BadInput(f"record segment {value!r} must be a whole number of seconds")
    return int(seconds)


def load(path: str) -> FarmPlan:
    data = yamlfile.load(path)
    if not isinstance(data, yamlfile.Located):
        raise BadInput(f"{path}:1: a farm file is a mapping (name, cameras, ...)")
    data.check_keys(KEYS, "farm file")
    base = Path(path).parent
    plan = FarmPlan(name=str(data.get("name", "default")))
    if "backend" in data:
        try:
            plan.backend = parse_backend(data["backend"])
        except BadInput as exc:
            raise data.fail("backend", str(exc)) from None
    if "nodes" in data:
        try:
            plan.nodes = parse_node_numbers(data["nodes"])
        except BadInput as exc:
            raise data.fail("nodes", str(exc)) from None
    dirs = data.get("patterns_dirs", [])
    if not isinstance(dirs, list):
        raise data.fail("patterns_dirs", "patterns_dirs is a list of directories")
    plan.patterns_dirs = [str(base / d) for d in dirs]
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise data.fail("defaults", "defaults is a mapping of camera settings")
    plan.defaults = dict(defaults)
    for key in PUBLISH_KEYS:
        if key in data:
            value = data[key]
            wanted: type | tuple[type, ...] = bool if key in ("publish", "service_mediamtx", "record") else \
                (str, int, float) if key == "record_segment" else str
            if not isinstance(value, wanted) or (wanted is not bool and isinstance(value, bool)):
                raise data.fail(key, f"{key} is {'true or false' if wanted is bool else 'text'}, not {value!r}")
            plan.publishing[key] = value
    if "workers" in data:
        workers = data["workers"]
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise data.fail("workers", f"workers is a count of processes (0 or more), not {workers!r}")
        plan.workers = workers
    for key in ADDRESS_KEYS:
        if key in data:
            if not isinstance(address := data[key], str):
                raise data.fail(key, f"{key} is an address such as 127.0.0.1:3240, not {address!r}")
            setattr(plan, key, address)
    if "usbip_allow" in data:
        allow = data["usbip_allow"]
        allow = [allow] if isinstance(allow, str) else allow
        if not isinstance(allow, list) or not all(isinstance(item, str) for item in allow):
            raise data.fail("usbip_allow", f"usbip_allow is a CIDR or a list of them, not {data['usbip_allow']!r}")
        plan.usbip_allow = allow
    if "loopback_buffers" in data:
        if plan.backend not in (None, "loopback"):
            raise data.fail("loopback_buffers", f"loopback_buffers sizes a loopback node's ring, not a "
                                                f"{plan.backend} camera's")
        try:
            plan.loopback_buffers = check_max_buffers(data["loopback_buffers"])
        except BadInput as exc:
            raise data.fail("loopback_buffers", str(exc)) from None
    cams = data.get("cameras")
    if isinstance(cams, int) and not isinstance(cams, bool):
        plan.camera_specs = [{}] * cams
    elif isinstance(cams, list) and all(isinstance(c, dict) for c in cams):
        plan.camera_specs = cams
    elif cams is not None:
        raise data.fail("cameras", "cameras is a count or a list of camera mappings")
    try:
        plan.cameras(None, {})
    except BadInput as exc:
        msg = str(exc)
        raise exc if msg.startswith(path) else data.fail("defaults" if "defaults" in data else None, msg) from None
    return plan
