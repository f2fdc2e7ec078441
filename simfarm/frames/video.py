"""Reading the luma of every frame of a video file or stream through FFmpeg.

Only luma is needed to decode frame codes, so FFmpeg converts to ``gray``
and we read exactly width*height bytes per frame.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .. import binaries
from ..errors import BadInput


@dataclass(frozen=True)
class LumaFrame:
    luma: np.ndarray
    received_ms: float | None  # wall clock at arrival, for live sources only


PROBE_TIMEOUT_S = 60.0


def probe_size(source: str) -> tuple[int, int]:
    """Width and height of the first video stream of ``source``."""
    try:
        result = subprocess.run(
            [binaries.require("ffprobe"), "-v", "error", *rtsp_input_args(source), "-select_streams", "v:0",
             "-show_entries", "stream=width,height", "-of", "json", source],
            capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # A stream whose parameter sets are damaged (bitstream noise) keeps ffprobe looking for them.
        raise BadInput(f"cannot read video from {source}: no stream parameters found within "
                       f"{PROBE_TIMEOUT_S:g} s") from None
    streams = json.loads(result.stdout or "{}").get("streams") if result.returncode == 0 else None
    if not streams:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no video stream"
        raise BadInput(f"cannot read video from {source}: {reason}")
    return int(streams[0]["width"]), int(streams[0]["height"])


def rtsp_input_args(source: str) -> list[str]:
    """FFmpeg's input options for reading ``source``.

    RTSP goes over TCP: UDP needs ports a test machine may not route, and MediaMTX may refuse it (461)."""
    return ["-rtsp_transport", "tcp"] if source.startswith("rtsp://") else []


def read_luma(source: str, *, max_frames: int | None = None, live: bool = False) -> Iterator[LumaFrame]:
    """Yield the luma plane of each frame; ``live`` stamps receive times."""
    width, height = probe_size(source)
    cmd = [binaries.require("ffmpeg"), "-nostdin", "-loglevel", "error", *rtsp_input_args(source), "-i", source,
           "-map", "0:v:0", "-vsync", "passthrough"]
    if max_frames:
        cmd += ["-frames:v", str(max_frames)]
    cmd += ["-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"]
    size = width * height
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        try:
            while (data := proc.stdout.read(size)) and len(data) == size:
                yield LumaFrame(np.frombuffer(data, np.uint8).reshape(height, width),
                                time.time() * 1000 if live else None)
        finally:
            proc.kill()
