"""`simfarm patterns list` and `simfarm patterns render`."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import cv2

from .. import binaries
from ..errors import BadInput, EnvironmentProblem
from ..patterns import PatternLibrary
from ..producers.offline import stamped_frames
from ..spec import CameraSpec, PixelFormat

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("patterns")
    p.add_argument("--patterns-dir", action="append", default=[], help="extra directory of pattern files")
    actions = p.add_subparsers(dest="action", required=True)
    ls = actions.add_parser("list", help="built-in and user patterns")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(run=_list)
    r = actions.add_parser("render", help="one frame to an image, or --frames N to a video with codes")
    r.add_argument("name")
    r.add_argument("--size", default="640x480")
    r.add_argument("--fps", default="30")
    r.add_argument("--frames", type=int, help="render a video of N frames (default: one image)")
    r.add_argument("--camera", type=int, default=0, help="camera id carried in the frame codes")
    r.add_argument("-o", "--output", required=True, help="OUT.png for one frame; .mp4/.mkv/.avi/.mov for video")
    r.set_defaults(run=_render)


def _list(args: argparse.Namespace) -> int:
    library = PatternLibrary(args.patterns_dir)
    entries = [library.get(name) for name in library.names()]
    if args.json:
        print(json.dumps([{"name": p.name, "description": p.description, "base": p.base,
                           "file": str(p.source)} for p in entries], indent=2))
    else:
        width = max(len(p.name) for p in entries)
        for p in entries:
            print(f"{p.name:<{width}}  {p.description}")
    return 0


def _render(args: argparse.Namespace) -> int:
    out = Path(args.output)
    video = args.frames is not None
    if video and args.frames < 1:
        raise BadInput("--frames must be at least 1")
    if video == (out.suffix.lower() in IMAGE_SUFFIXES):
        raise BadInput(f"-o {out}: use an image file for one frame, a video file with --frames")
    if not out.parent.is_dir():
        raise BadInput(f"-o {out}: directory {out.parent} does not exist")
    library = PatternLibrary(args.patterns_dir)
    fmt = PixelFormat.YU12 if video else PixelFormat.BGR24
    spec = CameraSpec.parse(size=args.size, fps=args.fps, pattern=args.name, format=fmt)
    frames = stamped_frames(spec, library, args.frames or 1, camera=args.camera)
    if not video:
        image = next(frames).reshape(spec.size.height, spec.size.width, 3)
        if not cv2.imwrite(str(out), image):
            raise BadInput(f"cannot write image {out}")
    else:
        _encode(frames, spec, out)
    print(f"wrote {out}")
    return 0


def _encode(frames, spec: CameraSpec, out: Path) -> None:
    """Pipe yuv420p frames into FFmpeg; H.264 (short GOP) unless the container says otherwise."""
    codec = ["-c:v", "mjpeg", "-q:v", "3"] if out.suffix.lower() == ".avi" else \
        ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", str(max(1, round(spec.fps)))]
    cmd = [binaries.require("ffmpeg"), "-nostdin", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", str(spec.size), "-r", str(spec.fps), "-i", "pipe:0",
           *codec, "-pix_fmt", "yuv420p", str(out)]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdin is not None
        try:
            for frame in frames:
                proc.stdin.write(frame.tobytes())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        if proc.wait() != 0:
            out.unlink(missing_ok=True)
            raise EnvironmentProblem(f"ffmpeg could not write {out}: {err.splitlines()[-1] if err else proc.returncode}")
