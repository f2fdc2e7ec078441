"""Issue 4, the vivid backend, in the kernel: enumeration, disconnect under a streaming reader,
driver-level errors, and refusals naming the backend that can.

Runs inside `simfarm vm`. One farm of two vivid cameras serves the module (loading vivid
takes under a second, but starting the supervisor's Python takes several under emulation).
Every reader here streams with mmap through raw ioctls, as a camera service does, so each
error is seen at the ioctl that returns it.
"""

from __future__ import annotations

import errno
import itertools
import mmap
import os
import select
from collections.abc import Iterator

import pytest
from linuxpy.video import device as v4l2

from simfarm import Farm
from simfarm.cli import main
from simfarm.devices.v4l2 import capture
from simfarm.devices.vivid import driver as vivid
from simfarm.errors import BadInput, EnvironmentProblem
from simfarm.faults import read_log
from simfarm.spec import CameraSpec

from kernel_helpers import module_farm, wait_until

pytestmark = [pytest.mark.hil, pytest.mark.usefixtures("in_farm_state")]

CAPTURE, MMAP = v4l2.BufferType.VIDEO_CAPTURE, v4l2.Memory.MMAP
SPEC = CameraSpec.parse(size="320x180", fps=60)  # vivid's smallest webcam size at its highest rate
WRAP = 2**32


class StreamFailed(Exception):
    """Starting a stream failed at ``step`` (REQBUFS, QBUF or STREAMON) with ``errno``."""

    def __init__(self, step: str, error: OSError) -> None:
        super().__init__(f"{step}: {error}")
        self.step, self.errno = step, error.errno


class Stream:
    """A reader streaming ``device`` with mmap buffers, as a camera service does."""

    def __init__(self, device: str, buffers: int = 4) -> None:
        self.fd = os.open(device, os.O_RDWR | os.O_NONBLOCK)
        self.maps: list[mmap.mmap] = []
        try:
            self.step = "REQBUFS"
            count = v4l2.request_buffers(self.fd, CAPTURE, MMAP, buffers).count
            self.step = "QBUF"
            for index in range(count):
                self.maps.append(v4l2.mmap_from_buffer(self.fd, v4l2.query_buffer(self.fd, CAPTURE, MMAP, index)))
                v4l2.enqueue_buffer(self.fd, CAPTURE, MMAP, 0, index)
            self.step = "STREAMON"
            v4l2.stream_on(self.fd, CAPTURE)
        except OSError as exc:
            self.close()
            raise StreamFailed(self.step, exc) from None

    def next(self, timeout: float = 10.0):
        """Dequeue the next buffer (and queue it again); returns it."""
        if not select.select([self.fd], [], [], timeout)[0]:
            raise AssertionError(f"no buffer within {timeout} s")
        buf = v4l2.dequeue_buffer(self.fd, CAPTURE, MMAP)
        v4l2.enqueue_buffer(self.fd, CAPTURE, MMAP, 0, buf.index)
        return buf

    def close(self) -> None:
        for mapped in self.maps:
            mapped.close()
        os.close(self.fd)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    with module_farm(tmp_path_factory, 2, name="viv", spec=SPEC, backend="vivid") as made:
        yield made


@pytest.fixture
def stream(farm: Farm) -> Iterator[Stream]:
    reader = Stream(farm.cameras[0].device)
    yield reader
    reader.close()


def test_each_camera_is_a_capture_node_with_discrete_sizes_and_formats_beside_a_metadata_node(farm: Farm) -> None:
    assert farm.backend == "vivid" and farm.status()["backend"] == "vivid"
    for cam in farm.cameras:
        assert cam.metadata_device is not None and cam.by_id is None
        fd = os.open(cam.device, os.O_RDWR)
        try:
            assert v4l2.read_capabilities(fd).device_caps & v4l2.Capability.VIDEO_CAPTURE
            formats = list(v4l2.iter_read_formats(fd, CAPTURE))
            sizes = list(v4l2.iter_read_frame_sizes(fd, formats[0].pixel_format))
            current = v4l2.get_format(fd, CAPTURE)
        finally:
            os.close(fd)
        assert len(formats) >= 3
        assert len(sizes) >= 3 and {size.type for size in sizes} == {v4l2.FrameSizeType.DISCRETE}
        assert (current.width, current.height) == (320, 180)  # the camera's spec, until a reader sets another
        fd = os.open(cam.metadata_device, os.O_RDWR)
        try:
            caps = v4l2.read_capabilities(fd).device_caps
        finally:
            os.close(fd)
        assert caps & v4l2.Capability.META_CAPTURE and not caps & v4l2.Capability.VIDEO_CAPTURE
        assert cam.stats()["state"] == "ready"
        assert next(capture.read_luma(cam.device, count=1)).luma.shape == (180, 320)


def test_disconnect_fails_the_streaming_reader_with_enodev_and_it_comes_back_once_closed(farm: Farm) -> None:
    cam = farm.cameras[0]
    reader = Stream(cam.device)
    reader.next()
    fault = cam.inject("disconnect")
    try:
        with pytest.raises(OSError) as caught:
            v4l2.read_capabilities(reader.fd)
        assert caught.value.errno == errno.ENODEV
        poller = select.poll()
        poller.register(reader.fd, select.POLLIN)
        [(_, events)] = poller.poll(1000)
        assert events & select.POLLERR and events & select.POLLHUP
        for node in (cam.device, cam.metadata_device):
            with pytest.raises(OSError) as caught:
                os.open(node, os.O_RDWR)
            assert caught.value.errno == errno.ENODEV
        assert cam.stats()["state"] == "disconnected"
        fault.clear()
        # vivid comes back only once every fd on the camera is closed: this reader's is still open.
        status = cam.stats()
        assert (status["state"], status["held_by"]) == ("reconnecting", [os.getpid()])
    finally:
        reader.close()
    assert vivid.connected(cam.number) and cam.stats()["state"] == "ready"
    assert next(capture.read_luma(cam.device, count=1)).luma.shape == (180, 320)
    ends = [line for line in read_log(farm.fault_log) if line["fault"] == fault.id and line["event"] == "end"]
    assert [line["reason"] for line in ends] == ["cleared"]
    # The other camera is a separate vivid instance: untouched.
    assert farm.cameras[1].stats()["state"] == "ready"


def test_a_disconnect_for_a_duration_ends_by_itself_when_no_reader_holds_the_camera(farm: Farm) -> None:
    cam = farm.cameras[1]
    fault = cam.inject("disconnect", for_="300ms")
    assert not vivid.connected(cam.number)
    wait_until(lambda: any(line["fault"] == fault.id and line["event"] == "end"
                           for line in read_log(farm.fault_log)), "the disconnect to end", timeout=10.0)
    assert vivid.connected(cam.number)


def test_a_disconnect_is_refused_while_a_setting_it_could_not_take_back_is_in_force(farm: Farm) -> None:
    cam = farm.cameras[1]
    with cam.inject("drop-buffers", percent=50) as drop:
        with pytest.raises(BadInput, match=f"camera 1 has drop-buffers in force \\({drop.id}\\): clear it first"):
            cam.inject("disconnect")
        assert vivid.connected(cam.number) and [f["kind"] for f in cam.faults()] == ["drop-buffers"]


def test_buffer_error_flags_exactly_one_dequeued_buffer(farm: Farm, stream: Stream) -> None:
    stream.next()
    fault = farm.cameras[0].inject("buffer-error")
    assert fault.info["reason"] == "done"  # one-shot: it ends as it starts
    flags = [stream.next().flags for _ in range(8)]
    assert sum(bool(flag & v4l2.BufferFlag.ERROR) for flag in flags) == 1, flags


def test_drop_buffers_leaves_gaps_in_the_sequence_until_cleared(farm: Farm, stream: Stream) -> None:
    stream.next()
    with farm.cameras[0].inject("drop-buffers", percent=90):
        assert v4l2.get_control(stream.fd, vivid.Control.PERCENT_DROPPED) == 90
        sequences = [stream.next().sequence for _ in range(6)]
    assert any(b - a > 1 for a, b in itertools.pairwise(sequences)), sequences
    assert v4l2.get_control(stream.fd, vivid.Control.PERCENT_DROPPED) == 0


def test_wraps_take_effect_at_the_next_streamon(farm: Farm) -> None:
    cam = farm.cameras[1]
    with cam.inject("wrap-sequence"), cam.inject("wrap-timestamp", bits=32):
        reader = Stream(cam.device)
    try:
        first = reader.next()
        assert WRAP - 128 <= first.sequence < WRAP
        assert 2**31 - 17 <= first.timestamp.secs < 2**31
        sequences = [first.sequence]
        while sequences[-1] >= sequences[0] and len(sequences) < 1000:
            sequences.append(reader.next().sequence)
        assert sequences[-1] < 128, sequences[-5:]  # wrapped past 2^32 - 1 to 0
    finally:
        reader.close()


@pytest.mark.parametrize(("kind", "step"), [("reqbufs-error", "REQBUFS"), ("qbuf-error", "QBUF"),
                                            ("streamon-error", "STREAMON")])
def test_an_injected_ioctl_error_fails_that_ioctl_once(farm: Farm, kind: str, step: str) -> None:
    cam = farm.cameras[1]
    cam.inject(kind)
    with pytest.raises(StreamFailed) as caught:
        Stream(cam.device)
    assert (caught.value.step, caught.value.errno) == (step, errno.EINVAL)
    reader = Stream(cam.device)  # only the next one fails
    try:
        reader.next()
    finally:
        reader.close()


def test_a_fatal_error_fails_the_streaming_reader_with_eio(farm: Farm, stream: Stream) -> None:
    stream.next()
    farm.cameras[0].inject("fatal-error")
    with pytest.raises(OSError) as caught:
        for _ in range(5):
            stream.next()
    assert caught.value.errno == errno.EIO


def test_a_loopback_fault_on_a_vivid_camera_is_refused_naming_the_backend(farm: Farm, capsys) -> None:
    with pytest.raises(BadInput, match=r"unplug needs the loopback or uvc backend .*camera 0 of farm viv is vivid"):
        farm.cameras[0].inject("unplug")
    for args, words in [(["fault", "0", "noise"], ("noise needs the loopback or uvc backend (provision "
                                                   "--backend loopback); camera 0 of farm viv is vivid")),
                        (["fault", "0", "drop-buffers", "101"], "outside [1, 100]"),
                        (["fault", "7", "disconnect"], "no camera 7")]:
        assert main([*args, "--farm", "viv"]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
    assert farm.faults() == [] and all(c.stats()["state"] == "ready" for c in farm.cameras)


def test_a_second_vivid_farm_is_refused_while_this_one_owns_vivid(farm: Farm) -> None:
    with pytest.raises(EnvironmentProblem, match="vivid is already loaded by farm viv"):
        Farm.provision(1, name="viv2", spec=SPEC, backend="vivid")
    assert farm.reload().cameras[0].stats()["state"] == "ready"
