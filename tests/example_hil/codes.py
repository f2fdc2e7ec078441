"""The frames the example services see, reduced to the codes simfarm stamped in them."""

from __future__ import annotations

import subprocess

import numpy as np

from simfarm import Camera, FrameCode, PixelFormat, Size, decode
from simfarm.frames import pixfmt

from . import camera_service


def grabbed_codes(cam: Camera, count: int) -> list[FrameCode | None]:
    """The codes of the next ``count`` frames the service grabs (None where a frame has none)."""
    codes = []
    for frame in camera_service.grab(cam.device, count):
        luma = pixfmt.luma(np.frombuffer(frame.data, np.uint8), PixelFormat.from_fourcc(frame.fourcc),
                           Size(frame.width, frame.height))
        codes.append(decode(luma))
    return codes


def gray_frames(source: str, count: int, size: tuple[int, int]) -> np.ndarray:
    """``count`` frames of an RTSP URL or a file, as luma, via FFmpeg."""
    args = ["-rtsp_transport", "tcp"] if source.startswith("rtsp://") else []
    out = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", *args, "-i", source,
                          "-frames:v", str(count), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         capture_output=True, timeout=120, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, size[1], size[0])


def size_of(cam: Camera) -> tuple[int, int]:
    return cam.spec.size.width, cam.spec.size.height
