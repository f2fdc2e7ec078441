"""The supervisor's control endpoint: JSON lines over a Unix socket.

Protocol (one request per connection, any language can speak it):
    -> {"op": "status"}\n
    <- {"ok": true, ...}\n        or  {"ok": false, "error": "...", "exit_code": 2}\n
The socket is mode 0660 with the group of the control device's users
(``video`` when it exists), so only the owner and that group can drive a farm.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

from ..errors import BadInput, EnvironmentProblem, SimfarmError

Handler = Callable[[dict], dict]
SOCKET = "control.sock"


class ControlServer:
    """Serves ``handler`` on ``path`` in a background thread."""

    def __init__(self, path: Path, handler: Handler) -> None:
        # Imported here: only the supervisor serves, and every CLI command imports this module.
        import grp
        import socketserver

        path.unlink(missing_ok=True)
        outer = handler

        class _Request(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    request = json.loads(self.rfile.readline() or b"{}")
                    if not isinstance(request, dict):
                        raise BadInput("a request must be a JSON object")
                    reply = {"ok": True, **outer(request)}
                except SimfarmError as exc:
                    reply = {"ok": False, "error": str(exc), "exit_code": exc.exit_code}
                except ValueError as exc:
                    reply = {"ok": False, "error": f"bad request: {exc}", "exit_code": 2}
                self.wfile.write(json.dumps(reply).encode() + b"\n")

        self._server = socketserver.ThreadingUnixStreamServer(str(path), _Request)
        self._server.daemon_threads = True
        os.chmod(path, 0o660)
        try:
            os.chown(path, -1, grp.getgrnam("video").gr_gid)
        except (KeyError, PermissionError):
            pass  # no video group, or not ours to give: owner-only access remains
        self._wake_read, self._wake_write = os.pipe2(os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # Not serve_forever(), which sees shutdown() only at its next poll, half a second later: every
        # teardown waited that long for the supervisor, and as long again for each of its workers.
        import selectors

        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ, "request")
            selector.register(self._wake_read, selectors.EVENT_READ, "close")
            while "close" not in [key.data for key, _ in selector.select()]:
                self._server.handle_request()  # one is waiting: this accepts it and hands it to a thread

    def close(self) -> None:
        """Stop serving, at once; requests being handled finish in their own threads."""
        os.write(self._wake_write, b"x")
        self._thread.join()
        self._server.server_close()
        os.close(self._wake_read)
        os.close(self._wake_write)


def tell(fd: int, message: dict) -> None:
    """Send one JSON line down a pipe and close it: how a starting process says it is ready (or not)."""
    os.write(fd, json.dumps(message).encode() + b"\n")
    os.close(fd)


def request(path: Path, message: dict, *, timeout: float = 30.0) -> dict:
    """Send one request; raises the error the supervisor reported."""
    import socket  # here: `status` and `teardown` with no farm to ask never need it

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError as exc:
            raise EnvironmentProblem(f"farm supervisor not reachable at {path}: {exc.strerror}") from None
        # A process that dies or restarts mid-request (a worker the supervisor is replacing) resets the
        # connection or leaves half a reply: that is the peer gone, as when nobody listens, never a
        # traceback in the asker (the supervisor's status would fail with it instead of reporting the worker).
        data = b""
        try:
            sock.sendall(json.dumps(message).encode() + b"\n")
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            raise EnvironmentProblem(f"farm supervisor at {path} stopped answering: {exc.strerror or exc}") from None
    if not data.endswith(b"\n"):
        raise EnvironmentProblem("supervisor closed the connection")
    reply = json.loads(data)
    if not reply.pop("ok", False):
        cls = BadInput if reply.get("exit_code") == 2 else EnvironmentProblem
        raise cls(reply.get("error", "unknown error"))
    return reply
