"""A USB webcam made of the kernel's gadget stack: a configfs gadget with one UVC function.

The gadget describes the webcam (ids, strings, formats with their discrete
sizes and frame intervals); bound to a UDC it gets a gadget-side V4L2 output
node (driver ``g_uvc``) through which a userspace process answers the host's
requests and feeds frames (see uvc_function). A gadget is named by whoever
makes it; :func:`remove` takes only a gadget whose serial is the one its
maker recorded, so a gadget simfarm did not make is never touched.

Layout (Documentation/ABI/testing/configfs-usb-gadget-uvc): formats are
linked into one streaming header in profile order, so bFormatIndex is the
profile's format order and bFrameIndex each format's size order, both from 1.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import EnvironmentProblem
from ..spec import PixelFormat, Size
from . import kmodule, sysfs

CONFIGFS = Path("/sys/kernel/config/usb_gadget")
UDC_CLASS = Path("/sys/class/udc")
GADGET_MODULES = ("libcomposite", "usb_f_uvc")
_FUNCTION = "functions/uvc.0"
_LANG = "strings/0x409"
# Bytes per isochronous microframe (3 x 1024, the high-speed maximum): the bandwidth a reader can get.
MAX_PACKET = 3072
_FORMAT_DIRS = {PixelFormat.YUYV: "uncompressed/u", PixelFormat.MJPEG: "mjpeg/m"}


@dataclass(frozen=True)
class FrameSize:
    size: Size
    rates: tuple[Fraction, ...]  # frames per second, the first the default

    @property
    def intervals(self) -> list[int]:
        """Frame intervals in the descriptor's 100 ns units."""
        return [round(Fraction(10_000_000) / rate) for rate in self.rates]


@dataclass(frozen=True)
class Format:
    format: PixelFormat
    sizes: tuple[FrameSize, ...]


@dataclass(frozen=True)
class Control:
    """A processing-unit control: its range, step and default (UVC's GET_MIN/MAX/RES/DEF)."""

    name: str
    minimum: int
    maximum: int
    step: int
    default: int


@dataclass(frozen=True)
class Profile:
    """What a webcam is, as the host sees it."""

    name: str
    vendor_id: int
    product_id: int
    manufacturer: str
    product: str
    serial: str
    formats: tuple[Format, ...]
    controls: tuple[Control, ...]


def frame_buffer_size(fmt: PixelFormat, size: Size) -> int:
    """The largest frame of ``fmt`` at ``size``: YUYV's exact size, and the same bound for a JPEG."""
    return size.width * size.height * 2


def free_udcs(prefix: str = "usbip-vudc.") -> list[str]:
    """UDCs named ``prefix``N that no gadget is bound to, in number order."""
    if not UDC_CLASS.is_dir():
        return []
    names = sorted((p.name for p in UDC_CLASS.iterdir() if p.name.startswith(prefix)),
                   key=lambda name: int(name[len(prefix):]))
    return [name for name in names if not sysfs.read(UDC_CLASS / name / "function")]


def create(name: str, profile: Profile) -> Path:
    """Make gadget ``name`` describing ``profile`` (not yet bound); returns its directory.

    Raises EnvironmentProblem when configfs or the modules are missing, or the name is taken.
    """
    for module in GADGET_MODULES:
        kmodule.ensure(module)
    if not CONFIGFS.is_dir():
        raise EnvironmentProblem(f"{CONFIGFS} is missing: configfs is not mounted",
                                 "mount -t configfs none /sys/kernel/config")
    gadget = CONFIGFS / name
    try:
        gadget.mkdir()
    except FileExistsError:
        raise EnvironmentProblem(f"a USB gadget named {name} exists already") from None
    _write(gadget / "idVendor", f"{profile.vendor_id:#06x}")
    _write(gadget / "idProduct", f"{profile.product_id:#06x}")
    _write(gadget / "bcdUSB", "0x0200")
    strings = gadget / _LANG
    strings.mkdir()
    for attribute, value in (("manufacturer", profile.manufacturer), ("product", profile.product),
                             ("serialnumber", profile.serial)):
        _write(strings / attribute, value)
    config = gadget / "configs/c.1"
    config.mkdir(parents=True)
    function = gadget / _FUNCTION
    function.mkdir()
    _write(function / "streaming_maxpacket", str(MAX_PACKET))
    _write(function / "function_name", profile.product)  # uvcvideo names the node "<product>: <this>"
    _link(function / "control/header/h", function / "control/class/fs", function / "control/class/ss")
    header = function / "streaming/header/h"
    header.mkdir()
    for fmt in profile.formats:
        fmt_dir = function / "streaming" / _FORMAT_DIRS[fmt.format]
        fmt_dir.mkdir()
        for frame in fmt.sizes:
            _make_frame(fmt_dir / f"{frame.size.width}x{frame.size.height}", fmt.format, frame)
        os.symlink(fmt_dir, header / fmt_dir.name)
    _link(header, *(function / "streaming/class" / speed for speed in ("fs", "hs", "ss")))
    os.symlink(function, config / "uvc.0")
    return gadget


def _make_frame(path: Path, fmt: PixelFormat, frame: FrameSize) -> None:
    path.mkdir()
    _write(path / "wWidth", str(frame.size.width))
    _write(path / "wHeight", str(frame.size.height))
    _write(path / "dwMaxVideoFrameBufferSize", str(frame_buffer_size(fmt, frame.size)))
    _write(path / "dwDefaultFrameInterval", str(frame.intervals[0]))
    _write(path / "dwFrameInterval", "\n".join(map(str, frame.intervals)))


def _link(target: Path, *classes: Path) -> None:
    """Link ``target`` into each class directory under the same name, as the ABI asks."""
    target.mkdir(exist_ok=True)
    for directory in classes:
        os.symlink(target, directory / target.name)


def bind(name: str, udc: str) -> None:
    """Bind gadget ``name`` to ``udc``: its gadget-side output node appears."""
    _write(CONFIGFS / name / "UDC", udc)


def interface_numbers(name: str) -> tuple[int, int]:
    """The (control, streaming) interface numbers of a bound gadget, as the host addresses them."""
    function = CONFIGFS / name / _FUNCTION
    return (int(sysfs.read(function / "control/bInterfaceNumber") or 0),
            int(sysfs.read(function / "streaming/bInterfaceNumber") or 1))


def output_node(udc: str) -> str:
    """The gadget-side V4L2 node of the UVC function bound to ``udc`` (its gadget's video4linux child)."""
    found = sorted((UDC_CLASS / udc / "device").glob("gadget*/video4linux/video*"))
    if not found:
        raise EnvironmentProblem(f"no g_uvc node appeared under UDC {udc}")
    return f"/dev/{found[0].name}"


def serial(name: str) -> str | None:
    """The serial string of gadget ``name``; None when there is no such gadget."""
    return sysfs.read(CONFIGFS / name / _LANG / "serialnumber")


def remove(name: str, expected_serial: str) -> bool:
    """Unbind and remove gadget ``name`` if it carries ``expected_serial``; False when it is gone.

    Raises EnvironmentProblem, touching nothing, for a gadget of that name with another serial.
    """
    gadget = CONFIGFS / name
    found = serial(name)
    if found is None:
        return False
    if found != expected_serial:
        raise EnvironmentProblem(f"USB gadget {name} has serial {found!r}, not ours ({expected_serial!r}): "
                                 "left alone")
    if sysfs.read(gadget / "UDC"):
        _write(gadget / "UDC", "\n")
    # configfs undoes in reverse: links first, then directories bottom-up. Groups the kernel made
    # itself (default groups) refuse rmdir with EPERM and go with their parent.
    for directory, subdirs, _files in os.walk(gadget, topdown=False):
        for entry in subdirs:
            path = Path(directory) / entry
            if path.is_symlink():
                path.unlink()
    for directory, _subdirs, _files in os.walk(gadget, topdown=False):
        try:
            os.rmdir(directory)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOENT):
                raise
    return True


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write {value!r} to {path}: {exc.strerror}") from None
