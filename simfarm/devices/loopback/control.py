"""The v4l2loopback control device (/dev/v4l2loopback, module >= 0.13).

A thin, honest wrapper over four ioctls. 0.15 numbers them with the standard
_IOC encoding; 0.13/0.14 used bare numbers, which 0.15 still accepts. We try
the standard ones first and fall back on ENOTTY, so both generations work.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from dataclasses import dataclass

from ...errors import BadInput, EnvironmentProblem
from .module import CONTROL_DEVICE

_CONFIG = struct.Struct("=ii32sIIIIiiii")  # struct v4l2_loopback_config, 72 bytes

# (standard since 0.15, legacy since 0.13)
_ADD = (0x40487E01, 0x4C80)
_REMOVE = (0x40047E02, 0x4C81)
_QUERY = (0xC0487E03, 0x4C82)
_VERSION = 0x80047E00  # 0.15 only; older modules report it in sysfs

MAX_LABEL_BYTES = 31  # card_label[32] holds a NUL-terminated string

# A reader's VIDIOC_REQBUFS gets the node's whole ring, whatever count it asks for. OpenCV
# overruns its buffer table above 10; PipeWire's v4l2 source refuses fewer than the 16 it
# asks for. No ring suits both, so the default keeps OpenCV and the like working and a farm
# file chooses 16 for PipeWire. Each buffer is a frame (page-aligned sizeimage) vmalloc'd
# while the node is open: docs/farms.md#loopback_buffers.
DEFAULT_MAX_BUFFERS = 4
PIPEWIRE_BUFFERS = 16
# Fewer lets a read(2) reader overtake the writer and see frames out of order.
MIN_MAX_BUFFERS = 4
# v4l2loopback's compile-time MAX_BUFFERS: the size of its per-node buffer array, which the
# ADD ioctl does not check a config against (0.15), so more would overrun it.
MAX_MAX_BUFFERS = 32


def check_max_buffers(value: object) -> int:
    """``value`` as a node's ring size, or BadInput naming the range."""
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_MAX_BUFFERS <= value <= MAX_MAX_BUFFERS:
        raise BadInput(f"loopback buffers must be a whole number {MIN_MAX_BUFFERS}..{MAX_MAX_BUFFERS} "
                       f"(default {DEFAULT_MAX_BUFFERS}), not {value!r}")
    return value


@dataclass(frozen=True)
class LoopbackConfig:
    """What the ADD ioctl is given; ``number=-1`` lets the kernel pick."""

    label: str
    number: int = -1
    max_width: int = 8192
    max_height: int = 8192
    max_buffers: int = DEFAULT_MAX_BUFFERS
    max_openers: int = 16
    # 0 = exclusive caps: OUTPUT only until a producer streams, then CAPTURE,
    # which is what FFmpeg, OpenCV and browsers need to see a webcam.
    announce_all_caps: int = 0

    def pack(self) -> bytearray:
        label = self.label.encode()
        if len(label) > MAX_LABEL_BYTES:
            raise BadInput(f"card label {self.label!r} is longer than {MAX_LABEL_BYTES} bytes")
        return bytearray(_CONFIG.pack(self.number, -1, label, 0, self.max_width, 0,
                                      self.max_height, self.max_buffers, self.max_openers,
                                      0, self.announce_all_caps))


class LoopbackControl:
    """An open handle on the control device."""

    def __init__(self, path: str = CONTROL_DEVICE) -> None:
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise EnvironmentProblem(
                f"{path} does not exist: v4l2loopback >= 0.13 is not loaded",
                "modprobe v4l2loopback devices=0 (or run inside `simfarm vm`)") from None
        except PermissionError:
            raise EnvironmentProblem(f"no permission to open {path}",
                                     "sudo simfarm udev install, then join group video") from None
        self._legacy = False

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> LoopbackControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, number: int, arg: int | bytearray) -> int:
        if isinstance(arg, bytearray):
            return fcntl.ioctl(self._fd, number, arg, True)
        return fcntl.ioctl(self._fd, number, arg)

    def _ioctl(self, numbers: tuple[int, int], arg: int | bytearray) -> int:
        if not self._legacy:
            try:
                return self._call(numbers[0], arg)
            except OSError as exc:
                if exc.errno != errno.ENOTTY:
                    raise
                self._legacy = True
        return self._call(numbers[1], arg)

    def add(self, config: LoopbackConfig) -> int:
        """Create a device; returns its number N (/dev/videoN)."""
        try:
            return self._ioctl(_ADD, config.pack())
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                raise BadInput(f"/dev/video{config.number} is already taken") from None
            raise EnvironmentProblem(f"v4l2loopback refused to add a device: {exc.strerror}") from None

    def remove(self, number: int) -> None:
        """Remove device N; raises OSError(EBUSY) while any fd is open on it."""
        self._ioctl(_REMOVE, number)

    def query(self, number: int) -> LoopbackConfig:
        """The configuration of device N (raises OSError if it is not a loopback device)."""
        buf = LoopbackConfig(label="", number=number).pack()
        self._ioctl(_QUERY, buf)
        fields = _CONFIG.unpack(bytes(buf))
        return LoopbackConfig(label=fields[2].split(b"\0", 1)[0].decode(errors="replace"),
                              number=fields[0], max_width=fields[4], max_height=fields[6],
                              max_buffers=fields[7], max_openers=fields[8],
                              announce_all_caps=fields[10])
