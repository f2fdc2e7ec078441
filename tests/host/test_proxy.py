"""The TCP fault proxy with real sockets: a real server behind it, a real client in front."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from simfarm.errors import BadInput
from simfarm.publishers.proxy import FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _Talker(socketserver.BaseRequestHandler):
    """Sends 1 KB blocks forever (a stream, like RTSP's interleaved RTP) until the peer goes."""

    def handle(self) -> None:
        block = bytes(range(256)) * 4
        try:
            while True:
                self.request.sendall(block)
        except OSError:
            pass


def _serve(handler: type[socketserver.BaseRequestHandler]) -> Iterator[tuple[str, int]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[:2]
    server.shutdown()
    server.server_close()


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    yield from _serve(_Echo)


@pytest.fixture
def talker() -> Iterator[tuple[str, int]]:
    yield from _serve(_Talker)


def _connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=10)


def _round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    began = time.monotonic()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        got += sock.recv(65536)
    assert got == payload
    return time.monotonic() - began


def _receive(sock: socket.socket, count: int) -> bytes:
    got = b""
    while len(got) < count:
        data = sock.recv(count - len(got))
        assert data, "connection closed early"
        got += data
    return got


def test_without_toxics_bytes_and_end_of_stream_pass_unchanged(echo: tuple[str, int]) -> None:
    with FaultProxy(echo) as proxy, _connect(proxy) as sock:
        payload = bytes(range(256)) * 1000
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)  # the echo server sees EOF and closes: the FIN comes back through
        got = b""
        while data := sock.recv(65536):
            got += data
        assert got == payload
    assert proxy.connections() == 0


def test_latency_delays_what_the_server_sends_and_clearing_ends_it(echo: tuple[str, int]) -> None:
    with FaultProxy(echo, seed=3) as proxy, _connect(proxy) as sock:
        plain = min(_round_trip(sock) for _ in range(3))
        proxy.set("latency", ms=300, jitter=50)
        delayed = [_round_trip(sock) for _ in range(3)]
        proxy.clear("latency")
        after = min(_round_trip(sock) for _ in range(3))
    assert plain < 0.1 and after < 0.1
    assert all(0.25 <= rtt < 1.0 for rtt in delayed), delayed


def test_bandwidth_paces_the_stream_to_the_rate(talker: tuple[str, int]) -> None:
    with FaultProxy(talker) as proxy:
        # Set before connecting: the kernel's socket buffers would hold megabytes sent unpaced.
        proxy.set("bandwidth", rate=100)  # KB/s
        with _connect(proxy) as sock:
            began = time.monotonic()
            _receive(sock, 50_000)
            paced = time.monotonic() - began
        proxy.clear("bandwidth")
        with _connect(proxy) as sock:
            began = time.monotonic()
            _receive(sock, 1_000_000)
            free = time.monotonic() - began
    assert 0.4 <= paced < 1.5, paced
    assert free < 0.5, free


def test_reset_after_bytes_resets_the_client_after_exactly_that_many(talker: tuple[str, int]) -> None:
    with FaultProxy(talker) as proxy:
        proxy.set("reset", after=5000)
        with _connect(proxy) as sock:
            got = b""
            with pytest.raises(ConnectionResetError):
                while data := sock.recv(65536):
                    got += data
            assert len(got) == 5000


def test_reset_now_resets_open_connections(echo: tuple[str, int]) -> None:
    with FaultProxy(echo) as proxy, _connect(proxy) as sock:
        _round_trip(sock)
        proxy.set("reset")
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
        assert proxy.connections() == 0
        proxy.clear("reset")
        with _connect(proxy) as again:
            _round_trip(again)


def test_timeout_swallows_everything_then_closes_the_connection(echo: tuple[str, int]) -> None:
    with FaultProxy(echo) as proxy, _connect(proxy) as sock:
        _round_trip(sock)
        began = time.monotonic()
        proxy.set("timeout", ms=400)
        sock.sendall(b"lost")
        assert sock.recv(1) == b""  # FIN, with nothing before it
        assert 0.35 <= time.monotonic() - began < 2.0


def test_timeout_zero_keeps_the_connection_silent_until_cleared(echo: tuple[str, int]) -> None:
    with FaultProxy(echo) as proxy, _connect(proxy) as sock:
        proxy.set("timeout", ms=0)
        sock.sendall(b"lost")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(1)
        proxy.clear("timeout")
        sock.settimeout(10)
        assert _round_trip(sock, b"back") < 1.0


def test_a_server_that_is_not_there_looks_like_a_reset() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        gone = placeholder.getsockname()[:2]
    # The RST can beat connect()'s own completion check, so either may raise.
    with FaultProxy(gone) as proxy, pytest.raises(ConnectionResetError), _connect(proxy) as sock:
        sock.recv(1)


def test_bad_toxics_are_refused() -> None:
    with FaultProxy(("127.0.0.1", 9)) as proxy:
        for kind, params in (("latency", {"ms": 0}), ("bandwidth", {"rate": 0}), ("reset", {"after": -1}),
                             ("timeout", {"ms": -5}), ("loss", {})):
            with pytest.raises(BadInput):
                proxy.set(kind, **params)
        assert proxy.toxics.active() == []


def test_close_ends_connections_and_threads(talker: tuple[str, int]) -> None:
    proxy = FaultProxy(talker)
    socks = [_connect(proxy) for _ in range(3)]
    for sock in socks:
        _receive(sock, 1024)
    proxy.close()
    for sock in socks:
        with sock:
            while sock.recv(65536):  # what was in flight, then the FIN
                pass
    assert proxy.connections() == 0
    assert [thread.name for thread in threading.enumerate() if thread.name.startswith(f"proxy-{proxy.port}")] == []
