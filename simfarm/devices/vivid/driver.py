"""The vivid backend's kernel side: loading the vivid test driver, finding its nodes, its controls.

vivid (the kernel's Virtual Video Test Driver) draws its own frames and can do
what v4l2loopback cannot: disconnect under an open reader, fail ioctls and
buffers on request, enumerate like a real webcam. Its instances are fixed
when the module loads, so a vivid farm loads the module itself (one
webcam-like instance per camera: a capture node plus a metadata node) and
unloads it at teardown. A vivid simfarm did not load is never used or
unloaded: loading refuses while one is present.
"""

from __future__ import annotations

import enum
import errno
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from linuxpy.video import device as v4l2

from ...errors import BadInput, EnvironmentProblem
from ...spec import CameraSpec, PixelFormat, Size
from ..kmod import kmodule
from ..v4l2 import nodes

MODULE = "vivid"
# node_types 0x20001: a video capture node and a metadata capture node; one
# webcam input (input_types 0): discrete sizes and frame intervals. The
# default node types also make outputs, radio, SDR, touch... and take long
# to load under emulation.
_INSTANCE_PARAMS = {"node_types": "0x20001", "num_inputs": "1", "input_types": "0x0"}
_NODE_NAME = re.compile(r"^vivid-(\d{3})-(vid|meta)-cap$")


class Control(enum.IntEnum):
    """vivid's streaming and error-injection controls (drivers/media/test-drivers/vivid/vivid-ctrls.c)."""

    WRAP_SEQUENCE = 0x00F0F026  # bool: sequence starts 128 below 2^32 at the next STREAMON
    WRAP_TIMESTAMP = 0x00F0F027  # menu: 0 none, 1 64-bit ns, 2 32-bit s; at the next STREAMON
    PERCENT_DROPPED = 0x00F0F040  # int 0..100
    DISCONNECT = 0x00F0F041  # button
    BUFFER_ERROR = 0x00F0F042  # button: next buffer done with V4L2_BUF_FLAG_ERROR
    REQBUFS_ERROR = 0x00F0F043  # button
    QBUF_ERROR = 0x00F0F044  # button
    STREAMON_ERROR = 0x00F0F045  # button
    FATAL_ERROR = 0x00F0F046  # button: vb2_queue_error on a streaming capture queue


class AlreadyLoaded(EnvironmentProblem):
    """vivid is loaded, and not by simfarm: never ours to use or unload."""

    def __init__(self) -> None:
        super().__init__("vivid is already loaded, and not by simfarm: a vivid farm loads it itself",
                         "modprobe -r vivid once nothing uses it")


@dataclass(frozen=True)
class Instance:
    """One vivid instance: its number (NNN in ``vivid-NNN-vid-cap``) and its two nodes."""

    index: int
    capture: int
    metadata: int


def loaded() -> bool:
    return kmodule.loaded(MODULE)


def load(count: int) -> list[Instance]:
    """Load vivid with ``count`` webcam-like instances; returns them. Refuses when vivid is loaded already."""
    try:
        kmodule.load(MODULE, {"n_devs": str(count),
                              **{name: ",".join([value] * count) for name, value in _INSTANCE_PARAMS.items()}})
    except EnvironmentProblem:
        if loaded():
            raise AlreadyLoaded() from None
        raise
    found = instances()
    if len(found) != count:
        raise EnvironmentProblem(f"vivid loaded but {len(found)} of {count} instances have both nodes")
    return found


def instances() -> list[Instance]:
    """vivid's instances, from sysfs: node names say which instance and which node each is."""
    by_instance: dict[int, dict[str, int]] = {}
    for entry in nodes.SYSFS.glob("video*"):
        number = int(entry.name[5:])
        match = _NODE_NAME.match(nodes.card_label(number) or "")
        if match and _driver(entry) == MODULE:
            by_instance.setdefault(int(match[1]), {})[match[2]] = number
    return [Instance(index, found["vid"], found["meta"])
            for index, found in sorted(by_instance.items()) if found.keys() == {"vid", "meta"}]


def _driver(entry: Path) -> str | None:
    try:
        return os.path.basename(os.readlink(entry / "device" / "driver"))
    except OSError:
        return None


def unload(*, timeout: float = 10.0) -> bool:
    """Unload vivid, waiting up to ``timeout`` s for readers to close its nodes.

    Returns False when it was not loaded. Raises InUse naming the pids
    holding a node when they outlast the wait.
    """
    if not loaded():
        return False
    kmodule.unload(MODULE, timeout=timeout, holders=lambda: nodes.holders(
        *(nodes.node_path(number) for inst in instances() for number in (inst.capture, inst.metadata))))
    return True


def set_control(number: int, control: Control, value: int = 0) -> None:
    """Set one of vivid's controls through node N (a button is pressed whatever ``value``)."""
    fd = open_node(number)
    try:
        press(fd, control, value)
    finally:
        os.close(fd)


def press(fd: int, control: Control, value: int = 0) -> None:
    """Set ``control`` through an open node."""
    try:
        v4l2.set_control(fd, int(control), value)
    except OSError as exc:
        raise EnvironmentProblem(f"vivid refused {control.name}={value}: {exc.strerror}") from None


def open_node(number: int) -> int:
    """Open node N; a disconnected vivid node raises EnvironmentProblem (ENODEV)."""
    try:
        return os.open(nodes.node_path(number), os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            raise EnvironmentProblem(f"{nodes.node_path(number)} is disconnected") from None
        raise EnvironmentProblem(f"cannot open {nodes.node_path(number)}: {exc.strerror}") from None


def connected(number: int) -> bool:
    """Whether node N answers (a disconnected vivid node fails every open with ENODEV)."""
    try:
        os.close(open_node(number))
    except EnvironmentProblem:
        return False
    return True


Offer = dict[PixelFormat, dict[Size, list[Fraction]]]


def offered(number: int) -> Offer:
    """What capture node N enumerates, in formats simfarm can read: sizes and frame rates per format."""
    fd = open_node(number)
    try:
        offer: Offer = {}
        for desc in v4l2.iter_read_formats(fd, v4l2.BufferType.VIDEO_CAPTURE):
            try:
                fmt = PixelFormat.from_fourcc(int(desc.pixel_format))
            except BadInput:
                continue  # vivid offers many formats simfarm's readers do not decode
            offer[fmt] = {
                Size(frame.info.width, frame.info.height): [
                    Fraction(interval.min_fps).limit_denominator(1001)
                    for interval in v4l2.iter_read_frame_intervals(fd, desc.pixel_format, frame.info.width,
                                                                    frame.info.height)]
                for frame in v4l2.iter_read_frame_sizes(fd, desc.pixel_format)}
        return offer
    finally:
        os.close(fd)


def configure(number: int, spec: CameraSpec) -> None:
    """Make ``spec``'s format, size and rate capture node N's current format (readers may change it).

    Raises BadInput naming what vivid offers when it does not offer ``spec``.
    """
    offer = offered(number)
    sizes = offer.get(spec.format)
    if sizes is None:
        raise BadInput(f"vivid does not offer {spec.format.name} (it offers {', '.join(f.name for f in offer)})")
    rates = sizes.get(spec.size)
    if rates is None:
        raise BadInput(f"vivid does not offer {spec.size} in {spec.format.name} "
                       f"(it offers {', '.join(map(str, sizes))})")
    if spec.fps not in rates:
        raise BadInput(f"vivid does not offer {spec.fps} fps at {spec.size} "
                       f"(it offers {', '.join(str(rate) for rate in sorted(rates))})")
    fd = open_node(number)
    try:
        v4l2.set_format(fd, v4l2.BufferType.VIDEO_CAPTURE, spec.size.width, spec.size.height, spec.format.value)
        v4l2.set_fps(fd, v4l2.BufferType.VIDEO_CAPTURE, spec.fps)
    finally:
        os.close(fd)
