"""The Stamper's per-frame fast path writes exactly the bytes a full stamp writes."""

from __future__ import annotations

import numpy as np
import pytest

from simfarm.frames import pixfmt
from simfarm.frames.code import FrameCode, decode
from simfarm.frames.stamp import Stamper, working_format
from simfarm.spec import PixelFormat, Size


@pytest.mark.parametrize("fmt", [f for f in PixelFormat if f is not PixelFormat.MJPEG])
@pytest.mark.parametrize("size", [Size(320, 240), Size(720, 480), Size(1366, 768)])
def test_a_ring_frame_stamped_again_equals_one_stamped_once(fmt: PixelFormat, size: Size) -> None:
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (size.height, size.width, 3), dtype=np.uint8)
    ring = pixfmt.from_rgb(rgb, working_format(fmt))
    stamper = Stamper(fmt, size)
    codes = [FrameCode(3, n, 1000 + 33 * n) for n in (0, 1, 2**31 + 5, 2**32 - 1)]
    for code in codes:
        sent = stamper.stamp(ring, code, frame_index=0, wall_time=0.0, reused=True)
        once = Stamper(fmt, size).stamp(pixfmt.from_rgb(rgb, working_format(fmt)), code, frame_index=0,
                                        wall_time=0.0)
        assert np.array_equal(sent, once)
        assert decode(pixfmt.luma(sent, fmt, size)) == code
