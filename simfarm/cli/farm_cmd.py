"""`simfarm provision` (`status` and `teardown` are in status_cmd: they need none of the specs)."""

from __future__ import annotations

import argparse

from ..farm.farm import Farm
from ..spec import BACKENDS, CameraSpec, parse_node_numbers
from . import publish_cmd, table
from .args import seconds


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("provision",
                       description="--backend vivid: the kernel's vivid driver makes each camera (a capture node "
                                   "and a metadata node) and draws its frames (no codes): for disconnect while "
                                   "open and driver-level errors (simfarm fault --help); it takes a size, fps "
                                   "and format that vivid offers, no pattern, producer, source or nodes. "
                                   "--backend uvc: each camera is a USB webcam on the virtual USB bus (vhci-hcd), "
                                   "driven by uvcvideo, as --profile describes it; its readers choose the format, "
                                   "size and rate among the profile's, and --size/--fps/--format are the stream "
                                   "simfarm checks it with.")
    p.add_argument("--backend", choices=BACKENDS, help="loopback (default): v4l2loopback nodes fed by simfarm; "
                                                       "vivid: the kernel's vivid test driver; uvc: USB webcams")
    p.add_argument("--profile", help="uvc: camera profile, a name (simfarm profiles) or a .yaml file "
                                     "(default generic-720p)")
    p.add_argument("--cameras", "-n", type=int, help="number of cameras (default 1, or the config's)")
    p.add_argument("--size", help="WxH, default 640x480 (vivid: 640x360; uvc: the profile's first)")
    p.add_argument("--fps", help="frames per second, default 30")
    p.add_argument("--format", help="pixel format: YUYV (default), UYVY, NV12, YU12, GREY, RGB24, BGR24, MJPEG")
    p.add_argument("--pattern", help="pattern name (simfarm patterns list), default smpte75")
    p.add_argument("--producer", choices=["numpy", "ffmpeg"], help="numpy (default) or ffmpeg")
    p.add_argument("--source", help="ffmpeg producer input: lavfi source (testsrc2) or a file")
    p.add_argument("--farm", default=None, help="farm name (default: 'default')")
    p.add_argument("--config", help="farm file (YAML) with per-camera specs")
    p.add_argument("--nodes", type=parse_node_numbers, help="node numbers to use, e.g. 40-43 (default: kernel picks)")
    p.add_argument("--patterns-dir", action="append", default=[], help="extra directory of pattern files")
    p.add_argument("--timeout", type=seconds, default=60.0, help="seconds to wait for verified frames")
    p.add_argument("--workers", type=int, help="processes writing the frames (default: one per core, at most one "
                   "per camera; 0: the supervisor itself); loopback and uvc farms that do not publish")
    u = p.add_argument_group("webcams over the network (uvc; import them with usbip attach or simfarm attach)")
    u.add_argument("--usbip-listen", metavar="[ADDR][:PORT]",
                   help="offer the webcams from a USB/IP server on this address (default 127.0.0.1, port 3240; "
                        "[::1]:3240 for IPv6; port 0: a free one, see simfarm status) instead of plugging them "
                        "in here; no workers")
    u.add_argument("--usbip-allow", metavar="CIDR[,CIDR]", action="append", default=[],
                   help="networks whose machines may list and import the webcams (default: loopback only)")
    p.add_argument("--metrics-listen", metavar="[ADDR]:PORT",
                   help="serve the farm's figures to Prometheus on this address (default address 127.0.0.1; "
                        "port 0: a free one, see simfarm status)")
    m = p.add_argument_group("publishing through MediaMTX (needs the mediamtx binary; see README)")
    m.add_argument("--publish", action="store_true", default=None,
                   help="make each camera a MediaMTX path named after its label, fed by FFmpeg reading its node")
    m.add_argument("--service-mediamtx", action="store_true", default=None,
                   help="start a MediaMTX on free ports for the service under test, with no paths of simfarm's: "
                        "the service reads the nodes and adds its own paths through the API (see simfarm env)")
    m.add_argument("--record", action="store_true", default=None,
                   help="record every path (fMP4 segments) into the farm's directory (see simfarm recordings)")
    m.add_argument("--record-segment", metavar="DURATION", help="recording segment length, e.g. 10s (default 1h)")
    m.add_argument("--mediamtx", metavar="PATH", help="the mediamtx binary (default: $SIMFARM_MEDIAMTX, then PATH)")
    m.add_argument("--mediamtx-api", metavar="URL",
                   help="publish through this running MediaMTX (its API, e.g. http://127.0.0.1:9997) instead "
                        "of starting one; only the farm's paths are added and removed")
    p.set_defaults(run=_provision)


def _provision(args: argparse.Namespace) -> int:
    # Imported here: the backends bring in linuxpy and numpy, which status and teardown do without.
    from .. import backends
    from ..farm import config

    overrides = {k: getattr(args, k) for k in ("size", "fps", "format", "pattern", "producer", "source", "profile")
                 if getattr(args, k) is not None}
    plan = config.load(args.config) if args.config else config.FarmPlan()
    backend = backends.get(args.backend or plan.backend or "loopback")
    specs = plan.cameras(args.cameras, overrides, backend.default_spec)
    publish = plan.publish({key: getattr(args, key) for key in config.PUBLISH_KEYS})
    farm = Farm.provision(specs, name=args.farm or plan.name, nodes=args.nodes or plan.nodes,
                          patterns_dirs=[*plan.patterns_dirs, *args.patterns_dir], timeout=args.timeout,
                          backend=backend.name, publish=publish,
                          workers=args.workers if args.workers is not None else plan.workers,
                          usbip_listen=args.usbip_listen or plan.usbip_listen,
                          usbip_allow=args.usbip_allow or plan.usbip_allow,
                          metrics_listen=args.metrics_listen or plan.metrics_listen,
                          loopback_buffers=plan.loopback_buffers)
    status = farm.status()
    if usbip := status.get("usbip"):  # exported webcams: no node here, a busid to import
        print(table.render(["camera", "busid", "label", "state"],
                           [[c["camera"], c["usbip"]["busid"], c["label"], c["usbip"]["state"]]
                            for c in status["cameras"]]))
        print(f"farm {farm.name} (uvc): {len(status['cameras'])} webcams offered by the USB/IP server on "
              f"{usbip['listen']} (supervisor pid {farm.supervisor_pid}); import with: simfarm attach "
              f"{usbip['listen']} --camera LABEL, or usbip attach; stop with: simfarm teardown --farm {farm.name}")
        return 0
    print(table.render(
        ["camera", "node", "label", "size@fps", "format", "pattern", "metadata"],
        [[c.index, c.device, c.label, f"{c.spec.size}@{c.spec.fps}", c.spec.format.name, _source(c.spec, farm),
          c.metadata_device] for c in farm.cameras]))
    if publish:
        print(publish_cmd.describe(status))
    ready = {"loopback": "streaming verified frames", "vivid": "ready (a frame read from each)",
             "uvc": "plugged in (verified frames streamed from each)"}[farm.backend]
    print(f"farm {farm.name} ({farm.backend}): {len(farm.cameras)} cameras {ready} "
          f"(supervisor pid {farm.supervisor_pid}); stop with: simfarm teardown --farm {farm.name}")
    return 0


def _source(spec: CameraSpec, farm: Farm) -> str:
    if farm.backend == "vivid":
        return "vivid"
    if farm.backend == "uvc":
        return f"{spec.pattern} ({spec.profile})"
    return spec.pattern if spec.producer == "numpy" else f"ffmpeg:{spec.source}"
