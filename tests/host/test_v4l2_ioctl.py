"""simfarm's own V4L2 ioctls pack and unpack what linuxpy's ctypes structures do (the kernel's side is
in the VM tier, where every loopback camera goes through them)."""

from __future__ import annotations

import ctypes
from fractions import Fraction

import pytest
from linuxpy.video import device as v4l2
from linuxpy.video import raw

from simfarm.devices.v4l2 import ioctl
from simfarm.spec import PixelFormat


class Calls:
    """Stands in for fcntl.ioctl: records each request and its argument; fills it with ``reply`` if given."""

    def __init__(self, reply: ctypes.Structure | None = None) -> None:
        self.seen: list[tuple[int, bytes]] = []
        self.reply = reply

    def __call__(self, fd: int, request: int, buf: bytearray, mutate: bool) -> int:
        self.seen.append((request, bytes(buf)))
        if self.reply is not None:
            buf[:] = bytes(self.reply)
        return 0


def unsigned(request: int) -> int:
    return request & 0xFFFFFFFF


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    recorder = Calls()
    monkeypatch.setattr(ioctl.fcntl, "ioctl", recorder)
    return recorder


def test_set_format_packs_what_linuxpy_does(calls: Calls) -> None:
    ioctl.set_format(3, ioctl.VIDEO_OUTPUT, 640, 480, PixelFormat.YUYV.fourcc)
    expected = raw.v4l2_format()
    expected.type = v4l2.BufferType.VIDEO_OUTPUT
    pix = expected.fmt.pix
    pix.width, pix.height, pix.pixelformat, pix.field = 640, 480, raw.v4l2_fourcc(*"YUYV"), v4l2.Field.ANY
    assert calls.seen == [(unsigned(raw.IOC.S_FMT), bytes(expected))]


@pytest.mark.parametrize("fps", [Fraction(30), Fraction(30000, 1001), Fraction(15, 2)])
def test_set_fps_packs_what_linuxpy_does(calls: Calls, fps: Fraction) -> None:
    ioctl.set_fps(3, ioctl.VIDEO_OUTPUT, fps)
    expected = raw.v4l2_streamparm()
    expected.type = v4l2.BufferType.VIDEO_OUTPUT
    expected.parm.output.timeperframe.numerator = fps.denominator
    expected.parm.output.timeperframe.denominator = fps.numerator
    assert calls.seen == [(unsigned(raw.IOC.S_PARM), bytes(expected))]


def test_get_format_reads_the_pix_format(calls: Calls) -> None:
    reply = raw.v4l2_format()
    reply.type = v4l2.BufferType.VIDEO_CAPTURE
    reply.fmt.pix.width, reply.fmt.pix.height = 320, 240
    reply.fmt.pix.pixelformat, reply.fmt.pix.sizeimage = raw.v4l2_fourcc(*"GREY"), 320 * 240
    calls.reply = reply
    assert ioctl.get_format(3, ioctl.VIDEO_CAPTURE) == (320, 240, PixelFormat.GREY.fourcc, 320 * 240)
    request, sent = calls.seen[0]
    assert request == unsigned(raw.IOC.G_FMT) and sent[:4] == bytes(ctypes.c_uint32(ioctl.VIDEO_CAPTURE))


def test_query_capability_reads_driver_card_and_device_caps(calls: Calls) -> None:
    reply = raw.v4l2_capability()
    reply.driver, reply.card = b"v4l2 loopback", b"simfarm-lab-0"
    reply.capabilities = 0x85200003
    reply.device_caps = v4l2.Capability.VIDEO_CAPTURE | v4l2.Capability.READWRITE
    calls.reply = reply
    assert ioctl.query_capability(3) == ("v4l2 loopback", "simfarm-lab-0",
                                              ioctl.CAP_VIDEO_CAPTURE | ioctl.CAP_READWRITE)
    assert calls.seen[0][0] == unsigned(raw.IOC.QUERYCAP)
