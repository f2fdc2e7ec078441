"""The farm as a USB/IP server: its webcams listed and imported over TCP, as a `usbipd` offers devices.

A peer connects, sends one request and gets one answer, as with usbipd:
OP_REQ_DEVLIST lists the catalog's exports; OP_REQ_IMPORT of an offered busid
hands the rest of that connection to the export (``Export.serve``: the URB
stream) until the importer goes, and the export is offered again. One importer
at a time: an import of an imported busid is refused with ST_DEV_BUSY, of an
unknown one with ST_NODEV, and neither refusal carries device data.

Access (usbipd has none): ``allow`` lists the networks whose peers may list and
import; with no ``allow``, only loopback peers may, whatever the listen address,
so exporting to a network takes both a non-loopback ``listen`` and an ``allow``.
A refused peer's connection is closed unread, with one line on the
``simfarm.usbip`` logger.

Robustness: the handshake is bounded in bytes (exactly one request, nothing
after it) and in time (``handshake_timeout`` for the whole request); a
malformed, truncated, oversized or unknown request, a silent peer and one that
leaves mid-handshake each close that connection and nothing else.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ...devices.usb.usbip_protocol import (ST_DEV_BUSY, ST_NODEV, ST_OK, DevlistRequest, ExportedDevice, ProtocolError,
                                           Request, encode_devlist_reply, encode_import_reply,
                                           read_request)
from ...errors import BadInput, EnvironmentProblem
from ...listen import LOOPBACK, endpoint, parse_address

log = logging.getLogger("simfarm.usbip")

DEFAULT_ADDRESS, DEFAULT_PORT = LOOPBACK, 3240
HANDSHAKE_TIMEOUT = 10.0  # seconds a peer has to send its whole request
MAX_HANDSHAKES = 64  # connections still in their handshake at once; more are closed on arrival

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Export(Protocol):
    """A device the server offers: its record, and the device loop an importer's connection is handed to."""

    @property
    def device(self) -> ExportedDevice:
        """What DEVLIST and IMPORT replies say of it; its busid names it (unique in a catalog)."""

    def serve(self, connection: socket.socket) -> None:
        """Be the device on ``connection`` (blocking, in the server's thread for it) and return once the
        importer is gone: the peer closed, or the server shut the connection down (close, end_import).
        The connection is the export's to close; the server closes it too once this returns."""

    def counters(self) -> Mapping[str, int]:
        """Figures of the URB phase for status (frames, bytes served, ...)."""


@dataclass(frozen=True)
class ExportStatus:
    """One export as ``status`` sees it."""

    busid: str
    state: str  # "offered" or "imported"
    peer: str | None  # the importer, "ADDR:PORT" ("[ADDR]:PORT" for IPv6)
    since: float  # when it entered this state (time.time())
    counters: Mapping[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"busid": self.busid, "state": self.state, "peer": self.peer, "since": self.since,
                "counters": dict(self.counters)}


def parse_listen(text: str) -> tuple[str, int]:
    """``[ADDR][:PORT]`` as (address, port): ``127.0.0.1:3240`` by default (see simfarm.listen)."""
    return parse_address(text, "usbip listen address", DEFAULT_PORT)


def parse_allow(items: Iterable[str]) -> tuple[Network, ...]:
    """Networks from CIDRs or single addresses, each item possibly comma-separated (``--usbip-allow``)."""
    networks = []
    for item in items:
        for part in item.split(","):
            try:
                networks.append(ipaddress.ip_network(part.strip()))
            except ValueError as exc:
                raise BadInput(f"usbip allow {part.strip()!r}: not an address or CIDR such as "
                               f"192.168.1.0/24 or fd00::/8 ({exc})") from None
    return tuple(networks)


def allowed(peer: str, networks: Sequence[Network]) -> bool:
    """Whether the peer at address ``peer`` may list and import: in one of ``networks``, or, with none
    given, on loopback. An IPv4 peer on a dual-stack socket (::ffff:a.b.c.d) counts as its IPv4 address."""
    address = ipaddress.ip_address(peer.split("%")[0])  # a link-local peer's zone says nothing of who it is
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not networks:
        return address.is_loopback
    return any(address in network for network in networks)


def _peer_text(address: tuple) -> str:
    host, port = address[0], address[1]
    mapped = ipaddress.ip_address(host.split("%")[0])
    if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped is not None:
        host = str(mapped.ipv4_mapped)
    return endpoint(host, port)


@dataclass
class _Import:
    peer: str
    since: float
    connection: socket.socket


class UsbipServer:
    """A USB/IP server on ``listen`` for the exports ``catalog`` returns (asked afresh on every request,
    from the connections' threads, so the farm can add and withdraw them; it must be thread-safe).

    ``start`` binds and serves in threads; ``close`` ends every connection and import and returns once
    no thread or socket of the server is left.
    """

    def __init__(self, listen: str = f"{DEFAULT_ADDRESS}:{DEFAULT_PORT}", allow: Sequence[str] = (), *,
                 catalog: Callable[[], Sequence[Export]], handshake_timeout: float = HANDSHAKE_TIMEOUT,
                 max_handshakes: int = MAX_HANDSHAKES) -> None:
        self._host, self._port = parse_listen(listen)
        self._allow = parse_allow(allow)
        self._catalog = catalog
        self._handshake_timeout = handshake_timeout
        self._max_handshakes = max_handshakes
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # an export imported or released
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self._threads: set[threading.Thread] = set()
        self._connections: set[socket.socket] = set()
        self._handshakes = 0
        self._imports: dict[str, _Import] = {}
        self._released: dict[str, float] = {}
        self._started = 0.0
        self._closing = False

    @property
    def address(self) -> tuple[str, int]:
        """(address, port) listened on: the port is the one bound (a free one for port 0)."""
        if self._listener is None:
            return self._host, self._port
        return self._host, self._listener.getsockname()[1]

    def start(self) -> UsbipServer:
        try:
            self._listener = socket.create_server((self._host, self._port), family=socket.AF_INET6
                                                  if ":" in self._host else socket.AF_INET,
                                                  dualstack_ipv6=self._host == "::")
        except OSError as exc:
            raise EnvironmentProblem(f"cannot listen for USB/IP on {self._host} port {self._port}: "
                                     f"{exc.strerror or exc}", "give --usbip-listen a free address and port") from None
        self._started = time.time()
        self._accepting = threading.Thread(target=self._accept, name="usbip-accept", daemon=True)
        self._accepting.start()
        host, port = self.address
        log.info("USB/IP server on %s port %d", host, port)
        if not self._allow and not ipaddress.ip_address(host).is_loopback:
            log.warning("USB/IP server on %s without an allow list: only loopback peers may list and import", host)
        return self

    def close(self) -> None:
        """Stop listening, end every handshake and import, and wait for their threads."""
        with self._lock:
            self._closing = True
        if self._listener is not None:
            _shutdown(self._listener)  # wakes accept(); closed once that thread is gone, so no fd is reused
        if self._accepting is not None:
            self._accepting.join()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            # Under the lock, as in every shutdown: a connection in the set is not closed yet, so its
            # descriptor is not some new socket's.
            for connection in self._connections:
                _shutdown(connection)
            threads = list(self._threads)
        for thread in threads:
            thread.join()

    def __enter__(self) -> UsbipServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def status(self) -> list[ExportStatus]:
        """Each export of the catalog: offered, or imported by whom, since when, and its counters."""
        exports = self._catalog()
        with self._lock:
            imports, released = dict(self._imports), dict(self._released)
        found = []
        for export in exports:
            busid = export.device.busid
            held = imports.get(busid)
            found.append(ExportStatus(busid, "imported" if held else "offered", held.peer if held else None,
                                      held.since if held else released.get(busid, self._started),
                                      export.counters()))
        return found

    def end_import(self, busid: str) -> bool:
        """End the import of ``busid`` as if its cable were pulled (the importer's node goes); False when
        nobody imports it. It is offered again once its device loop has returned."""
        with self._lock:
            held = self._imports.get(busid)
            if held is not None:
                _shutdown(held.connection)
        return held is not None

    def wait_state(self, busid: str, state: str, timeout: float | None = None) -> bool:
        """Wait until ``busid`` is ``state`` ("imported", or "offered": not imported); False on timeout."""
        if state not in ("offered", "imported"):
            raise ValueError(f"unknown state {state!r}")
        with self._changed:
            return self._changed.wait_for(lambda: (busid in self._imports) == (state == "imported"), timeout)

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                connection, address = self._listener.accept()
            except OSError as exc:
                if self._closing:
                    return
                # Out of descriptors and the like: the pending peer waits in the backlog meanwhile.
                log.warning("USB/IP accept failed: %s", exc)
                time.sleep(0.1)
                continue
            peer = _peer_text(address)
            if not allowed(address[0], self._allow):
                log.warning("refused USB/IP peer %s: not in the allow list", peer)
                connection.close()
                continue
            with self._lock:
                if self._closing:
                    connection.close()
                    return
                if self._handshakes >= self._max_handshakes:
                    log.warning("closed USB/IP connection from %s: %d handshakes under way already", peer,
                                self._handshakes)
                    connection.close()
                    continue
                self._handshakes += 1
                self._connections.add(connection)
                thread = threading.Thread(target=self._handle, args=(connection, peer), daemon=True,
                                          name=f"usbip-{peer}")
                self._threads.add(thread)
                thread.start()

    def _handle(self, connection: socket.socket, peer: str) -> None:
        handshaking = True
        try:
            request = self._read_request(connection)
            exports = self._catalog()
            if isinstance(request, DevlistRequest):
                connection.sendall(encode_devlist_reply(e.device for e in exports))
                log.debug("listed %d USB/IP exports to %s", len(exports), peer)
            else:
                export = next((e for e in exports if e.device.busid == request.busid), None)
                with self._lock:
                    self._handshakes -= 1
                    handshaking = False
                self._import(connection, peer, request.busid, export)
        except ProtocolError as exc:
            log.warning("closed USB/IP connection from %s: %s", peer, exc)
        except TimeoutError:
            log.warning("closed USB/IP connection from %s: its handshake took over %g s", peer,
                        self._handshake_timeout)
        except OSError as exc:
            log.info("USB/IP connection from %s ended: %s", peer, exc.strerror or exc)
        except Exception:  # a catalog's or an export's bug ends this connection, not the server
            log.exception("USB/IP connection from %s failed", peer)
        finally:
            with self._lock:
                connection.close()
                self._handshakes -= handshaking
                self._connections.discard(connection)
                self._threads.discard(threading.current_thread())

    def _read_request(self, connection: socket.socket) -> Request:
        """The peer's one request, within the handshake's time; ProtocolError when bytes follow it."""
        deadline = time.monotonic() + self._handshake_timeout

        def read(size: int) -> bytes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            connection.settimeout(remaining)
            return connection.recv(size)

        request = read_request(read)
        # Neither stock client sends anything after its request before the reply; whatever arrived is
        # a packet longer than the request (or a client that does not wait), not the URB stream.
        connection.setblocking(False)
        try:
            extra = connection.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            extra = b""
        if extra:
            raise ProtocolError("bytes after the request")
        connection.settimeout(self._handshake_timeout)  # for the reply
        return request

    def _import(self, connection: socket.socket, peer: str, busid: str, export: Export | None) -> None:
        with self._lock:
            if export is None:
                status = ST_NODEV
            elif busid in self._imports:
                status = ST_DEV_BUSY
            else:
                status = ST_OK
                self._imports[busid] = _Import(peer, time.time(), connection)
                self._changed.notify_all()
        if export is None or status != ST_OK:
            log.info("refused USB/IP import of %s by %s: %s", busid, peer,
                     "no such export" if status == ST_NODEV else "imported already")
            connection.sendall(encode_import_reply(None, status))
            return
        try:
            connection.sendall(encode_import_reply(export.device))
            connection.settimeout(None)  # from here on the device's own pace: frames, or none for hours
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # URBs are small and latency-bound
            log.info("USB/IP export %s imported by %s", busid, peer)
            # The export gets its own descriptor: the server can still shut this one down (close,
            # end_import) whatever the export does with its copy.
            device_end = connection.dup()
            try:
                export.serve(device_end)
            finally:
                device_end.close()
        finally:
            with self._lock:
                del self._imports[busid]
                self._released[busid] = time.time()
                self._changed.notify_all()
            log.info("USB/IP export %s released by %s", busid, peer)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected (the peer went first) or closed already: nothing left to wake
