"""Facts about /dev/video nodes read from sysfs and /proc, and opening one as output."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import EnvironmentProblem, InUse

if TYPE_CHECKING:  # node_path users (status, teardown) need no specs: dataclasses, fractions
    from fractions import Fraction

    from ...spec import PixelFormat, Size

SYSFS = Path("/sys/class/video4linux")


def node_path(number: int) -> str:
    return f"/dev/video{number}"


def card_label(number: int) -> str | None:
    """The node's card name (v4l2loopback's card_label), None if no such node."""
    try:
        return (SYSFS / f"video{number}" / "name").read_text().strip()
    except OSError:
        return None


def usb_serial(number: int) -> str | None:
    """The USB serial of the device behind node ``number`` (a webcam's), None for other nodes."""
    try:
        return (SYSFS / f"video{number}" / "device" / ".." / "serial").read_text().strip()
    except OSError:
        return None


def numbers_with_label(label: str) -> list[int]:
    """Node numbers whose card name is exactly ``label``."""
    found = []
    for entry in SYSFS.glob("video*"):
        number = int(entry.name[5:])
        if card_label(number) == label:
            found.append(number)
    return sorted(found)


def usb_capture_node(busid: str, index: int = 0) -> str | None:
    """The capture node of the USB webcam at ``busid``: the one uvcvideo gives index 0 (``index``
    1 is its metadata node, which has no VIDEO_CAPTURE)."""
    for entry in _usb_video_entries(busid):
        try:
            if (entry / "index").read_text().strip() == str(index):
                return f"/dev/{entry.name}"
        except OSError:  # unplugged meanwhile
            continue
    return None


def usb_video_nodes(busid: str) -> list[str]:
    """Every video node (capture and metadata) of the USB device at ``busid``."""
    return [f"/dev/{entry.name}" for entry in _usb_video_entries(busid)]


def _usb_video_entries(busid: str) -> list[Path]:
    """The sysfs entries of the video nodes of the USB device at ``busid``, one per interface's node."""
    return sorted(Path("/sys/bus/usb/devices").glob(f"{busid}:*/video4linux/video*"))


def link_to(path: str, directory: str) -> str | None:
    """The link in ``directory`` (udev's /dev/v4l/by-id, by-path) that leads to node ``path``."""
    links = sorted(Path(directory).glob("*")) if Path(directory).is_dir() else []
    return next((str(link) for link in links if os.path.realpath(link) == path), None)


def holders(*paths: str) -> list[int]:
    """Pids of processes holding any of ``paths`` open (those we can see); one pass over /proc."""
    targets = {os.path.realpath(path) for path in paths}
    if not targets:
        return []
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in targets for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
        except OSError:  # the process ended or is not ours to inspect
            continue
    return sorted(pids)


class NodeBusy(InUse):
    """A node could not be removed because readers still hold it open."""

    def __init__(self, number: int, pids: list[int]) -> None:
        self.number = number
        super().__init__(node_path(number), pids)


def is_capture_device(path: str) -> bool:
    """Whether the node currently announces VIDEO_CAPTURE in its device caps."""
    from . import ioctl  # here: node_path users (status, teardown) need no ioctls

    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return bool(ioctl.query_capability(fd).device_caps & ioctl.CAP_VIDEO_CAPTURE)
    finally:
        os.close(fd)


def open_output(number: int, fmt: PixelFormat, size: Size, fps: Fraction) -> int:
    """Open node N for writing frames of ``fmt``/``size`` at ``fps``; returns the fd."""
    from . import ioctl

    path = node_path(number)
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        ioctl.set_format(fd, ioctl.VIDEO_OUTPUT, size.width, size.height, fmt.fourcc)
        ioctl.set_fps(fd, ioctl.VIDEO_OUTPUT, fps)
    except OSError as exc:
        os.close(fd)
        raise EnvironmentProblem(f"{path} refused {fmt.name} {size}@{fps}: {exc.strerror}") from None
    return fd
