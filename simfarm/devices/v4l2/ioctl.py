"""The four V4L2 ioctls that feeding a loopback node and reading it back need, packed with struct.

linuxpy covers all of V4L2, and importing it (its ctypes structures, asyncio)
took a supervisor a second and a half under emulation, where a loopback farm
needs only these: set the output's format and rate, and see what a capture
node offers (QUERYCAP) and streams (G_FMT). Streaming with mmap buffers (a
USB webcam, see capture.stream_luma) still uses linuxpy. The layouts are
those of <linux/videodev2.h> on 64-bit Linux.
"""

from __future__ import annotations

import fcntl
import struct
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from fractions import Fraction

# Buffer types and capability bits, as in videodev2.h.
VIDEO_CAPTURE = 1
VIDEO_OUTPUT = 2
CAP_VIDEO_CAPTURE = 0x00000001
CAP_READWRITE = 0x01000000
_FIELD_ANY = 0

# struct v4l2_format: u32 type, then a 200-byte union aligned to 8 (it holds pointers).
_FORMAT = struct.Struct("=I4x200s")
_PIX = struct.Struct("=12I")  # struct v4l2_pix_format, the union's member for video
# struct v4l2_streamparm: u32 type, then a 200-byte union; v4l2_outputparm and v4l2_captureparm
# both begin with capability, mode and the time per frame (numerator, denominator).
_PARM = struct.Struct("=I200s")
_PARM_HEAD = struct.Struct("=4I")
# struct v4l2_capability: driver[16], card[32], bus_info[32], version, capabilities, device_caps, reserved[3].
_CAPABILITY = struct.Struct("=16s32s32s3I12x")

_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability)
_G_FMT = 0xC0D05604  # _IOWR('V', 4, struct v4l2_format)
_S_FMT = 0xC0D05605  # _IOWR('V', 5, struct v4l2_format)
_S_PARM = 0xC0CC5616  # _IOWR('V', 22, struct v4l2_streamparm)


class Capability(NamedTuple):
    driver: str
    card: str
    device_caps: int


class Format(NamedTuple):
    width: int
    height: int
    fourcc: int  # little-endian, as PixelFormat.fourcc
    size: int  # bytes a frame takes (sizeimage)


def query_capability(fd: int) -> Capability:
    """VIDIOC_QUERYCAP; raises OSError when ``fd`` is no V4L2 device."""
    buf = bytearray(_CAPABILITY.size)
    fcntl.ioctl(fd, _QUERYCAP, buf, True)
    driver, card, _, _, _, device_caps = _CAPABILITY.unpack(buf)
    return Capability(_text(driver), _text(card), device_caps)


def get_format(fd: int, buffer_type: int) -> Format:
    """VIDIOC_G_FMT for a video buffer type."""
    buf = bytearray(_FORMAT.pack(buffer_type, b""))
    fcntl.ioctl(fd, _G_FMT, buf, True)
    width, height, code, _, _, size, *_ = _PIX.unpack_from(_FORMAT.unpack(buf)[1])
    return Format(width, height, code, size)


def set_format(fd: int, buffer_type: int, width: int, height: int, code: int) -> None:
    """VIDIOC_S_FMT: ``width`` x ``height`` in fourcc ``code``, any field, the driver's line length."""
    pix = _PIX.pack(width, height, code, _FIELD_ANY, 0, 0, 0, 0, 0, 0, 0, 0)
    fcntl.ioctl(fd, _S_FMT, bytearray(_FORMAT.pack(buffer_type, pix)), True)


def set_fps(fd: int, buffer_type: int, fps: Fraction) -> None:
    """VIDIOC_S_PARM: a time per frame of 1/``fps`` (the kernel's fraction is two u32s)."""
    rate = fps.limit_denominator(int(min(2**32, 2**32 / fps)))
    head = _PARM_HEAD.pack(0, 0, rate.denominator, rate.numerator)
    fcntl.ioctl(fd, _S_PARM, bytearray(_PARM.pack(buffer_type, head)), True)


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")
