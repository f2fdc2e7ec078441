"""pixfmt against a real FFmpeg: same RGB in, (nearly) the same bytes out, both ways."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from simfarm.frames import pixfmt
from simfarm.spec import PixelFormat, Size

RAW = [f for f in PixelFormat if f is not PixelFormat.MJPEG]
COLOUR = [f for f in RAW if f is not PixelFormat.GREY]
SIZE = Size(320, 240)

def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def sample_image() -> np.ndarray:
    """Random 8x8 colour blocks over the top half, 100% colour bars below."""
    rng = np.random.default_rng(7)
    half = SIZE.height // 2
    blocks = rng.integers(0, 256, (half // 8, SIZE.width // 8, 3), dtype=np.uint8)
    top = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)
    colours = np.array([[255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0],
                        [255, 0, 255], [255, 0, 0], [0, 0, 255], [0, 0, 0]], np.uint8)
    bars = colours[np.arange(SIZE.width) * len(colours) // SIZE.width]
    bottom = np.broadcast_to(bars, (SIZE.height - half, SIZE.width, 3))
    return np.concatenate([top, bottom])


def ffmpeg_batch(jobs: list[tuple[bytes, str, str]], workdir: Path, *, same_filters: bool) -> list[np.ndarray]:
    """FFmpeg's conversion of each (frame, from pix_fmt, to pix_fmt), all in one process.

    One process because FFmpeg's start-up costs more than the conversions.
    ``same_filters`` asks for pixfmt's chroma resampling: FFmpeg's default
    filters depend on the path (yuv420p output is replicated, nv12 filtered
    vertically); pixfmt averages down and replicates up, which
    ``neighbor+full_chroma_int`` selects.
    """
    flags = ["-vf", "scale=flags=neighbor+full_chroma_int"] if same_filters else []
    command = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    for index, (data, src, _) in enumerate(jobs):
        (workdir / f"in{index}").write_bytes(data)
        command += ["-f", "rawvideo", "-pix_fmt", src, "-s", str(SIZE), "-i", str(workdir / f"in{index}")]
    for index, (_, _, dst) in enumerate(jobs):
        command += ["-map", f"{index}:v", *flags, "-pix_fmt", dst, "-f", "rawvideo", str(workdir / f"out{index}")]
    subprocess.run(command, capture_output=True, check=True)
    return [np.frombuffer((workdir / f"out{index}").read_bytes(), np.uint8) for index in range(len(jobs))]


@dataclass(frozen=True)
class Ffmpeg:
    """What FFmpeg makes of the sample image, per raw format."""

    raw: dict[PixelFormat, np.ndarray]  # RGB to the format, FFmpeg's default filters
    raw_same_filters: dict[PixelFormat, np.ndarray]  # RGB to the format, pixfmt's filters
    rgb_back: dict[PixelFormat, np.ndarray]  # ``raw`` back to RGB, pixfmt's filters


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return sample_image()


@pytest.fixture(scope="module")
def ffmpeg(rgb: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Ffmpeg:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    names = [pixfmt.FFMPEG_PIX_FMT[fmt] for fmt in RAW]
    forward = [(rgb.tobytes(), "rgb24", name) for name in names]
    raw = ffmpeg_batch(forward, tmp_path_factory.mktemp("default"), same_filters=False)
    same = ffmpeg_batch(forward, tmp_path_factory.mktemp("same"), same_filters=True)
    back = ffmpeg_batch([(data.tobytes(), name, "rgb24") for data, name in zip(raw, names, strict=True)],
                        tmp_path_factory.mktemp("back"), same_filters=True)
    return Ffmpeg(*(dict(zip(RAW, outputs, strict=True)) for outputs in (raw, same, back)))


@pytest.mark.parametrize("fmt", RAW, ids=lambda f: f.name)
def test_frame_bytes_match_what_ffmpeg_writes(fmt: PixelFormat, rgb: np.ndarray, ffmpeg: Ffmpeg) -> None:
    assert pixfmt.frame_bytes(fmt, SIZE) == ffmpeg.raw[fmt].size == pixfmt.from_rgb(rgb, fmt).size


def test_frame_bytes_of_mjpeg_is_refused() -> None:
    with pytest.raises(ValueError, match="MJPEG"):
        pixfmt.frame_bytes(PixelFormat.MJPEG, SIZE)


@pytest.mark.parametrize("fmt", RAW, ids=lambda f: f.name)
def test_from_rgb_matches_ffmpeg(fmt: PixelFormat, rgb: np.ndarray, ffmpeg: Ffmpeg) -> None:
    assert psnr(pixfmt.from_rgb(rgb, fmt), ffmpeg.raw[fmt]) >= 40


@pytest.mark.parametrize("fmt", RAW, ids=lambda f: f.name)
def test_from_rgb_is_ffmpeg_up_to_rounding_given_the_same_chroma_filter(fmt: PixelFormat, rgb: np.ndarray,
                                                                        ffmpeg: Ffmpeg) -> None:
    assert np.abs(pixfmt.from_rgb(rgb, fmt).astype(int) - ffmpeg.raw_same_filters[fmt]).max() <= 1


@pytest.mark.parametrize("fmt", RAW, ids=lambda f: f.name)
def test_to_rgb_matches_ffmpeg(fmt: PixelFormat, ffmpeg: Ffmpeg) -> None:
    raw, theirs = ffmpeg.raw[fmt], ffmpeg.rgb_back[fmt]
    assert psnr(pixfmt.to_rgb(raw, fmt, SIZE).reshape(-1), theirs) >= 40


@pytest.mark.parametrize("fmt", COLOUR, ids=lambda f: f.name)
def test_round_trip_keeps_the_picture(fmt: PixelFormat, rgb: np.ndarray) -> None:
    assert psnr(pixfmt.to_rgb(pixfmt.from_rgb(rgb, fmt), fmt, SIZE), rgb) >= 40


def test_mjpeg_is_a_jpeg_that_decodes_close_to_the_source(rgb: np.ndarray) -> None:
    jpeg = pixfmt.from_rgb(rgb, PixelFormat.MJPEG, jpeg_quality=95)
    assert jpeg[:2].tolist() == [0xFF, 0xD8]
    # JPEG blurs colour edges, so compare the middle of each bar.
    centres = (np.arange(8) * 2 + 1) * SIZE.width // 16
    decoded = pixfmt.to_rgb(jpeg, PixelFormat.MJPEG, SIZE)[200, centres].astype(int)
    assert np.abs(decoded - rgb[200, centres]).max() <= 8


@pytest.mark.parametrize("fmt", list(PixelFormat), ids=lambda f: f.name)
def test_luma_is_the_same_limited_range_y_for_every_format(fmt: PixelFormat, rgb: np.ndarray,
                                                           ffmpeg: Ffmpeg) -> None:
    reference = ffmpeg.raw[PixelFormat.YU12][:SIZE.width * SIZE.height].reshape(SIZE.height, SIZE.width)
    got = pixfmt.luma(pixfmt.from_rgb(rgb, fmt, jpeg_quality=95), fmt, SIZE)
    assert got.shape == (SIZE.height, SIZE.width) and got.dtype == np.uint8
    assert psnr(got, reference) >= (35 if fmt is PixelFormat.MJPEG else 45)


@pytest.mark.parametrize("fmt", RAW, ids=lambda f: f.name)
def test_luma_view_is_a_writable_view_whose_writes_show_in_to_rgb(fmt: PixelFormat) -> None:
    buf = pixfmt.from_rgb(np.full((SIZE.height, SIZE.width, 3), 128, np.uint8), fmt)
    view = pixfmt.luma_view(buf, fmt, SIZE)
    if fmt in (PixelFormat.RGB24, PixelFormat.BGR24):
        assert view is None
        return
    assert view.shape == (SIZE.height, SIZE.width) and np.shares_memory(view, buf)
    view[:8] = 255 if fmt is PixelFormat.GREY else 235
    picture = pixfmt.to_rgb(buf, fmt, SIZE)
    assert np.all(picture[:8] >= 254) and np.all(np.abs(picture[8:].astype(int) - 128) <= 1)


def test_luma_view_of_mjpeg_is_none(rgb: np.ndarray) -> None:
    assert pixfmt.luma_view(pixfmt.from_rgb(rgb, PixelFormat.MJPEG), PixelFormat.MJPEG, SIZE) is None


@pytest.mark.parametrize("fmt", RAW, ids=lambda f: f.name)
def test_luma_strip_reads_back_as_grey_with_that_luma(fmt: PixelFormat, rgb: np.ndarray) -> None:
    buf = pixfmt.from_rgb(rgb, fmt)
    strip = np.where(np.arange(SIZE.width) // 10 % 2, 235, 16).astype(np.uint8)
    strip = np.broadcast_to(strip, (12, SIZE.width))
    pixfmt.write_luma_strip(buf, fmt, SIZE, strip)
    assert np.array_equal(pixfmt.luma(buf, fmt, SIZE)[:12], strip)
    top = pixfmt.to_rgb(buf, fmt, SIZE)[:12].astype(int)
    assert np.abs(top - top[:, :, :1]).max() <= 1  # grey: R = G = B
    assert psnr(pixfmt.to_rgb(buf, fmt, SIZE)[12:], pixfmt.to_rgb(pixfmt.from_rgb(rgb, fmt), fmt, SIZE)[12:]) == np.inf


@pytest.mark.parametrize("fmt", RAW, ids=lambda f: f.name)
def test_rgb_patch_writes_what_converting_the_whole_frame_would(fmt: PixelFormat, rgb: np.ndarray) -> None:
    patch = np.random.default_rng(3).integers(0, 256, (16, 40, 3), dtype=np.uint8)
    buf = pixfmt.from_rgb(rgb, fmt)
    pixfmt.write_rgb_patch(buf, fmt, SIZE, 100, 62, patch)
    composed = rgb.copy()
    composed[100:116, 62:102] = patch
    assert np.array_equal(buf, pixfmt.from_rgb(composed, fmt))


@pytest.mark.parametrize(("y", "x", "shape"), [(1, 0, (4, 4, 3)), (0, 2, (3, 4, 3)), (238, 0, (4, 4, 3))])
def test_rgb_patch_must_be_even_aligned_and_inside(y: int, x: int, shape: tuple[int, int, int]) -> None:
    buf = np.zeros(pixfmt.frame_bytes(PixelFormat.NV12, SIZE), np.uint8)
    with pytest.raises(ValueError):
        pixfmt.write_rgb_patch(buf, PixelFormat.NV12, SIZE, y, x, np.zeros(shape, np.uint8))


def test_short_buffers_are_refused_and_padded_ones_accepted(rgb: np.ndarray) -> None:
    buf = pixfmt.from_rgb(rgb, PixelFormat.YUYV)
    with pytest.raises(ValueError, match="needs"):
        pixfmt.to_rgb(buf[:-2], PixelFormat.YUYV, SIZE)
    padded = np.concatenate([buf, np.zeros(4096, np.uint8)])
    assert np.array_equal(pixfmt.to_rgb(padded, PixelFormat.YUYV, SIZE), pixfmt.to_rgb(buf, PixelFormat.YUYV, SIZE))
