"""A TCP fault proxy: forwards connections to a server, with Toxiproxy-like toxics in between.

A client connects to the proxy's port instead of the server's (for a farm:
the camera's proxied RTSP URL). While a toxic is in force, every connection,
open or new, suffers it. The semantics follow Toxiproxy's toxics, on the
server-to-client ("downstream") direction unless said otherwise:

- ``latency`` ms [jitter ms]: each chunk reaches the client ms (+- jitter,
  seeded) after it left the server; order is kept, throughput is not cut.
- ``bandwidth`` rate KB/s: the server-to-client stream is paced to the rate.
- ``reset`` [bytes N]: after N more bytes to the client (0: at once) both
  ends get a TCP RST (``Connection reset by peer``); new connections are
  reset after N bytes while the toxic is in force.
- ``timeout`` ms: nothing passes in either direction; each connection is
  closed (FIN) that long after the toxic started or the connection opened,
  whichever is later; 0 keeps it open, silent, until the toxic is cleared.

Threads, not asyncio: the supervisor it runs in is threaded, and one
reader and one writer thread per direction keep each delay independent.
"""

from __future__ import annotations

import itertools
import queue
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

from ..errors import BadInput
from .ports import HOST

TOXICS = ("latency", "bandwidth", "reset", "timeout")
_CHUNK = 65536
_PACE_STEPS_PER_S = 50  # bandwidth pacing granularity: 20 ms of data at a time


@dataclass(frozen=True)
class Toxics:
    """The toxics in force; None (or 0 for latency) means off."""

    latency_s: float = 0.0
    jitter_s: float = 0.0
    rate: float | None = None  # bytes per second
    reset_after: int | None = None  # bytes
    timeout_s: float | None = None  # 0: never close

    def active(self) -> list[str]:
        return [name for name, on in (("latency", self.latency_s > 0), ("bandwidth", self.rate is not None),
                                      ("reset", self.reset_after is not None),
                                      ("timeout", self.timeout_s is not None)) if on]


_OFF: dict[str, dict[str, Any]] = {"latency": {"latency_s": 0.0, "jitter_s": 0.0}, "bandwidth": {"rate": None},
        "reset": {"reset_after": None}, "timeout": {"timeout_s": None}}


def toxic_values(kind: str, *, ms: float = 0, jitter: float = 0, rate: float = 0, after: float = 0) -> dict[str, Any]:
    """The Toxics fields ``kind`` sets, from its user-facing parameters; BadInput when out of range."""
    if kind == "latency":
        if ms <= 0 or jitter < 0:
            raise BadInput(f"latency needs ms > 0 and jitter >= 0, not {ms}, {jitter}")
        return {"latency_s": ms / 1000, "jitter_s": jitter / 1000}
    if kind == "bandwidth":
        if rate <= 0:
            raise BadInput(f"bandwidth needs a rate > 0 KB/s, not {rate}")
        return {"rate": rate * 1000}
    if kind == "reset":
        if after < 0:
            raise BadInput(f"reset needs bytes >= 0, not {after}")
        return {"reset_after": int(after)}
    if kind == "timeout":
        if ms < 0:
            raise BadInput(f"timeout needs ms >= 0, not {ms}")
        return {"timeout_s": ms / 1000}
    raise BadInput(f"unknown toxic {kind!r} (known: {', '.join(TOXICS)})")


class FaultProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream``; toxics are set and cleared while it runs.

        with FaultProxy(("127.0.0.1", 8554), seed=1) as proxy:
            proxy.set("latency", ms=200)
            ...  # clients of proxy.port see 200 ms more latency
            proxy.clear("latency")
    """

    def __init__(self, upstream: tuple[str, int], *, seed: int = 0) -> None:
        self.upstream = upstream
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._toxics = Toxics()
        self._timeout_since = 0.0
        self._connections: set[_Connection] = set()
        self._closed = threading.Event()
        # Port 0: the kernel picks a free port and we hold it from that moment, so no race.
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True)
        self._acceptor.start()

    @property
    def toxics(self) -> Toxics:
        return self._toxics

    def set(self, kind: str, **params: float) -> None:
        """Put toxic ``kind`` in force (replacing an earlier one of that kind); see the module doc."""
        values = toxic_values(kind, **params)
        with self._lock:
            self._toxics = replace(self._toxics, **values)
            if kind == "timeout":
                self._timeout_since = time.monotonic()
            connections = list(self._connections)
        for conn in connections:
            conn.toxics_changed(kind)

    def clear(self, kind: str | None = None) -> None:
        """End toxic ``kind`` (every toxic when None); data held back by a timeout stays lost."""
        kinds = TOXICS if kind is None else (kind,)
        if not set(kinds) <= set(TOXICS):
            raise BadInput(f"unknown toxic {kind!r} (known: {', '.join(TOXICS)})")
        with self._lock:
            for name in kinds:
                self._toxics = replace(self._toxics, **_OFF[name])
            connections = list(self._connections)
        for conn in connections:
            for name in kinds:
                conn.toxics_changed(name)

    def connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def close(self) -> None:
        """Stop accepting and close every connection. Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self._acceptor.join()
        self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            conn.finish()
            conn.join()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # -- inside ---------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                _abort(client)  # as a refused connection would look through the proxy
                continue
            conn = _Connection(client, server, self)
            with self._lock:
                if self._closed.is_set():
                    conn.finish()
                    return
                self._connections.add(conn)
            conn.start()

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _jitter(self, spread: float) -> float:
        with self._lock:
            return self._rng.uniform(-spread, spread)


def _abort(sock: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN (SO_LINGER with a zero timeout)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)  # wakes a reader blocked in recv, sends nothing
    except OSError:
        pass
    sock.close()


@dataclass
class _Chunk:
    data: bytes
    due: float  # monotonic time it may be sent


_WAKE = _Chunk(b"", 0.0)  # toxics changed: the writer looks again
_EOF = None


@dataclass(eq=False)
class _Connection:
    client: socket.socket
    server: socket.socket
    proxy: FaultProxy
    opened: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)  # closed, one way or another
    sent_down: int = 0
    reset_at: int | None = None  # downstream byte count at which to reset
    _down: queue.Queue = field(default_factory=queue.Queue)
    _up: queue.Queue = field(default_factory=queue.Queue)
    _threads: list[threading.Thread] = field(default_factory=list)
    _close_timer: threading.Timer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ended: int = 0  # directions that reached EOF

    def start(self) -> None:
        self.toxics_changed("reset")
        self.toxics_changed("timeout")
        ids = itertools.count()
        for name, target, args in (("read-down", self._read, (self.server, self._down, True)),
                                   ("write-down", self._write, (self._down, self.client, True)),
                                   ("read-up", self._read, (self.client, self._up, False)),
                                   ("write-up", self._write, (self._up, self.server, False))):
            thread = threading.Thread(target=target, args=args, daemon=True,
                                      name=f"proxy-{self.proxy.port}-{name}-{next(ids)}")
            self._threads.append(thread)
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()

    def toxics_changed(self, kind: str) -> None:
        toxics = self.proxy.toxics
        if kind == "reset":
            self.reset_at = None if toxics.reset_after is None else self.sent_down + toxics.reset_after
            if self.reset_at is not None and toxics.reset_after == 0:
                self.abort()
                return
        if kind == "timeout":
            if self._close_timer:
                self._close_timer.cancel()
                self._close_timer = None
            if toxics.timeout_s:
                since = max(self.proxy._timeout_since, self.opened)
                delay = max(0.0, since + toxics.timeout_s - time.monotonic())
                self._close_timer = threading.Timer(delay, self.finish)
                self._close_timer.daemon = True
                self._close_timer.start()
        self._down.put(_WAKE)
        self._up.put(_WAKE)

    def _read(self, source: socket.socket, into: queue.Queue, downstream: bool) -> None:
        while not self.done.is_set():
            try:
                data = source.recv(_CHUNK)
            except OSError:
                data = b""
            if not data:
                into.put(_EOF)
                return
            toxics = self.proxy.toxics
            if toxics.timeout_s is not None:
                continue  # swallowed, as by a network that went silent
            due = time.monotonic()
            if downstream and toxics.latency_s:
                due += max(0.0, toxics.latency_s + self.proxy._jitter(toxics.jitter_s))
            into.put(_Chunk(data, due))

    def _write(self, source: queue.Queue, sink: socket.socket, downstream: bool) -> None:
        last_due = 0.0
        while True:
            chunk = source.get()
            if chunk is _WAKE:
                continue
            if chunk is _EOF or self.done.is_set():
                self._half_close(sink)
                return
            # Jitter must not reorder a byte stream: a chunk never overtakes the one before.
            last_due = max(last_due, chunk.due)
            if self.done.wait(max(0.0, last_due - time.monotonic())):
                return
            if not self._send(sink, chunk.data, downstream):
                return

    def _send(self, sink: socket.socket, data: bytes, downstream: bool) -> bool:
        """Send ``data`` under the toxics in force; False once the connection is over."""
        while data:
            toxics = self.proxy.toxics
            piece = data
            if downstream and toxics.rate is not None:
                piece = data[:max(1, int(toxics.rate / _PACE_STEPS_PER_S))]
            if downstream and self.reset_at is not None:
                piece = piece[:max(0, self.reset_at - self.sent_down)]
            try:
                sink.sendall(piece)
            except OSError:
                self.abort()
                return False
            if downstream:
                self.sent_down += len(piece)
                if self.reset_at is not None and self.sent_down >= self.reset_at:
                    self.abort()
                    return False
                if toxics.rate is not None and self.done.wait(len(piece) / toxics.rate):
                    return False
            data = data[len(piece):]
        return True

    def _half_close(self, sink: socket.socket) -> None:
        """One direction ended: pass the FIN on; once both have, the connection is over."""
        with self._lock:
            # Under the lock _end sets done with: a reset's own shutdown ends the directions too, and
            # a FIN passed on then would reach the client before its RST (it would see a clean close).
            if self.done.is_set():
                return
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self._ended += 1
            both = self._ended == 2
        if both:
            self._end(lambda sock: sock.close())

    def finish(self) -> None:
        """Close both ends with a FIN."""
        def close(sock: socket.socket) -> None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._end(close)

    def abort(self) -> None:
        """Reset both ends (RST)."""
        self._end(_abort)

    def _end(self, closer: Callable[[socket.socket], None]) -> None:
        with self._lock:
            if self.done.is_set():
                return
            self.done.set()
        if self._close_timer:
            self._close_timer.cancel()
        for sock in (self.client, self.server):
            closer(sock)
        self._down.put(_EOF)
        self._up.put(_EOF)
        self.proxy._forget(self)
