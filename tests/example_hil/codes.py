"""The frames the camera service grabs, reduced to the codes simfarm stamped in them."""

from __future__ import annotations

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
