"""A small client for the MediaMTX control API (``/v3``), standard library only.

Every call goes through :data:`ENDPOINTS` and every response field is read
through :data:`FIELDS`, so the two tables are the whole contract with the
server; the host tests check both against the reference ``openapi.yaml``.
The client also talks to older servers (for instance one run by the system
under test): fields renamed over the versions are read with a fallback.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import BadInput, EnvironmentProblem
from .names import check_path_name


@dataclass(frozen=True)
class Endpoint:
    """One API operation as ``openapi.yaml`` names it."""

    method: str
    path: str  # template, e.g. "/v3/paths/get/{name}"
    response: str  # component schema of the 200 response
    item: str | None = None  # for paged lists: the schema of each item
    query: tuple[str, ...] = ()  # query parameters sent


_PAGED = ("page", "itemsPerPage")

ENDPOINTS: dict[str, Endpoint] = {
    "info": Endpoint("GET", "/v3/info", "Info"),
    "config_global_get": Endpoint("GET", "/v3/config/global/get", "GlobalConf"),
    "paths_list": Endpoint("GET", "/v3/paths/list", "PathList", "Path", _PAGED),
    "paths_get": Endpoint("GET", "/v3/paths/get/{name}", "Path"),
    "config_paths_get": Endpoint("GET", "/v3/config/paths/get/{name}", "PathConf"),
    "config_paths_add": Endpoint("POST", "/v3/config/paths/add/{name}", "OK"),
    "config_paths_replace": Endpoint("POST", "/v3/config/paths/replace/{name}", "OK"),
    "config_paths_delete": Endpoint("DELETE", "/v3/config/paths/delete/{name}", "OK"),
    "rtsp_sessions_list": Endpoint("GET", "/v3/rtspsessions/list", "RTSPSessionList", "RTSPSession", _PAGED),
    "rtsp_sessions_kick": Endpoint("POST", "/v3/rtspsessions/kick/{id}", "OK"),
    "recordings_list": Endpoint("GET", "/v3/recordings/list", "RecordingList", "Recording", _PAGED),
    "recordings_get": Endpoint("GET", "/v3/recordings/get/{name}", "Recording"),
}

# The response fields this client reads, by the schema that declares them.
FIELDS: dict[str, tuple[str, ...]] = {
    "Info": ("version",),
    "GlobalConf": ("rtspAddress", "rtsp"),
    "Error": ("error",),
    "PathList": ("items", "pageCount"),
    "RTSPSessionList": ("items", "pageCount"),
    "RecordingList": ("items", "pageCount"),
    # available/online since v1.16; older servers say ready. bytesReceived is
    # the deprecated name of inboundBytes.
    "Path": ("name", "available", "ready", "online", "inboundBytes", "bytesReceived", "readers", "source"),
    "PathReader": ("id", "type"),
    "PathSource": ("id", "type"),
    "RTSPSession": ("id", "path", "state", "remoteAddr"),
    "Recording": ("name", "segments"),
    "RecordingSegment": ("start",),
}

# Fields holding another schema: (schema, field) -> the schema of its value or items.
NESTED: dict[tuple[str, str], str] = {
    ("Path", "readers"): "PathReader",
    ("Path", "source"): "PathSource",
    ("Recording", "segments"): "RecordingSegment",
}


# The API is on this host: never reach it through a proxy named in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Unreachable(EnvironmentProblem):
    """Nothing answered at the API address (not listening yet, or gone)."""


class _NotFound(BadInput):
    """404: no such path, session or recording."""


@dataclass(frozen=True)
class ServerInfo:
    version: str | None  # None from servers older than GET /v3/info


@dataclass(frozen=True)
class Peer:
    """A path's source or one of its readers: a session or connection of some ``type``."""

    type: str
    id: str


@dataclass(frozen=True)
class PathState:
    name: str
    available: bool  # a stream is there to read
    online: bool  # ... and it comes from a live source, not an offline placeholder
    inbound_bytes: int  # stops growing when the publisher hangs
    source: Peer | None
    readers: tuple[Peer, ...]


@dataclass(frozen=True)
class RtspSession:
    id: str
    path: str
    state: str  # idle, read or publish
    remote_addr: str


@dataclass(frozen=True)
class PathRecordings:
    name: str
    segments: tuple[str, ...]  # start times (RFC 3339), oldest first


def _field(body: Mapping[str, Any], schema: str, name: str) -> Any:
    """``body[name]`` (None when absent), for a field declared in FIELDS."""
    if name not in FIELDS[schema]:
        raise LookupError(f"{schema}.{name} is read but not declared in FIELDS")
    return body.get(name)


def _peer(body: Mapping[str, Any], schema: str) -> Peer:
    return Peer(type=_field(body, schema, "type") or "", id=_field(body, schema, "id") or "")


def parse_path(body: Mapping[str, Any]) -> PathState:
    """A ``Path`` response, from any server version."""
    available = _field(body, "Path", "available")
    if available is None:
        available = _field(body, "Path", "ready")
    online = _field(body, "Path", "online")
    source = _field(body, "Path", "source")
    inbound = _field(body, "Path", "inboundBytes")
    if inbound is None:
        inbound = _field(body, "Path", "bytesReceived")
    return PathState(
        name=_field(body, "Path", "name") or "",
        available=bool(available),
        online=bool(available if online is None else online),
        inbound_bytes=int(inbound or 0),
        source=_peer(source, "PathSource") if source else None,
        readers=tuple(_peer(reader, "PathReader") for reader in _field(body, "Path", "readers") or ()),
    )


def parse_rtsp_session(body: Mapping[str, Any]) -> RtspSession:
    return RtspSession(id=_field(body, "RTSPSession", "id") or "", path=_field(body, "RTSPSession", "path") or "",
                       state=_field(body, "RTSPSession", "state") or "",
                       remote_addr=_field(body, "RTSPSession", "remoteAddr") or "")


def parse_recording(body: Mapping[str, Any]) -> PathRecordings:
    segments = _field(body, "Recording", "segments") or ()
    return PathRecordings(name=_field(body, "Recording", "name") or "",
                          segments=tuple(_field(segment, "RecordingSegment", "start") for segment in segments))


_WILDCARDS = ("", "0.0.0.0", "::")


def parse_rtsp_address(body: Mapping[str, Any], server_host: str) -> tuple[str, int] | None:
    """(host, port) where readers reach the RTSP listener, from a ``GlobalConf``; None when RTSP is off.

    A listener on every interface (``:8554``) is reached at ``server_host``, the API's host.
    """
    if _field(body, "GlobalConf", "rtsp") is False:
        return None
    address = _field(body, "GlobalConf", "rtspAddress") or ""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise EnvironmentProblem(f"MediaMTX reports an RTSP address without a port: {address!r}")
    host = host.strip("[]")
    return (server_host if host in _WILDCARDS else host, int(port))


class ApiClient:
    """The control API of one MediaMTX server, e.g. ``ApiClient("http://127.0.0.1:9997")``."""

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        if urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
            raise BadInput(f"MediaMTX API URL {base_url!r} must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def info(self) -> ServerInfo:
        """The server's version. Any answer means every listener is bound (the API opens last)."""
        try:
            body = self._call("info")
        except _NotFound:
            # Servers before /v3/info: any page of the path list proves the API is up.
            self._call("paths_list", query={"page": 0, "itemsPerPage": 1})
            return ServerInfo(version=None)
        return ServerInfo(version=_field(body, "Info", "version"))

    def rtsp_address(self) -> tuple[str, int] | None:
        """Where the server's RTSP listener is (host, port), or None when RTSP is off.

        An address without a host (``:8554``) listens everywhere; it is reached on 127.0.0.1.
        """
        return parse_rtsp_address(self._call("config_global_get"),
                                  urllib.parse.urlsplit(self.base_url).hostname or "127.0.0.1")

    def paths(self) -> list[PathState]:
        return [parse_path(item) for item in self._pages("paths_list")]

    def path(self, name: str) -> PathState | None:
        """The path's state; None while the server has no such path (not configured, or not created yet)."""
        try:
            return parse_path(self._call("paths_get", name=check_path_name(name)))
        except _NotFound:
            return None

    def path_config(self, name: str) -> dict[str, Any] | None:
        """The path's configuration as the server holds it; None when it has none."""
        try:
            config: dict[str, Any] = self._call("config_paths_get", name=check_path_name(name))
        except _NotFound:
            return None
        return config

    def add_path(self, name: str, conf: Mapping[str, Any]) -> None:
        """Add a path at run time; ``conf`` holds path settings (e.g. ``config.path_entry(argv)``)."""
        self._call("config_paths_add", name=check_path_name(name), body=dict(conf))

    def replace_path(self, name: str, conf: Mapping[str, Any]) -> None:
        """Replace every setting of a path; a changed ``runOnInit`` stops the old publisher and starts the new."""
        self._call("config_paths_replace", name=check_path_name(name), body=dict(conf))

    def delete_path(self, name: str) -> None:
        """Remove a path's configuration; its publisher hook is stopped and its readers dropped."""
        self._call("config_paths_delete", name=check_path_name(name))

    def wait_available(self, name: str, timeout: float, *, pause: Callable[[], object],
                       explain: Callable[[], str] = str) -> PathState:
        """Poll path ``name`` until a stream is available on it; ``pause`` waits between polls
        (and raises when waiting is pointless); ``explain`` adds to the timeout's message (a log tail)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                state = self.path(name)
            except Unreachable:
                state = None  # if the server died, pause() says so
            if state and state.available:
                return state
            if time.monotonic() > deadline:
                raise EnvironmentProblem(f"MediaMTX path {name!r} not available after {timeout:g}s\n{explain()}"
                                         .rstrip())
            pause()

    def rtsp_sessions(self) -> list[RtspSession]:
        return [parse_rtsp_session(item) for item in self._pages("rtsp_sessions_list")]

    def kick_rtsp_session(self, session_id: str) -> None:
        """Disconnect one RTSP session (a reader, or the publisher of a path)."""
        self._call("rtsp_sessions_kick", id=session_id)

    def recordings(self, name: str | None = None) -> list[PathRecordings]:
        """Recorded segments of path ``name``, or of every path."""
        if name is None:
            return [parse_recording(item) for item in self._pages("recordings_list")]
        try:
            return [parse_recording(self._call("recordings_get", name=check_path_name(name)))]
        except _NotFound:
            return []

    def _pages(self, operation: str) -> Iterator[Mapping[str, Any]]:
        schema = ENDPOINTS[operation].response
        page = 0
        while True:
            body = self._call(operation, query={"page": page, "itemsPerPage": 100})
            yield from _field(body, schema, "items") or ()
            page += 1
            if page >= (_field(body, schema, "pageCount") or 0):
                return

    def _call(self, operation: str, *, query: Mapping[str, Any] | None = None,
              body: Mapping[str, Any] | None = None, **params: str) -> Any:
        endpoint = ENDPOINTS[operation]
        if query and not set(query) <= set(endpoint.query):
            raise LookupError(f"{operation} does not declare query {sorted(query)}")
        path = endpoint.path.format(**{key: urllib.parse.quote(value, safe="/:~") for key, value in params.items()})
        url = self.base_url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=endpoint.method,
                                         headers={"Content-Type": "application/json"} if data else {})
        what = f"{endpoint.method} {path}"
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise _refusal(what, error.code, error.read()) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:  # e.g. reset while starting
            reason = getattr(error, "reason", error)
            raise Unreachable(f"MediaMTX API at {self.base_url} unreachable ({what}): {reason}") from None
        return json.loads(raw) if raw.strip() else {}


def _refusal(what: str, status: int, raw: bytes) -> Exception:
    try:
        reason = _field(json.loads(raw), "Error", "error")
    except (ValueError, AttributeError):
        reason = None
    message = f"MediaMTX refused {what}: {status} {reason or raw[:200].decode(errors='replace').strip()}"
    if status == 404:
        return _NotFound(message)
    if status == 400:
        return BadInput(message)
    if status in (401, 403):
        return EnvironmentProblem(message, "allow the action `api` from 127.0.0.1 in authInternalUsers")
    return EnvironmentProblem(message)
