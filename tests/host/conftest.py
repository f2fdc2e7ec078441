"""Shared fixtures of the host tier."""

from __future__ import annotations

import struct
from collections.abc import Callable
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


def _fake_bzimage(path: Path, banner: str) -> Path:
    """The parts of an x86 boot header that carry the version string."""
    data = bytearray(0x1000)
    data[0x202:0x206] = b"HdrS"
    data[0x20E:0x210] = (0x500 - 0x200).to_bytes(2, "little")
    data[0x500:0x500 + len(banner)] = banner.encode()
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def bzimage() -> Callable[[Path, str], Path]:
    """Writes a fake kernel image: ``bzimage(path, "6.1.0-99-amd64 #1 SMP")``."""
    return _fake_bzimage


def _elf_module(*fields: str) -> bytes:
    """A little-endian ELF64 file with a .modinfo section holding ``fields``, as a kernel module keeps them."""
    info = b"".join(f.encode() + b"\0" for f in fields)
    names = b"\0.modinfo\0.shstrtab\0"
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x28, 64 + len(info) + len(names))  # where the section headers start
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 2)  # their size, their count, the names' section

    def section(name_at: int, offset: int, size: int) -> bytes:
        entry = bytearray(64)
        struct.pack_into("<I", entry, 0, name_at)
        struct.pack_into("<QQ", entry, 24, offset, size)
        return bytes(entry)

    return (bytes(header) + info + names + bytes(64)
            + section(1, 64, len(info)) + section(10, 64 + len(info), len(names)))


@pytest.fixture
def elf_module() -> Callable[..., bytes]:
    """Builds a fake kernel module's bytes: ``elf_module("version=0.15.0", "license=GPL")``."""
    return _elf_module
