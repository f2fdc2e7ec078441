"""A minimal RTSP reader (RTP interleaved over TCP), for measuring what a reader of a URL goes through.

FFmpeg hides timings and errors behind its buffering; this speaks the
protocol itself (OPTIONS, DESCRIBE, SETUP, PLAY, then ``$``-framed RTP), so a
test can time each request's round trip, count the bytes that arrive per
second and see a reset or a silent connection as such.
"""

from __future__ import annotations

import socket
import time
import urllib.parse
from dataclasses import dataclass, field


class RtspError(Exception):
    """The server answered something other than 200."""


@dataclass
class RtspReader:
    url: str
    timeout: float = 30.0
    round_trips: list[float] = field(default_factory=list)  # seconds per request, in order
    _sock: socket.socket | None = None
    _buffer: bytes = b""
    _cseq: int = 0

    def __enter__(self) -> RtspReader:
        parts = urllib.parse.urlsplit(self.url)
        self._sock = socket.create_connection((parts.hostname, parts.port or 554), timeout=self.timeout)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sock is not None:
            self._sock.close()

    def play(self) -> None:
        """OPTIONS, DESCRIBE, SETUP of the first track over TCP, PLAY: afterwards RTP flows."""
        self.request("OPTIONS", self.url)
        headers, sdp = self.request("DESCRIBE", self.url, {"Accept": "application/sdp"})
        control = next(line[len("a=control:"):] for line in sdp.decode().splitlines()
                       if line.startswith("a=control:") and line != "a=control:*")
        base = headers.get("content-base", self.url).rstrip("/")
        track = control if control.startswith("rtsp://") else f"{base}/{control}"
        headers, _ = self.request("SETUP", track, {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        session = headers["session"].split(";")[0]
        self.request("PLAY", self.url, {"Session": session})

    def request(self, method: str, url: str, extra: dict[str, str] | None = None) -> tuple[dict[str, str], bytes]:
        """Send one request and read its response (headers, lower-cased names; body); times the round trip."""
        assert self._sock is not None
        self._cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self._cseq}", "User-Agent: simfarm-test",
                 *(f"{name}: {value}" for name, value in (extra or {}).items())]
        began = time.monotonic()
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = self._until(b"\r\n\r\n").decode(errors="replace")
        status, *header_lines = head.split("\r\n")
        headers = {name.strip().lower(): value.strip()
                   for name, _, value in (line.partition(":") for line in header_lines if line)}
        body = self._exactly(int(headers.get("content-length", 0)))
        self.round_trips.append(time.monotonic() - began)
        if status.split()[1] != "200":
            raise RtspError(f"{method} {url}: {status}")
        return headers, body

    def packet(self) -> bytes:
        """The next interleaved RTP/RTCP packet's payload. Raises on EOF, reset or timeout."""
        while True:
            marker = self._exactly(1)
            if marker == b"$":
                header = self._exactly(3)
                return self._exactly(int.from_bytes(header[1:3], "big"))
            # Anything else is an RTSP message from the server (none is expected): skip to its end.
            self._until(b"\r\n\r\n")

    def received_for(self, seconds: float) -> int:
        """Bytes of RTP payload that arrive within ``seconds`` from now."""
        deadline, total = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            total += len(self.packet())
        return total

    def _until(self, end: bytes) -> bytes:
        while end not in self._buffer:
            self._fill()
        message, _, self._buffer = self._buffer.partition(end)
        return message

    def _exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            self._fill()
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def _fill(self) -> None:
        assert self._sock is not None
        chunk = self._sock.recv(65536)
        if not chunk:
            raise EOFError("the server closed the connection")
        self._buffer += chunk
