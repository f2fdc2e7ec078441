"""The importing side of USB/IP's handshake, as the stock `usbip list -r` and `usbip attach -r` do it.

One connection per request, TCP_NODELAY and keepalive set as the stock client
sets them. An import returns its connection, now carrying the device's URBs,
for the caller to hand to the local vhci-hcd (its ``attach`` file takes the
socket, the devid busnum << 16 | devnum and the record's speed).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TypeVar

from ...devices.usb.usbip_protocol import (ST_DEV_BUSY, ST_NODEV, DevlistRequest, ExportedDevice, ImportRequest,
                                           ProtocolError, Read, StatusError, encode_request, read_devlist_reply,
                                           read_import_reply)
from ...errors import BadInput, EnvironmentProblem
from ...listen import endpoint
from .server import DEFAULT_PORT

TIMEOUT = 10.0  # seconds for connecting, and for each read of the answer
_T = TypeVar("_T")


def list_remote(host: str, port: int = DEFAULT_PORT, timeout: float = TIMEOUT) -> list[ExportedDevice]:
    """The devices the USB/IP server at ``host``:``port`` exports (OP_REQ_DEVLIST)."""
    with _connect(host, port, timeout) as connection:
        return _ask(connection, host, port, DevlistRequest(), read_devlist_reply)


def import_device(host: str, port: int, busid: str,
                  timeout: float = TIMEOUT) -> tuple[socket.socket, ExportedDevice]:
    """Import ``busid`` from the server at ``host``:``port`` (OP_REQ_IMPORT): the connected socket (blocking,
    no timeout: the URB stream keeps its own pace) and the device's record (without its interfaces: an
    import reply carries none). BadInput when the server exports no such busid; EnvironmentProblem when
    another importer holds it, or the server cannot be reached or does not answer as USB/IP."""
    connection = _connect(host, port, timeout)
    try:
        device = _ask(connection, host, port, ImportRequest(busid), read_import_reply)
        if device.busid != busid:  # the stock client checks this too
            raise EnvironmentProblem(f"USB/IP server {endpoint(host, port)} answered an import of {busid} "
                                     f"with device {device.busid}")
    except BaseException:
        connection.close()
        raise
    connection.settimeout(None)
    return connection, device


def parse_server(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[IPV6]:PORT``; a bare IPv6 address is the host alone) as (host, port), port 3240
    by default. The host is a name or an address: connecting resolves it."""
    host, separator, port = text.strip(), "", ""
    if host.startswith("[") and "]" in host:
        host, rest = host[1:].split("]", 1)
        separator, port = rest[:1], rest[1:]
    elif host.count(":") == 1:
        host, separator, port = host.partition(":")
    if not host or separator not in ("", ":") or (separator and not (port.isdigit() and 0 < int(port) <= 0xFFFF)):
        raise BadInput(f"USB/IP server {text!r}: expected HOST, HOST:PORT or [IPV6]:PORT (a port from 1 to 65535)")
    return host, int(port) if port else DEFAULT_PORT


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    try:
        connection = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot reach the USB/IP server at {endpoint(host, port)}: "
                                 f"{exc.strerror or exc}") from None
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    return connection


def _ask(connection: socket.socket, host: str, port: int, request: DevlistRequest | ImportRequest,
         read_reply: Callable[[Read], _T]) -> _T:
    where = endpoint(host, port)
    try:
        connection.sendall(encode_request(request))
        return read_reply(connection.recv)
    except StatusError as exc:
        busid = getattr(request, "busid", "")
        if exc.status == ST_NODEV:
            raise BadInput(f"USB/IP server {where} exports no device {busid}") from None
        if exc.status == ST_DEV_BUSY:
            raise EnvironmentProblem(f"device {busid} of USB/IP server {where} is imported by another machine",
                                     "detach it there first") from None
        raise EnvironmentProblem(f"USB/IP server {where} refused: {exc}") from None
    except ProtocolError as exc:
        raise EnvironmentProblem(f"USB/IP server {where} did not answer as USB/IP: {exc} (one that closes at "
                                 f"once refused this machine: see its allow list)") from None
    except TimeoutError:
        raise EnvironmentProblem(f"USB/IP server {where} did not answer within the timeout") from None
    except OSError as exc:
        raise EnvironmentProblem(f"USB/IP server {where}: {exc.strerror or exc}") from None
