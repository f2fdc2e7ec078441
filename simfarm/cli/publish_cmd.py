"""`simfarm snapshot` and `simfarm recordings`: what a publishing farm's MediaMTX serves and records."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import BadInput
from ..farm.farm import Farm
from . import table

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("snapshot",
                       description="Decode one frame from CAMERA's MediaMTX path (a publishing farm's camera "
                                   "index), or from an rtsp:// URL or video file, write it to FILE and print "
                                   "its frame code. Exit 1 when the frame carries no code.")
    s.add_argument("camera", help="a camera index of the farm, or an rtsp:// URL or video file")
    s.add_argument("-o", "--output", required=True, help="FILE.png or FILE.jpg")
    s.add_argument("--farm", default="default")
    s.add_argument("--timeout", type=float, help="seconds to wait for a picture (default 60)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(run=_snapshot)

    r = sub.add_parser("recordings")
    r.add_argument("camera", nargs="?", type=_index, help="only this camera")
    r.add_argument("--farm", default="default")
    r.add_argument("--json", action="store_true")
    r.set_defaults(run=_recordings)


def describe(status: dict) -> str:
    """The publishing part of a farm's status: the server, then each camera's URLs and path state."""
    publish = status["publish"]
    version = publish["version"]
    if not publish.get("camera_paths", True):
        return (f"MediaMTX {version} (pid {publish['pid']}) for the service under test, no paths of simfarm's: "
                f"api {publish['api']}, rtsp {publish['rtsp']}, log {publish['log']} (simfarm env prints them)")
    if publish["managed"]:
        server = (f"MediaMTX {version} (pid {publish['pid']}): api {publish['api']}, rtsp {publish['rtsp']}, "
                  f"log {publish['log']}")
    else:
        server = f"MediaMTX {version} at {publish['api']} (not managed by simfarm): rtsp {publish['rtsp']}"
    cameras = table.render(["camera", "rtsp", "available", "readers", "proxied (fault proxy)", "toxics", "restarts"],
                           [[c["camera"], c["rtsp_url"], "yes" if c["available"] else "NO", c["readers"],
                             c["proxy_url"], ", ".join(c["toxics"]) or "-", c["publisher_restarts"]]
                            for c in status["cameras"]])
    return f"{server}\n{cameras}"


def _index(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"camera {text!r} is not an index")
    return int(text)


def _snapshot(args: argparse.Namespace) -> int:
    # Imported here: `simfarm status` uses describe() and must not load OpenCV.
    import cv2

    from ..frames.snapshot import SNAPSHOT_TIMEOUT_S, grab

    out = Path(args.output)
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise BadInput(f"-o {out}: write a {' or '.join(IMAGE_SUFFIXES)} file")
    if not out.parent.is_dir():
        raise BadInput(f"-o {out}: directory {out.parent} does not exist")
    source = Farm.attach(args.farm).camera(int(args.camera)).rtsp_url if args.camera.isdigit() else args.camera
    image, code = grab(source, timeout=SNAPSHOT_TIMEOUT_S if args.timeout is None else args.timeout)
    if not cv2.imwrite(str(out), image):
        raise BadInput(f"cannot write image {out}")
    if args.json:
        print(json.dumps({"source": source, "file": str(out), "code": code and {
            "camera": code.camera, "sequence": code.sequence, "time_ms": code.time_ms}}))
    elif code is None:
        print(f"wrote {out} from {source}: no frame code in it")
    else:
        print(f"wrote {out} from {source}: camera {code.camera}, sequence {code.sequence}, sent at "
              f"{code.time_ms} ms (of the 2^20 ms wrap)")
    return 0 if code is not None else 1


def _recordings(args: argparse.Namespace) -> int:
    segments = Farm.attach(args.farm).recordings(args.camera)
    if args.json:
        print(json.dumps([segment.to_json() for segment in segments], indent=2))
    elif not segments:
        print("no recording segments (provision with --publish --record; the first appears within seconds)")
    else:
        print(table.render(["path", "start", "size", "complete", "file"],
                           [[s.path, s.start.isoformat(timespec="milliseconds"), s.size, "yes" if s.complete else
                             "writing", s.file] for s in segments]))
    return 0
