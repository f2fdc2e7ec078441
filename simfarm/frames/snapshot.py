"""One decoded frame of a stream or a file, and the frame code it carries.

MediaMTX has no snapshot endpoint: a snapshot is the first picture an RTSP
reader decodes. FFmpeg's H.264 decoder shows nothing before the first
keyframe, so the wait is at most one keyframe interval (publishers send one
a second). The node itself is never read: the publisher streams from it.
"""

from __future__ import annotations

import os
import subprocess

import cv2
import numpy as np

from .. import binaries
from ..errors import BadInput, EnvironmentProblem
from . import video
from .code import FrameCode, decode

# FFmpeg starting, reading the stream's parameters and waiting for a keyframe:
# a second or two on a desktop, tens of seconds in a loaded emulated VM.
SNAPSHOT_TIMEOUT_S = 60.0


def grab(source: str, *, timeout: float = SNAPSHOT_TIMEOUT_S) -> tuple[np.ndarray, FrameCode | None]:
    """The first frame of ``source`` (an rtsp:// URL or a video file) as BGR, and its code (None: none found)."""
    url = "://" in source
    if not url and not os.path.isfile(source):
        raise BadInput(f"cannot read {source}: no such file")
    cmd = [binaries.require("ffmpeg"), "-nostdin", "-loglevel", "error",
           *video.rtsp_input_args(source),
           "-i", source, "-map", "0:v:0", "-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "pipe:1"]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(f"no picture from {source} within {timeout:g}s") from None
    image = cv2.imdecode(np.frombuffer(done.stdout, np.uint8), cv2.IMREAD_COLOR) if done.stdout else None
    if image is None:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no frame"]
        problem = EnvironmentProblem if url else BadInput
        raise problem(f"no picture from {source}: {reason[0]}")
    return image, decode(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
