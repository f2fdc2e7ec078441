"""USB/IP's handshake, the part before the URB stream: device lists and imports (version 0x0111).

A pure codec after Documentation/usb/usbip_protocol.rst and the stock tools'
layouts (tools/usb/usbip: usbip_network.h, usbip_common.h): every field
big-endian; an 8-byte header (version, code, status), then

- OP_REQ_DEVLIST: nothing more.  OP_REP_DEVLIST: the number of devices (u32), then per device
  its 312-byte record and 4 bytes per interface (class, subclass, protocol, padding).
- OP_REQ_IMPORT: the busid (32 bytes, NUL-terminated).  OP_REP_IMPORT: the record alone, and
  only when the status is ST_OK: a refusal is the header and nothing else.

Readers take a ``read(n)`` callable (``socket.recv``, ``BytesIO.read``) that returns at most ``n``
bytes and ``b""`` at the end, and never ask it for more than the layout holds: whatever follows a
request is the caller's (the URB stream, or an error). Every malformed input is a ProtocolError.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

VERSION = 0x0111
OP_REQ_IMPORT, OP_REP_IMPORT = 0x8003, 0x0003
OP_REQ_DEVLIST, OP_REP_DEVLIST = 0x8005, 0x0005
# Statuses of a reply's header (usbip_common.h). usbipd answers an import of a busid it does not
# export with ST_NODEV and one already in use with ST_DEV_BUSY.
ST_OK, ST_NA, ST_DEV_BUSY, ST_DEV_ERR, ST_NODEV, ST_ERROR = 0, 1, 2, 3, 4, 5
STATUS_NAMES = {ST_OK: "ok", ST_NA: "not available", ST_DEV_BUSY: "device busy",
                ST_DEV_ERR: "device in error state", ST_NODEV: "no such device", ST_ERROR: "error"}
# enum usb_device_speed (include/uapi/linux/usb/ch9.h)
SPEED_LOW, SPEED_FULL, SPEED_HIGH, SPEED_WIRELESS, SPEED_SUPER, SPEED_SUPER_PLUS = 1, 2, 3, 4, 5, 6

HEADER = struct.Struct(">HHI")
PATH_SIZE, BUSID_SIZE = 256, 32  # SYSFS_PATH_MAX, SYSFS_BUS_ID_SIZE
_RECORD = struct.Struct(f">{PATH_SIZE}s{BUSID_SIZE}sIIIHHHBBBBBB")
RECORD_SIZE = _RECORD.size  # 312
_INTERFACE = struct.Struct(">BBBx")
_COUNT = struct.Struct(">I")
IMPORT_REQUEST_SIZE = HEADER.size + BUSID_SIZE

Read = Callable[[int], bytes]


class ProtocolError(Exception):
    """The bytes are not what the protocol allows here (or stop short of it)."""


class StatusError(ProtocolError):
    """A well-formed reply whose status is not ST_OK: the server refused the request."""

    def __init__(self, code: int, status: int) -> None:
        self.code, self.status = code, status
        super().__init__(f"request refused: {STATUS_NAMES.get(status, 'unknown status')} ({status})")


@dataclass(frozen=True)
class ExportedDevice:
    """One device as a USB/IP server describes it (struct usbip_usb_device and its interfaces)."""

    busid: str  # e.g. "1-1": what an importer asks for
    path: str  # the device's sysfs path on the server: informative, `usbip list -r` prints it
    busnum: int
    devnum: int  # vhci-hcd's devid for the import is busnum << 16 | devnum
    speed: int  # SPEED_*: vhci-hcd picks a SuperSpeed or a high-speed port by it
    id_vendor: int
    id_product: int
    bcd_device: int
    device_class: int
    device_subclass: int
    device_protocol: int
    configuration_value: int
    num_configurations: int
    interfaces: tuple[tuple[int, int, int], ...]  # (class, subclass, protocol) of each interface

    def __post_init__(self) -> None:
        _check_text(self.busid, BUSID_SIZE, "busid")
        if self.path:
            _check_text(self.path, PATH_SIZE, "path")
        for name, bits in (("busnum", 32), ("devnum", 32), ("speed", 32), ("id_vendor", 16), ("id_product", 16),
                           ("bcd_device", 16), ("device_class", 8), ("device_subclass", 8), ("device_protocol", 8),
                           ("configuration_value", 8), ("num_configurations", 8)):
            if not 0 <= getattr(self, name) < 1 << bits:
                raise ValueError(f"{name} must fit {bits} bits")
        if len(self.interfaces) > 0xFF or not all(len(i) == 3 and all(0 <= v <= 0xFF for v in i)
                                                   for i in self.interfaces):
            raise ValueError("interfaces must be at most 255 (class, subclass, protocol) byte triples")


@dataclass(frozen=True)
class DevlistRequest:
    """OP_REQ_DEVLIST: which devices do you export?"""


@dataclass(frozen=True)
class ImportRequest:
    """OP_REQ_IMPORT: hand me device ``busid`` (this connection then carries its URBs)."""

    busid: str


Request = DevlistRequest | ImportRequest


def _check_text(text: str, size: int, what: str) -> None:
    # The peer reads a C string out of a fixed field: it must leave room for the NUL.
    if not text or len(text) >= size or not text.isascii() or not text.isprintable():
        raise ValueError(f"{what} must be 1 to {size - 1} printable ASCII characters, not {text!r}")


def _c_string(field: bytes, what: str) -> str:
    """The NUL-terminated ASCII text at the start of ``field`` (what follows the NUL is padding)."""
    end = field.find(b"\0")
    if end < 0:
        raise ProtocolError(f"{what} is not NUL-terminated")
    text = field[:end]
    if not text.isascii() or not text.decode().isprintable():
        raise ProtocolError(f"{what} is not printable ASCII: {text!r}")
    return text.decode()


def read_exactly(read: Read, size: int, what: str) -> bytes:
    """``size`` bytes from ``read``; ProtocolError when the stream ends first."""
    parts, got = [], 0
    while got < size:
        part = read(size - got)
        if not part:
            raise ProtocolError(f"{what}: the stream ended after {got} of {size} bytes")
        if len(part) > size - got:
            raise ValueError("read returned more than it was asked for")
        parts.append(part)
        got += len(part)
    return b"".join(parts)


# ---- requests (the importer sends, the server reads)

def encode_request(request: Request) -> bytes:
    """The bytes the stock `usbip list -r` / `usbip attach -r` send."""
    if isinstance(request, DevlistRequest):
        return HEADER.pack(VERSION, OP_REQ_DEVLIST, ST_OK)
    _check_text(request.busid, BUSID_SIZE, "busid")
    return HEADER.pack(VERSION, OP_REQ_IMPORT, ST_OK) + request.busid.encode().ljust(BUSID_SIZE, b"\0")


def read_request(read: Read) -> Request:
    """One request read from ``read``: exactly 8 or 40 bytes, never more.

    ProtocolError when the version is not 0x0111, the code is neither request this
    server answers, a request's status is not 0, or the stream stops short.
    """
    version, code, status = HEADER.unpack(read_exactly(read, HEADER.size, "request header"))
    if version != VERSION:
        raise ProtocolError(f"version {version:#06x}, not {VERSION:#06x}")
    if code not in (OP_REQ_DEVLIST, OP_REQ_IMPORT):
        raise ProtocolError(f"unknown request code {code:#06x}")
    if status != ST_OK:
        raise ProtocolError(f"a request's status must be 0, not {status}")
    if code == OP_REQ_DEVLIST:
        return DevlistRequest()
    busid = _c_string(read_exactly(read, BUSID_SIZE, "import request"), "busid")
    if not busid:
        raise ProtocolError("busid is empty")
    return ImportRequest(busid)


def decode_request(data: bytes) -> Request:
    """The request that ``data`` is, all of it: bytes left over are a ProtocolError too."""
    at = 0

    def read(size: int) -> bytes:
        nonlocal at
        part = data[at:at + size]
        at += len(part)
        return part

    request = read_request(read)
    if at != len(data):
        raise ProtocolError(f"{len(data) - at} bytes after the request")
    return request


# ---- replies (the server sends, the importer reads)

def _record(device: ExportedDevice) -> bytes:
    return _RECORD.pack(device.path.encode(), device.busid.encode(), device.busnum, device.devnum, device.speed,
                        device.id_vendor, device.id_product, device.bcd_device, device.device_class,
                        device.device_subclass, device.device_protocol, device.configuration_value,
                        device.num_configurations, len(device.interfaces))


def encode_devlist_reply(devices: Iterable[ExportedDevice]) -> bytes:
    """OP_REP_DEVLIST with ``devices``: each record followed by its interfaces."""
    devices = list(devices)
    body = b"".join(_record(d) + b"".join(_INTERFACE.pack(*i) for i in d.interfaces) for d in devices)
    return HEADER.pack(VERSION, OP_REP_DEVLIST, ST_OK) + _COUNT.pack(len(devices)) + body


def encode_import_reply(device: ExportedDevice | None, status: int = ST_OK) -> bytes:
    """OP_REP_IMPORT: the record of ``device`` (ST_OK), or a refusal's bare header (``status``)."""
    if (status == ST_OK) != (device is not None):
        raise ValueError("a device goes with ST_OK and only with it")
    return HEADER.pack(VERSION, OP_REP_IMPORT, status) + (_record(device) if device is not None else b"")


def _read_reply_header(read: Read, code: int) -> None:
    version, got, status = HEADER.unpack(read_exactly(read, HEADER.size, "reply header"))
    if version != VERSION:
        raise ProtocolError(f"version {version:#06x}, not {VERSION:#06x}")
    if got != code:
        raise ProtocolError(f"reply code {got:#06x}, expected {code:#06x}")
    if status != ST_OK:
        raise StatusError(code, status)


def _read_record(read: Read, with_interfaces: bool) -> ExportedDevice:
    (path, busid, busnum, devnum, speed, vendor, product, bcd, cls, subclass, protocol, config, configs,
     count) = _RECORD.unpack(read_exactly(read, RECORD_SIZE, "device record"))
    interfaces = tuple(_INTERFACE.unpack(read_exactly(read, _INTERFACE.size, "interface"))
                       for _ in range(count if with_interfaces else 0))
    # An import's record says bNumInterfaces but carries no interfaces: they stay unknown (empty).
    path_text = _c_string(path, "path") if path.strip(b"\0") else ""
    try:
        return ExportedDevice(_c_string(busid, "busid"), path_text, busnum, devnum, speed, vendor, product, bcd,
                              cls, subclass, protocol, config, configs, interfaces)
    except ValueError as exc:
        raise ProtocolError(f"device record: {exc}") from None


def read_devlist_reply(read: Read) -> list[ExportedDevice]:
    """The devices of an OP_REP_DEVLIST; StatusError when the server refused."""
    _read_reply_header(read, OP_REP_DEVLIST)
    (count,) = _COUNT.unpack(read_exactly(read, _COUNT.size, "device count"))
    return [_read_record(read, with_interfaces=True) for _ in range(count)]


def read_import_reply(read: Read) -> ExportedDevice:
    """The device of an OP_REP_IMPORT (its interfaces are not part of it: empty); StatusError
    (ST_NODEV, ST_DEV_BUSY, ...) when the server refused."""
    _read_reply_header(read, OP_REP_IMPORT)
    return _read_record(read, with_interfaces=False)


# ---- a record from the descriptors the device answers with

def device_from_descriptors(device: bytes, configuration: bytes, *, busid: str, path: str, busnum: int,
                            devnum: int, speed: int) -> ExportedDevice:
    """The record a usbipd would list for a device whose device and (full) configuration descriptors
    are these: ids, class and interfaces come from the descriptors, so they cannot disagree with what
    the importer's kernel reads when it enumerates the device."""
    if len(device) < 18 or device[1] != 1:
        raise ValueError("not a device descriptor")
    if len(configuration) < 9 or configuration[1] != 2:
        raise ValueError("not a configuration descriptor")
    cls, subclass, protocol = device[4:7]
    vendor, product, bcd = struct.unpack_from("<HHH", device, 8)
    interfaces, at = [], 0
    while at + 2 <= len(configuration) and configuration[at] >= 2:
        length, kind = configuration[at], configuration[at + 1]
        if kind == 4 and length >= 9 and configuration[at + 3] == 0:  # an interface's default setting
            interfaces.append((configuration[at + 5], configuration[at + 6], configuration[at + 7]))
        at += length
    return ExportedDevice(busid, path, busnum, devnum, speed, vendor, product, bcd, cls, subclass, protocol,
                          configuration[5], device[17], tuple(interfaces))


# ---- simfarm's records: the path names the farm and the camera's label, for importers to choose by

_SIMFARM_PATHS = "/sys/devices/simfarm/"


def simfarm_path(farm: str, label: str) -> str:
    """The path a farm's export gives in its record (informative to `usbip list -r`, which prints it)."""
    return f"{_SIMFARM_PATHS}{farm}/{label}"


def simfarm_label(device: ExportedDevice) -> str | None:
    """The camera label of a farm's export; None for a device some other server exports."""
    if not device.path.startswith(_SIMFARM_PATHS):
        return None
    return device.path.rsplit("/", 1)[-1]
