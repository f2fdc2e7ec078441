"""A webcam's picture controls: each moves the picture measurably, the defaults leave it untouched,
and the frame code still decodes whatever the controls say."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from simfarm.frames.code import FrameCode, decode
from simfarm.frames.picture import ControlRange, Picture
from simfarm.frames import pixfmt
from simfarm.patterns import PatternLibrary
from simfarm.producers.build import build_source
from simfarm.producers.sources import PictureSource
from simfarm.frames.stamp import Stamper
from simfarm.spec import CameraSpec, PixelFormat, Size

RANGES = {"brightness": ControlRange(-64, 64, 0), "contrast": ControlRange(0, 100, 50),
          "saturation": ControlRange(0, 100, 64), "gain": ControlRange(0, 100, 0)}
GREY = np.tile(np.array([100, 160], np.uint8), 320 * 240)  # YUYV: luma 100, chroma 160


def test_at_the_defaults_the_frame_is_passed_through() -> None:
    assert Picture(RANGES).apply(GREY, PixelFormat.YUYV) is GREY


@pytest.mark.parametrize("control, value, luma, chroma", [
    ("brightness", 32, 100 + 64, 160),   # half the range up: +64 of 255 (rounded)
    ("brightness", -64, 0, 160),         # clipped at black
    ("contrast", 100, 72, 160),          # twice as far from mid-grey: 128 - 2 x 28
    ("gain", 50, 250, 160),              # x 2.5
    ("saturation", 0, 100, 128),         # no colour
    ("saturation", 96, 100, 176),        # 1.5 x as far from neutral
])
def test_each_control_moves_luma_or_chroma(control: str, value: int, luma: int, chroma: int) -> None:
    picture = Picture(RANGES)
    picture.set(control, value)
    out = picture.apply(GREY, PixelFormat.YUYV)
    assert out is not GREY and (int(out[0]), int(out[1])) == (luma, chroma)
    assert picture.values()[control] == value
    picture.set(control, RANGES[control].default)
    assert picture.apply(GREY, PixelFormat.YUYV) is GREY


def test_saturation_in_bgr_moves_each_pixel_towards_its_grey() -> None:
    picture = Picture(RANGES)
    picture.set("saturation", 0)
    out = picture.apply(np.array([0, 90, 180] * 4, np.uint8), PixelFormat.BGR24)
    assert out.tolist() == [90] * 12


@pytest.mark.parametrize("fmt", [PixelFormat.YUYV, PixelFormat.MJPEG])
def test_codes_decode_in_a_brightened_stream_and_the_ring_is_untouched(fmt: PixelFormat) -> None:
    spec = CameraSpec(size=Size(320, 240), fps=Fraction(15), format=fmt)
    source, overlays = build_source(spec, PatternLibrary())
    ring = source.frame(0).copy()
    picture = Picture(RANGES)
    picture.set("brightness", 40)
    adjusted = PictureSource(source, picture)
    stamper = Stamper(fmt, spec.size, overlays)
    frame = adjusted.frame(0)
    assert not adjusted.reuses_buffers
    sent = stamper.stamp(frame, FrameCode(3, 7, 1000), frame_index=0, wall_time=0.0,
                         reused=adjusted.reuses_buffers)
    luma = pixfmt.luma(np.asarray(sent), fmt, spec.size)
    assert decode(luma) == FrameCode(3, 7, 1000)
    assert np.array_equal(source.frame(0), ring)  # the shared cycle's copy is never adjusted in place
