"""Frame codes through real codecs and scalers: every frame must decode to exactly its code.

Each clip is a short camera stream over moving noise (the hardest background
for an encoder), crossing both the sequence and the time wrap, at the minimum
guaranteed width and at 720p.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from simfarm.frames.code import GUARANTEED_WIDTH, SEQUENCE_WRAP, TIME_WRAP, CodeStrip, FrameCode, decode

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")

X264 = ("-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-pix_fmt", "yuv420p")
SIZES = [(GUARANTEED_WIDTH, GUARANTEED_WIDTH * 3 // 4), (1280, 720)]


def transcode(frames: Sequence[np.ndarray], tmp_path: Path, *codec: str, downscale: bool = False,
              container: str = "nut") -> np.ndarray:
    """Encode grey frames with ffmpeg (``codec`` args, after an optional 2x downscale
    by its default bicubic scaler) and decode them back to luma."""
    height, width = frames[0].shape
    encoded = tmp_path / f"clip.{container}"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y",
                    "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{width}x{height}", "-r", "30", "-i", "-",
                    *(["-vf", "scale=iw/2:ih/2"] if downscale else []), *codec, str(encoded)],
                   input=b"".join(f.tobytes() for f in frames), check=True, timeout=60)
    decoded = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(encoded),
                              "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                             capture_output=True, check=True, timeout=60).stdout
    out_height, out_width = (height // 2, width // 2) if downscale else (height, width)
    return np.frombuffer(decoded, np.uint8).reshape(-1, out_height, out_width)


def stream_codes(count: int, camera: int = 255) -> list[FrameCode]:
    """Consecutive codes of one camera at 30 fps, wrapping sequence and time half-way."""
    first_sequence, first_time = SEQUENCE_WRAP - count // 2, 7 * TIME_WRAP - count // 2 * 33
    return [FrameCode(camera, first_sequence + i, first_time + i * 33) for i in range(count)]


def clip(codes: Sequence[FrameCode], width: int, height: int) -> list[np.ndarray]:
    """One frame per code: the code strip over noise that moves 3 px a frame."""
    noise = np.random.default_rng(1).integers(0, 256, (height, width + 3 * len(codes)), dtype=np.uint8)
    strip = CodeStrip(width, height)
    frames = []
    for i, code in enumerate(codes):
        frame = noise[:, 3 * i: 3 * i + width].copy()
        strip.stamp(frame, code)
        frames.append(frame)
    return frames


def jpeg50(frame: np.ndarray) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 50])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)


def half(frame: np.ndarray) -> np.ndarray:
    return cv2.resize(frame, (frame.shape[1] // 2, frame.shape[0] // 2), interpolation=cv2.INTER_AREA)


PIPELINES: dict[str, Callable[[list[np.ndarray], Path], Sequence[np.ndarray]]] = {
    "x264 ultrafast crf30": lambda f, tmp: transcode(f, tmp, *X264),
    # -q:v 10 gives the same PSNR as IJG quality 50; 31 is ffmpeg's coarsest.
    "ffmpeg mjpeg q:v 10": lambda f, tmp: transcode(f, tmp, "-c:v", "mjpeg", "-q:v", "10", "-pix_fmt",
                                                    "yuvj420p", container="avi"),
    "ffmpeg mjpeg q:v 31": lambda f, tmp: transcode(f, tmp, "-c:v", "mjpeg", "-q:v", "31", "-pix_fmt",
                                                    "yuvj420p", container="avi"),
    "opencv jpeg quality 50": lambda f, tmp: [jpeg50(frame) for frame in f],
    "ffmpeg 2x downscale": lambda f, tmp: transcode(f, tmp, "-c:v", "rawvideo", downscale=True),
    "opencv 2x downscale INTER_AREA": lambda f, tmp: [half(frame) for frame in f],
    "ffmpeg 2x downscale then x264": lambda f, tmp: transcode(f, tmp, *X264, downscale=True),
    "opencv 2x downscale then x264": lambda f, tmp: transcode([half(frame) for frame in f], tmp, *X264),
}


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("pipeline", list(PIPELINES))
def test_every_frame_decodes_to_exactly_its_code(pipeline: str, width: int, height: int,
                                                 tmp_path: Path) -> None:
    codes = stream_codes(10)
    received = PIPELINES[pipeline](clip(codes, width, height), tmp_path)
    assert [decode(frame) for frame in received] == codes
