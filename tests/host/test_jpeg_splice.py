"""Spliced MJPEG frames are byte for byte the full encode of the frame, and readers decode their codes."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from fractions import Fraction

import cv2
import numpy as np
import pytest

from simfarm.frames import jpeg_splice, pixfmt
from simfarm.frames.code import FrameCode, decode, strip_height
from simfarm.frames.picture import ControlRange, Picture
from simfarm.frames.stamp import Stamper
from simfarm.patterns import PatternLibrary
from simfarm.producers.build import build_source
from simfarm.producers.sources import FrameSource, PictureSource
from simfarm.spec import CameraSpec, PixelFormat, Size

MJPEG = PixelFormat.MJPEG
CODES = [FrameCode(3, n, 1000 + 33 * n) for n in (0, 1, 2**31 + 5, 2**32 - 1)]


def full_encode(bgr: np.ndarray, quality: int = 85) -> bytes:
    """OpenCV's encode with a restart marker after every 16x16 MCU row (4:2:0): what the Stamper must send."""
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality,
                                          cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
                                          cv2.IMWRITE_JPEG_RST_INTERVAL, -(-bgr.shape[1] // 16)])
    assert ok
    return jpeg.tobytes()


@pytest.fixture
def encoded_heights(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The heights of the pictures the JPEG encoder is given, in order."""
    heights: list[int] = []
    encode = pixfmt.encode_jpeg_bgr

    def spy(bgr: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        heights.append(bgr.shape[0])
        return encode(bgr, *args, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(pixfmt, "encode_jpeg_bgr", spy)
    return heights


def stamp_ring(size: Size, overlays: Sequence[object] = (), seed: int = 7) -> list[np.ndarray]:
    """CODES stamped into one buffer holding a read-only noise picture (the hardest for the encoder,
    with many 0xFF data bytes), as a ring's are; each sent frame must be the full encode of the
    buffer as stamped."""
    content = np.random.default_rng(seed).integers(0, 256, size.height * size.width * 3, dtype=np.uint8)
    content.flags.writeable = False
    buffer = content.copy()
    stamper = Stamper(MJPEG, size, overlays)
    sent = []
    for index, code in enumerate(CODES):
        sent.append(stamper.stamp(buffer, code, frame_index=index, wall_time=0.0, reused=True, content=content))
        assert sent[-1].tobytes() == full_encode(buffer.reshape(size.height, size.width, 3)), index
    return sent


@pytest.mark.parametrize("size", [Size(64, 48), Size(96, 100), Size(320, 240), Size(330, 250), Size(640, 480),
                                  Size(1000, 334), Size(1280, 720), Size(1920, 1080)])
def test_a_spliced_frame_is_the_full_encode_of_the_stamped_frame(size: Size, encoded_heights: list[int]) -> None:
    sent = stamp_ring(size)
    assert [decode(pixfmt.luma(jpeg, MJPEG, size)) for jpeg in sent] == CODES
    top = -(-strip_height(size.width) // 16) * 16
    assert encoded_heights == [size.height] + [top] * (len(CODES) - 1)  # whole once, then only the top rows


def test_a_frame_whose_top_rows_are_all_of_it_is_encoded_whole(encoded_heights: list[int]) -> None:
    stamp_ring(Size(64, 16))  # a 6-row strip, so one MCU row: there is nothing below it to keep
    assert encoded_heights == [16] * len(CODES)


def test_top_rows_encoded_with_other_tables_are_not_spliced(monkeypatch: pytest.MonkeyPatch) -> None:
    encode, heights = pixfmt.encode_jpeg_bgr, []

    def other_tables_for_top_rows(bgr: np.ndarray, quality: int = 85, **kwargs: object) -> np.ndarray:
        heights.append(bgr.shape[0])
        return encode(bgr, quality if bgr.shape[0] == 240 else 50, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(pixfmt, "encode_jpeg_bgr", other_tables_for_top_rows)
    stamp_ring(Size(320, 240))
    assert heights == [240, 32, 240, 240, 240]  # tried once, then every frame encoded whole


def send(source: FrameSource, stamper: Stamper, index: int) -> tuple[np.ndarray, bytes]:
    """(sent, full encode of the frame as stamped) for frame ``index``, handed over as the Producer does."""
    frame = source.frame(index)
    sent = stamper.stamp(frame, FrameCode(1, index, index), frame_index=index, wall_time=0.0,
                         reused=source.reuses_buffers, content=source.content)
    return sent, full_encode(frame.reshape(source.size.height, source.size.width, 3))


def test_a_cycle_of_pictures_in_one_buffer_never_gets_another_pictures_rows(encoded_heights: list[int]) -> None:
    spec = CameraSpec(size=Size(320, 240), fps=Fraction(15), format=MJPEG, pattern="noise")  # 8 pictures
    source, overlays = build_source(spec, PatternLibrary())
    stamper = Stamper(MJPEG, spec.size, overlays)
    for index in range(20):
        sent, full = send(source, stamper, index)
        assert sent.tobytes() == full, index
    assert encoded_heights == [240] * 8 + [32] * 12  # each picture encoded whole once, then spliced


def test_picture_controls_bypass_the_splice_and_the_ring_is_spliced_again_at_the_defaults(
        encoded_heights: list[int]) -> None:
    spec = CameraSpec(size=Size(320, 240), fps=Fraction(15), format=MJPEG)
    ring, overlays = build_source(spec, PatternLibrary())
    picture = Picture({"brightness": ControlRange(-64, 64, 0)})
    source, stamper = PictureSource(ring, picture), Stamper(MJPEG, spec.size, overlays)
    brightness = {3: 40, 6: 0}  # from frame 3 brightened, from frame 6 back at the default
    means = []
    for index in range(9):
        if index in brightness:
            picture.set("brightness", brightness[index])
        sent, full = send(source, stamper, index)
        assert sent.tobytes() == full, index
        means.append(pixfmt.luma(sent, MJPEG, spec.size)[32:].mean())
    assert encoded_heights == [240, 32, 32, 240, 240, 240, 32, 32, 32]
    assert means[0] == means[1] == means[6] == means[8] < means[3] == means[5]


class _Patch:
    """A dynamic overlay: a box at (y, 0), a new grey level every frame."""

    def __init__(self, y: int, height: int) -> None:
        self.y, self.height = y, height

    def patch(self, frame_index: int, wall_time: float) -> tuple[int, int, np.ndarray]:
        return self.y, 0, np.full((self.height, 16, 3), 20 * frame_index % 256, np.uint8)


@pytest.mark.parametrize("y, height, spliced", [(60, 4, True), (60, 6, False), (400, 40, False)])
def test_overlays_below_the_top_rows_stop_the_splice(y: int, height: int, spliced: bool,
                                                     encoded_heights: list[int]) -> None:
    stamp_ring(Size(640, 480), [_Patch(y, height)])  # a 60-row strip: the top rows are 0..63
    assert encoded_heights[1:] == [64 if spliced else 480] * (len(CODES) - 1)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
@pytest.mark.parametrize("size", [Size(320, 240), Size(640, 480), Size(1280, 720)])
def test_ffmpeg_decodes_every_code_of_a_spliced_stream(size: Size) -> None:
    stream_bytes = b"".join(jpeg.tobytes() for jpeg in stamp_ring(size, seed=size.width))
    # Raw output in the decoder's own full-range 4:2:0, so no scaler runs (and warns) after it.
    decoded = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "warning", "-f", "mjpeg", "-i", "-",
                              "-f", "rawvideo", "-"],
                             input=stream_bytes, capture_output=True, check=True, timeout=60)
    # No complaint about the data (wrong restart numbers pass silently: the byte tests above catch those).
    assert decoded.stderr == b""
    frames = np.frombuffer(decoded.stdout, np.uint8).reshape(len(CODES), -1)
    assert [decode(pixfmt.luma(frame, PixelFormat.GREY, size)) for frame in frames] == CODES


@pytest.mark.parametrize("size", [Size(320, 240), Size(640, 480), Size(1280, 720), Size(176, 144)])
def test_a_reader_decodes_a_frames_code_from_its_top_rows_alone(size: Size) -> None:
    sent = stamp_ring(size)
    for code, jpeg in zip(CODES, sent):
        cut = jpeg_splice.top_rows(jpeg, strip_height(size.width))
        assert cut is not None
        top, height = cut
        assert strip_height(size.width) <= height < size.height and len(top) < len(jpeg)
        luma = pixfmt.luma(top, MJPEG, Size(size.width, height))
        assert decode(luma) == code
        # The top rows decode to the same samples as the whole frame's top rows.
        assert np.array_equal(luma, pixfmt.luma(jpeg, MJPEG, size)[:height])


def test_a_jpeg_not_laid_out_as_simfarm_encodes_is_not_cut() -> None:
    bgr = np.random.default_rng(3).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    plain = np.frombuffer(cv2.imencode(".jpg", bgr)[1].tobytes(), np.uint8)  # no restart markers
    assert jpeg_splice.top_rows(plain, strip_height(320)) is None
    every_two_rows = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
                                                cv2.IMWRITE_JPEG_RST_INTERVAL, 40])[1]
    assert jpeg_splice.top_rows(every_two_rows, strip_height(320)) is None
    ours = np.frombuffer(full_encode(bgr), np.uint8)
    assert jpeg_splice.top_rows(ours, 240) is None  # nothing left to cut off
    assert jpeg_splice.top_rows(ours, strip_height(320)) is not None
