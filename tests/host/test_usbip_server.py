"""The farm's USB/IP server, over real TCP on loopback with exports that echo: listing and importing
through the client (and the stock `usbip` tool when installed), one importer at a time, access rules,
and bad peers that close their own connection and nothing else."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simfarm.devices.usb.usbip_protocol import (SPEED_SUPER, ST_DEV_BUSY, ST_NODEV, DevlistRequest, ExportedDevice,
                                                ImportRequest, encode_import_reply, encode_request)
from simfarm.errors import BadInput, EnvironmentProblem
from simfarm.publishers.usbip import client
from simfarm.publishers.usbip.server import UsbipServer, allowed, parse_allow, parse_listen

WAIT = 10.0  # bound on every wait for an event: a failure, not a pace


def record(busid: str) -> ExportedDevice:
    return ExportedDevice(busid, f"/sys/devices/simfarm/{busid}", 1, int(busid.split("-")[1]) + 1, SPEED_SUPER,
                          0x1D6B, 0x0102, 0x0100, 0xEF, 0x02, 0x01, 1, 1, ((0x0E, 0x01, 0x00), (0x0E, 0x02, 0x00)))


class EchoExport:
    """An export whose device loop echoes what the importer sends, counting the bytes."""

    def __init__(self, busid: str) -> None:
        self.device = record(busid)
        self.received = 0

    def serve(self, connection: socket.socket) -> None:
        with connection:
            try:
                while data := connection.recv(65536):
                    self.received += len(data)
                    connection.sendall(data)
            except OSError:
                pass  # the importer reset the connection: gone all the same

    def counters(self) -> dict[str, int]:
        return {"bytes": self.received}


@pytest.fixture
def exports() -> list[EchoExport]:
    return [EchoExport("1-1"), EchoExport("1-2")]


def serve(exports: Sequence[EchoExport], **options: object) -> UsbipServer:
    return UsbipServer("127.0.0.1:0", catalog=lambda: exports, **options).start()  # type: ignore[arg-type]


@pytest.fixture
def server(exports: list[EchoExport]) -> Iterator[UsbipServer]:
    started = serve(exports)
    yield started
    started.close()


def connect(server: UsbipServer) -> socket.socket:
    connection = socket.create_connection(server.address, timeout=WAIT)
    return connection


def until_closed(connection: socket.socket) -> bytes:
    """All the server sends until it closes the connection."""
    got = b""
    try:
        while part := connection.recv(65536):
            got += part
    except ConnectionResetError:
        pass  # closed with our bytes unread: a reset, the same end
    return got


def echo(connection: socket.socket, data: bytes = b"frame") -> bytes:
    connection.sendall(data)
    got = b""
    while len(got) < len(data):
        got += connection.recv(len(data) - len(got))
    return got


# ---- addresses and access


@pytest.mark.parametrize(("text", "expected"), [
    ("", ("127.0.0.1", 3240)),
    ("0.0.0.0", ("0.0.0.0", 3240)),
    ("192.168.1.5:4000", ("192.168.1.5", 4000)),
    (":0", ("127.0.0.1", 0)),
    ("::", ("::", 3240)),
    ("::1", ("::1", 3240)),
    ("[::1]:3241", ("::1", 3241)),
    ("[::]", ("::", 3240)),
    ("[fe80::1%eth0]:3240", ("fe80::1%eth0", 3240)),
])
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["localhost", "1.2.3.4:", "1.2.3.4:http", "1.2.3.4:65536", "[::1", "[::1]3240",
                                  "[::1]:", "[1.2.3.4]:3240", "300.1.1.1", "::1:x:y:z:w:v:u:t:s"])
def test_bad_listen_addresses_are_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match="usbip listen address"):
        parse_listen(text)


def test_allow_lists_split_on_commas() -> None:
    assert parse_allow(["10.0.0.0/8, fd00::/8", "192.168.1.7"]) == (
        ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"), ipaddress.ip_network("192.168.1.7/32"))


@pytest.mark.parametrize("item", ["10.1.2.3/8", "lab", "", "10.0.0.0/33"])
def test_bad_allow_entries_are_bad_input(item: str) -> None:
    with pytest.raises(BadInput, match="usbip allow"):
        parse_allow([item])


@pytest.mark.parametrize(("peer", "allow", "expected"), [
    ("127.0.0.1", [], True),
    ("127.4.5.6", [], True),
    ("::1", [], True),
    ("::ffff:127.0.0.1", [], True),  # IPv4 loopback on a dual-stack socket
    ("192.168.1.7", [], False),  # no allow list: loopback only, whatever the listen address
    ("fe80::1%eth0", [], False),
    ("192.168.1.7", ["192.168.1.0/24"], True),
    ("192.168.2.7", ["192.168.1.0/24"], False),
    ("::ffff:192.168.1.7", ["192.168.1.0/24"], True),
    ("127.0.0.1", ["192.168.1.0/24"], False),  # an allow list is the whole list: loopback is not implied
    ("fe80::1%eth0", ["fe80::/10"], True),
    ("fd00::5", ["10.0.0.0/8", "fd00::/8"], True),
    ("10.0.0.1", ["fd00::/8"], False),
])
def test_allow_decisions(peer: str, allow: list[str], expected: bool) -> None:
    assert allowed(peer, parse_allow(allow)) is expected


def test_a_refused_peer_gets_no_device_data_and_one_log_line(exports: list[EchoExport],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "simfarm.usbip")
    with serve(exports, allow=["192.0.2.0/24"]) as server, connect(server) as connection:
        connection.sendall(encode_request(DevlistRequest()))
        assert until_closed(connection) == b""
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and "127.0.0.1" in refusals[0].getMessage()


def test_an_ipv6_server_serves_loopback(exports: list[EchoExport]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = UsbipServer("[::1]:0", catalog=lambda: exports).start()
    except EnvironmentProblem:
        pytest.skip("no IPv6 loopback here")
    with server:
        assert [d.busid for d in client.list_remote("::1", server.address[1])] == ["1-1", "1-2"]


# ---- listing and importing


def test_list_round_trip(server: UsbipServer, exports: list[EchoExport]) -> None:
    assert client.list_remote(*server.address) == [e.device for e in exports]


def test_import_hands_the_connection_to_the_export(server: UsbipServer, exports: list[EchoExport]) -> None:
    connection, device = client.import_device(*server.address, "1-2")
    with connection:
        assert device == dataclasses.replace(exports[1].device, interfaces=())
        assert connection.gettimeout() is None
        assert echo(connection, b"URB" * 1000) == b"URB" * 1000
        status = {s.busid: s for s in server.status()}
        assert status["1-2"].state == "imported"
        assert status["1-2"].peer == "127.0.0.1:%d" % connection.getsockname()[1]
        assert status["1-2"].counters == {"bytes": 3000}
        assert status["1-1"].state == "offered" and status["1-1"].peer is None


def test_a_second_import_is_refused_with_no_device_data(server: UsbipServer) -> None:
    first, _ = client.import_device(*server.address, "1-1")
    with first:
        with pytest.raises(EnvironmentProblem, match="imported by another"):
            client.import_device(*server.address, "1-1")
        with connect(server) as second:
            second.sendall(encode_request(ImportRequest("1-1")))
            assert until_closed(second) == encode_import_reply(None, ST_DEV_BUSY)
        assert echo(first) == b"frame"  # the first import is untouched


def test_an_unknown_busid_is_refused(server: UsbipServer) -> None:
    with pytest.raises(BadInput, match="no device 9-9"):
        client.import_device(*server.address, "9-9")
    with connect(server) as connection:
        connection.sendall(encode_request(ImportRequest("9-9")))
        assert until_closed(connection) == encode_import_reply(None, ST_NODEV)


def test_a_departed_importer_leaves_the_export_offered_again(server: UsbipServer) -> None:
    connection, _ = client.import_device(*server.address, "1-1")
    assert server.wait_state("1-1", "imported", WAIT)
    connection.close()
    assert server.wait_state("1-1", "offered", WAIT)
    again, _ = client.import_device(*server.address, "1-1")
    with again:
        assert echo(again) == b"frame"


def test_end_import_pulls_the_cable(server: UsbipServer) -> None:
    connection, _ = client.import_device(*server.address, "1-1")
    with connection:
        assert server.end_import("1-1")
        assert until_closed(connection) == b""
        assert server.wait_state("1-1", "offered", WAIT)
    assert not server.end_import("1-1")


def test_close_ends_imports_and_handshakes_and_leaves_no_thread(exports: list[EchoExport]) -> None:
    before = set(threading.enumerate())
    server = serve(exports)
    imported, _ = client.import_device(*server.address, "1-1")
    silent = connect(server)
    server.close()
    with imported, silent:
        assert until_closed(imported) == b""
        assert until_closed(silent) == b""
    assert set(threading.enumerate()) <= before
    with pytest.raises(OSError):
        socket.create_connection(server.address, timeout=WAIT).close()


@pytest.mark.skipif(shutil.which("usbip") is None, reason="needs the stock usbip tool (Debian: usbip)")
def test_stock_usbip_lists_and_is_refused_as_by_usbipd(server: UsbipServer) -> None:
    """`usbip attach` needs vhci-hcd only after a successful import: its refusals run anywhere."""
    host, port = server.address

    def usbip(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["usbip", "--tcp-port", str(port), *args], capture_output=True, text=True,
                              timeout=WAIT, check=False)

    listed = usbip("list", "-r", host)
    assert listed.returncode == 0, listed.stderr
    assert [line.split(":")[0].strip() for line in listed.stdout.splitlines() if "(1d6b:0102)" in line] == ["1-1",
                                                                                                           "1-2"]
    missing = usbip("attach", "-r", host, "-b", "9-9")
    assert missing.returncode != 0 and "Device not found" in missing.stderr
    connection, _ = client.import_device(host, port, "1-2")
    with connection:
        busy = usbip("attach", "-r", host, "-b", "1-2")
        assert busy.returncode != 0 and "Device busy" in busy.stderr


# ---- bad peers


BAD_PEERS = {
    "garbage": b"GET / HTTP/1.1\r\nHost: farm\r\n\r\n",
    "wrong version": bytes.fromhex("0106800500000000"),
    "unknown command": bytes.fromhex("0111800200000000") + b"1-1".ljust(32, b"\0"),
    "a reply as a request": bytes.fromhex("0111000500000000"),
    "busid not NUL-terminated": bytes.fromhex("0111800300000000") + b"1" * 32,
    "truncated, then gone": encode_request(ImportRequest("1-1"))[:20],
    "oversized devlist": encode_request(DevlistRequest()) + b"\0" * 100,
    "oversized import": encode_request(ImportRequest("1-2")) + b"\xff" * 1_000_000,
}


@pytest.mark.parametrize("data", BAD_PEERS.values(), ids=BAD_PEERS.keys())
def test_a_bad_peer_closes_its_own_connection_only(server: UsbipServer, exports: list[EchoExport], data: bytes,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "simfarm.usbip")
    importer, _ = client.import_device(*server.address, "1-1")
    with importer, connect(server) as bad:
        where = "127.0.0.1:%d" % bad.getsockname()[1]
        try:
            bad.sendall(data)
            bad.shutdown(socket.SHUT_WR)  # a peer that leaves mid-handshake: the server reads the end
        except OSError:
            pass  # the server closed on the first bytes, before the rest went (reset, broken pipe)
        assert until_closed(bad) == b""  # no device data, no reply
        assert [r.levelname for r in caplog.records if f"connection from {where}:" in r.getMessage()] == ["WARNING"]
        assert echo(importer) == b"frame"
        assert exports[1].received == 0  # the oversized import did not reach the device
        assert server.wait_state("1-2", "offered", 0)
        assert client.list_remote(*server.address) == [e.device for e in exports]


def test_a_silent_peer_is_closed_after_the_handshake_timeout(exports: list[EchoExport],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "simfarm.usbip")
    with serve(exports, handshake_timeout=0.2) as server, connect(server) as silent:
        importer, _ = client.import_device(*server.address, "1-1")
        with importer:
            silent.sendall(encode_request(ImportRequest("1-2"))[:3])  # a trickle, then nothing
            assert until_closed(silent) == b""
            assert echo(importer) == b"frame"  # an import is not bound by the handshake's timeout
            assert client.list_remote(*server.address) == [e.device for e in exports]
    assert any("handshake took over 0.2 s" in r.getMessage() for r in caplog.records)


def test_handshakes_beyond_the_limit_are_closed_on_arrival(exports: list[EchoExport]) -> None:
    with serve(exports, max_handshakes=1) as server:
        with connect(server) as first, connect(server) as second:
            # The server takes connections in order: the first holds the one handshake.
            assert until_closed(second) == b""
            first.sendall(encode_request(DevlistRequest()))
            assert until_closed(first).startswith(bytes.fromhex("0111000500000000"))
        assert client.list_remote(*server.address) == [e.device for e in exports]


@settings(max_examples=40, derandomize=True, database=None, deadline=None)
@given(data=st.one_of(st.binary(max_size=80),
                      st.builds(bytes.__add__, st.sampled_from([encode_request(DevlistRequest())[:8],
                                                                encode_request(ImportRequest("1-1"))[:8]]),
                                st.binary(max_size=48))))
def test_arbitrary_bytes_never_disturb_a_running_server(data: bytes) -> None:
    exports = [EchoExport("1-1"), EchoExport("1-2")]
    with serve(exports) as server:
        importer, _ = client.import_device(*server.address, "1-2")
        with importer, connect(server) as peer:
            try:
                peer.sendall(data)
                peer.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # closed by the server already
            until_closed(peer)
            assert echo(importer) == b"frame"
            assert client.list_remote(*server.address) == [e.device for e in exports]
