"""bitstream-noise for real: the publisher's own FFmpeg command, its RTSP output swapped for a file."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from simfarm.errors import BadInput
from simfarm.frames.code import decode
from simfarm.frames import video
from simfarm.frames.video import read_luma
from simfarm.publishers.mediamtx.hooks import PUBLISH_OUTPUT, rtsp_publish_argv


def published(clip: Any, out: Path, noise: int | None) -> list:
    """The codes a reader of the path would decode: the publisher's packets written to ``out`` as raw H.264."""
    argv = rtsp_publish_argv(["-i", str(clip.path)], gop=15, ffmpeg="ffmpeg", noise=noise)
    assert tuple(argv[-len(PUBLISH_OUTPUT):]) == PUBLISH_OUTPUT
    subprocess.run([*argv[:-len(PUBLISH_OUTPUT)], "-y", "-f", "h264", str(out)], check=True, timeout=120,
                   capture_output=True)
    return [decode(frame.luma) for frame in read_luma(str(out))]


def test_clean_publisher_output_carries_every_code(coded_clip: Any, tmp_path: Path) -> None:
    codes = published(coded_clip, tmp_path / "clean.h264", None)
    assert [(c.camera, c.sequence) for c in codes] == [(coded_clip.camera, n) for n in range(coded_clip.frames)]


def test_noise_corrupts_the_packets_so_codes_fail_never_misread(coded_clip: Any, tmp_path: Path) -> None:
    codes = published(coded_clip, tmp_path / "noisy.h264", 1000)
    intact = [c for c in codes if c is not None]
    assert len(intact) < coded_clip.frames // 2, f"{len(intact)} of {len(codes)} frames survived the noise"
    # Damage shows as codes that fail their check, never as another camera's or a wrong sequence.
    assert all(c.camera == coded_clip.camera and 0 <= c.sequence < coded_clip.frames for c in intact)


def test_noise_amount_must_be_positive() -> None:
    with pytest.raises(BadInput):
        rtsp_publish_argv(["-i", "x"], gop=15, ffmpeg="ffmpeg", noise=0)


def test_a_source_whose_parameters_never_come_is_bad_input_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    # A server that accepts and never sends keeps ffprobe looking for the stream's parameters, as a
    # path whose parameter sets noise destroyed did (a reader must get one line, not a traceback).
    monkeypatch.setattr(video, "PROBE_TIMEOUT_S", 2.0)
    with socket.create_server(("127.0.0.1", 0)) as silent:
        with pytest.raises(BadInput, match="no stream parameters found within 2 s"):
            video.probe_size(f"tcp://127.0.0.1:{silent.getsockname()[1]}")
