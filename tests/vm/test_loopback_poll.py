"""What a select()/poll() reader and an mmap reader see on a streaming loopback camera (issue 22).

select() on a capture opener must say "readable" when a frame waits and never
"writable": v4l2loopback 0.14 to 0.15.4 answer POLLIN | POLLWRNORM, and
select()-based readers such as µStreamer take the write event for a
disconnect (docs/v4l2loopback-poll.md). scripts/setup-vm.sh builds the
module with the fix, so these tests fail on a module built without it.

A reader's VIDIOC_REQBUFS gets the node's whole ring (max_buffers): a farm
made for PipeWire (loopback_buffers: 16) gives the 16 buffers PipeWire asks for.

Runs inside `simfarm vm` (or on a host with v4l2loopback >= 0.13).
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import time
from collections.abc import Iterator

import pytest

from simfarm import Farm
from simfarm.devices.loopback.control import PIPEWIRE_BUFFERS, LoopbackControl
from simfarm.spec import CameraSpec

from kernel_helpers import module_farm

pytestmark = pytest.mark.hil

SMALL = CameraSpec.parse(size="320x240", fps=15)

# The two streaming ioctls these tests need beyond simfarm's own (devices/v4l2/ioctl.py).
# struct v4l2_requestbuffers: count, type, memory, capabilities, flags, reserved[3].
_REQUESTBUFFERS = struct.Struct("=4IB3x")
_REQBUFS = 0xC0145608  # _IOWR('V', 8, struct v4l2_requestbuffers)
_STREAMON = 0x40045612  # _IOW('V', 18, int)
_CAPTURE, _MMAP = 1, 1

# Long enough for several frames at 15 fps under emulation.
WATCH_S = 3.0


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    with module_farm(tmp_path_factory, 1, name="poll", spec=SMALL, loopback_buffers=PIPEWIRE_BUFFERS) as made:
        yield made


def request_buffers(fd: int, count: int) -> int:
    """VIDIOC_REQBUFS for mmap capture buffers; returns the count the driver gave."""
    buf = bytearray(_REQUESTBUFFERS.pack(count, _CAPTURE, _MMAP, 0, 0))
    fcntl.ioctl(fd, _REQBUFS, buf, True)
    return _REQUESTBUFFERS.unpack(buf)[0]


def watch(fd: int, seconds: float) -> tuple[int, int]:
    """select() on ``fd`` for read and write for ``seconds``: how many calls saw it readable, writable."""
    readable = writable = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r, w, _ = select.select([fd], [fd], [], 0.5)
        readable += bool(r)
        writable += bool(w)
        if r:
            time.sleep(0.02)  # a frame waits until it is taken: do not spin on it
    return readable, writable


def test_streaming_reader_is_readable_never_writable(farm: Farm) -> None:
    # As µStreamer opens and streams a node: mmap buffers, STREAMON, then select() on both sets.
    fd = os.open(farm.cameras[0].device, os.O_RDWR | os.O_NONBLOCK)
    try:
        assert request_buffers(fd, 4) > 0
        fcntl.ioctl(fd, _STREAMON, struct.pack("=I", _CAPTURE))
        readable, writable = watch(fd, WATCH_S)
    finally:
        os.close(fd)
    assert readable, "select() never reported a waiting frame"
    assert writable == 0, (f"select() reported the capture opener writable {writable} times "
                           "(v4l2loopback without the POLLRDNORM fix: docs/v4l2loopback-poll.md)")


def test_read_reader_is_readable_never_writable(farm: Farm) -> None:
    # The reproducer of docs/v4l2loopback-poll.md: one read(2) makes the opener a capture reader.
    fd = os.open(farm.cameras[0].device, os.O_RDWR)
    try:
        os.read(fd, SMALL.size.width * SMALL.size.height * 2)
        readable, writable = watch(fd, WATCH_S)
    finally:
        os.close(fd)
    assert readable, "select() never reported a waiting frame"
    assert writable == 0, f"select() reported the capture opener writable {writable} times"


def test_reader_gets_the_buffers_pipewire_asks_for(farm: Farm) -> None:
    # PipeWire's v4l2 source fails with "can't allocate enough buffers (4 < 16)" below 16.
    fd = os.open(farm.cameras[0].device, os.O_RDWR | os.O_NONBLOCK)
    try:
        got = request_buffers(fd, 16)
    finally:
        os.close(fd)
    assert got >= 16
    assert got == PIPEWIRE_BUFFERS  # v4l2loopback gives a reader the writer's whole ring


def ring_of(number: int) -> int:
    with LoopbackControl() as control:
        return control.query(number).max_buffers


def test_a_farm_sets_its_nodes_ring_and_a_replugged_node_keeps_it() -> None:
    with Farm.provision(1, name="ring", spec=SMALL, loopback_buffers=8) as farm:
        cam = farm.cameras[0]
        assert ring_of(cam.number) == 8
        cam.inject("unplug")
        cam.inject("replug")
        assert ring_of(farm.reload().cameras[0].number) == 8
