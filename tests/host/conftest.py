"""Shared fixtures of the host tier."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from simfarm.cli import main as simfarm


@dataclass(frozen=True)
class CodedClip:
    path: Path
    camera: int = 3
    frames: int = 45
    size: tuple[int, int] = (320, 240)
    fps: int = 15


@pytest.fixture(scope="session")
def coded_clip(tmp_path_factory: pytest.TempPathFactory) -> CodedClip:
    """A real H.264 MP4 of the ball pattern, frame n stamped with code (clip.camera, n)."""
    clip = CodedClip(tmp_path_factory.mktemp("clip") / "ball.mp4")
    assert simfarm(["patterns", "render", "ball", "--frames", str(clip.frames), "--camera", str(clip.camera),
                    "--size", "x".join(map(str, clip.size)), "--fps", str(clip.fps), "-o", str(clip.path)]) == 0
    return clip
