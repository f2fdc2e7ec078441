"""The API client's reading of responses (every server version) and its errors, without a server."""

from __future__ import annotations

import json

import pytest

from simfarm.errors import BadInput, EnvironmentProblem
from simfarm.publishers.mediamtx import ApiClient, PathRecordings, Peer, RtspSession, Unreachable, api
from simfarm.publishers.ports import reserve_ports


def test_path_from_a_current_server() -> None:
    state = api.parse_path({
        "name": "cam0", "available": True, "online": True, "inboundBytes": 1234, "ready": True, "bytesReceived": 1,
        "source": {"type": "rtspSession", "id": "6b9c"},
        "readers": [{"type": "rtspSession", "id": "aa"}, {"type": "hlsMuxer", "id": ""}],
    })
    assert (state.name, state.available, state.online, state.inbound_bytes) == ("cam0", True, True, 1234)
    assert state.source == Peer("rtspSession", "6b9c")
    assert state.readers == (Peer("rtspSession", "aa"), Peer("hlsMuxer", ""))


def test_path_from_a_server_before_available_and_inbound_bytes() -> None:
    state = api.parse_path({"name": "cam0", "ready": True, "bytesReceived": 99, "source": None, "readers": []})
    assert (state.available, state.online, state.inbound_bytes, state.source) == (True, True, 99, None)


def test_path_without_a_stream() -> None:
    state = api.parse_path({"name": "cam0", "available": False, "online": False, "inboundBytes": 0,
                            "source": None, "readers": []})
    assert not state.available and not state.online


def test_rtsp_session_and_recording() -> None:
    assert api.parse_rtsp_session({"id": "s1", "path": "cam0", "state": "publish", "remoteAddr": "127.0.0.1:4000",
                                   "inboundBytes": 5}) == RtspSession("s1", "cam0", "publish", "127.0.0.1:4000")
    assert api.parse_recording({"name": "cam0", "segments": [{"start": "2026-01-01T00:00:00Z"}]}) == \
        PathRecordings("cam0", ("2026-01-01T00:00:00Z",))


def test_reading_an_undeclared_field_is_a_programming_error() -> None:
    with pytest.raises(LookupError, match=r"Path\.tracks"):
        api._field({"tracks": []}, "Path", "tracks")


@pytest.mark.parametrize(("status", "kind"), [(400, BadInput), (404, BadInput), (401, EnvironmentProblem),
                                              (500, EnvironmentProblem)])
def test_refusals_carry_the_servers_reason(status: int, kind: type) -> None:
    error = api._refusal("POST /v3/config/paths/add/cam0", status,
                         json.dumps({"status": "error", "error": "path already exists"}).encode())
    assert isinstance(error, kind)
    assert "path already exists" in str(error) and str(status) in str(error)


def test_nothing_listening_is_unreachable() -> None:
    with reserve_ports(1) as reservation:  # reserved and bindable: nobody listens there
        client = ApiClient(f"http://127.0.0.1:{reservation.ports[0]}", timeout=2)
        with pytest.raises(Unreachable, match="unreachable"):
            client.info()


def test_bad_path_names_fail_before_any_request() -> None:
    client = ApiClient("http://127.0.0.1:1")
    for call in (client.path, client.delete_path, client.path_config, client.recordings):
        with pytest.raises(BadInput):
            call("../etc")


@pytest.mark.parametrize(("body", "address"), [
    ({"rtsp": True, "rtspAddress": ":8554"}, ("10.0.0.5", 8554)),  # every interface: the API's host
    ({"rtsp": True, "rtspAddress": "0.0.0.0:8554"}, ("10.0.0.5", 8554)),
    ({"rtsp": True, "rtspAddress": "127.0.0.1:20001"}, ("127.0.0.1", 20001)),
    ({"rtsp": True, "rtspAddress": "[::1]:8554"}, ("::1", 8554)),
    ({"rtspAddress": ":8554"}, ("10.0.0.5", 8554)),  # a server whose config has no switch: on
    ({"rtsp": False, "rtspAddress": ":8554"}, None),
])
def test_rtsp_address_of_a_server(body: dict, address: tuple | None) -> None:
    assert api.parse_rtsp_address(body, "10.0.0.5") == address


def test_an_rtsp_address_without_a_port_is_an_environment_problem() -> None:
    with pytest.raises(EnvironmentProblem, match="without a port"):
        api.parse_rtsp_address({"rtsp": True, "rtspAddress": "localhost"}, "127.0.0.1")


@pytest.mark.parametrize("url", ["localhost:9997", "ftp://127.0.0.1/", "127.0.0.1"])
def test_an_api_url_that_is_not_http_is_bad_input(url: str) -> None:
    with pytest.raises(BadInput, match="http://"):
        ApiClient(url)
