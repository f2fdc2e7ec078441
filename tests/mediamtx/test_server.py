"""The real MediaMTX: started on reserved ports, ready, controlled through its API, stopped without leftovers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from simfarm.errors import BadInput, EnvironmentProblem
from simfarm.publishers.mediamtx import OLDEST, MediaMTX, PathState, RecordOptions, rtsp_publish_argv
from simfarm.publishers.mediamtx import server as server_module
from simfarm.publishers.mediamtx.process import session_members
from simfarm.publishers.ports import reserve_ports

pytestmark = pytest.mark.mediamtx

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """The first truthy result of ``probe``, polled (the API has no events to wait on)."""
    deadline = time.monotonic() + timeout
    while not (result := probe()):
        assert time.monotonic() < deadline, f"not within {timeout}s"
        time.sleep(0.2)
    return result


def processes_running(config: Path) -> list[int]:
    """Processes whose command line names ``config`` (a server started with it)."""
    found = []
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and str(config).encode() in Path(entry.path, "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture
def server(tmp_path: Path, mediamtx_binary: str) -> Iterator[MediaMTX]:
    with MediaMTX.start(tmp_path / "mtx", {}, binary=mediamtx_binary) as running:
        yield running


@pytest.fixture
def ffmpeg() -> str:
    return shutil.which("ffmpeg") or pytest.skip("no ffmpeg: apt-get install -y ffmpeg")


def test_a_started_server_is_ready_and_reports_its_version(server: MediaMTX) -> None:
    assert server.version >= OLDEST
    assert server.api.info().version == str(server.version)
    with socket.create_connection(("127.0.0.1", server.ports.rtsp), timeout=5):
        pass
    assert server.files.log.exists()


def test_paths_are_added_and_deleted_at_run_time(server: MediaMTX) -> None:
    assert server.api.path_config("extra") is None
    server.api.add_path("extra", {})
    assert (server.api.path_config("extra") or {}).get("name") == "extra"
    with pytest.raises(BadInput):
        server.api.add_path("extra", {})
    server.api.delete_path("extra")
    assert server.api.path_config("extra") is None
    with pytest.raises(BadInput):
        server.api.delete_path("extra")


def test_two_servers_run_side_by_side(tmp_path: Path, mediamtx_binary: str) -> None:
    with MediaMTX.start(tmp_path / "a", {}, binary=mediamtx_binary) as first, \
            MediaMTX.start(tmp_path / "b", {}, binary=mediamtx_binary) as second:
        assert not {first.ports.rtsp, first.ports.api} & {second.ports.rtsp, second.ports.api}
        assert first.api.info().version == second.api.info().version


def test_stop_leaves_nothing_running_and_frees_the_ports(tmp_path: Path, mediamtx_binary: str) -> None:
    server = MediaMTX.start(tmp_path / "mtx", {}, binary=mediamtx_binary)
    server.stop()
    assert processes_running(server.files.config) == []
    with reserve_ports(2, candidates=[server.ports.rtsp, server.ports.api]) as again:
        assert sorted(again.ports) == sorted([server.ports.rtsp, server.ports.api])


def test_a_server_not_ready_in_time_is_stopped_with_its_log(tmp_path: Path, mediamtx_binary: str) -> None:
    with pytest.raises(EnvironmentProblem, match="not ready after 0s"):
        MediaMTX.start(tmp_path / "mtx", {}, binary=mediamtx_binary, ready_timeout=0)
    assert processes_running(tmp_path / "mtx" / "mediamtx.yml") == []


def test_a_published_path_is_recorded_played_back_and_its_publisher_kicked(
        tmp_path: Path, mediamtx_binary: str, ffmpeg: str) -> None:
    publisher = rtsp_publish_argv(["-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10"], gop=10, ffmpeg=ffmpeg)
    with MediaMTX.start(tmp_path / "mtx", {"cam0": publisher}, binary=mediamtx_binary,
                        record=RecordOptions(segment_seconds=1, playback=True)) as server:
        state = server.wait_available("cam0")
        assert state.online and state.source is not None and state.source.type == "rtspSession"
        assert [session.id for session in server.api.rtsp_sessions()
                if session.path == "cam0" and session.state == "publish"] == [state.source.id]
        assert eventually(lambda: (server.api.path("cam0") or state).inbound_bytes > state.inbound_bytes)

        assert eventually(lambda: next((rec.segments for rec in server.api.recordings("cam0")), None))
        assert list((server.files.recordings / "cam0").glob("*.mp4"))
        assert server.playback_url
        listed = eventually(lambda: _get_json(f"{server.playback_url}/list?path=cam0"))
        assert listed[0]["start"]

        publisher_id = state.source.id
        server.api.kick_rtsp_session(publisher_id)
        assert eventually(lambda: publisher_id not in {session.id for session in server.api.rtsp_sessions()})
        # runOnInitRestart: MediaMTX starts the publisher again (after a fixed 5 s pause).
        def republished() -> PathState | None:
            now = server.api.path("cam0")
            return now if now and now.available and now.source and now.source.id != publisher_id else None

        assert eventually(republished).online
    assert processes_running(server.files.config) == []
    assert session_members(server.pid) == []


def _get_json(url: str) -> Any:
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError:
        return None  # 404 until a recorded span is complete


def test_a_key_its_version_rejects_fails_the_start_with_its_log_and_leaves_nothing(
        tmp_path: Path, mediamtx_binary: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = server_module.build_config

    def with_an_unknown_key(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**real(*args, **kwargs), "rtspScaleFactor": 2}  # a key no version has

    monkeypatch.setattr(server_module, "build_config", with_an_unknown_key)
    launched: list[int] = []
    with pytest.raises(EnvironmentProblem, match="rtspScaleFactor") as caught:
        MediaMTX.start(tmp_path / "mtx", {}, binary=mediamtx_binary, on_launch=launched.append)
    assert "exited with code" in str(caught.value)
    assert processes_running(tmp_path / "mtx" / "mediamtx.yml") == [] and len(launched) == 1


def test_a_port_taken_between_reservation_and_start_is_skipped(
        tmp_path: Path, mediamtx_binary: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = server_module.reserve_ports
    stolen: list[socket.socket] = []

    def reserve_then_lose_the_first(count: int) -> Any:
        reservation = real(count)
        if not stolen:  # someone who is not simfarm binds our RTSP port before MediaMTX does
            thief = socket.socket()
            thief.bind(("127.0.0.1", reservation.ports[0]))
            thief.listen()
            stolen.append(thief)
        return reservation

    monkeypatch.setattr(server_module, "reserve_ports", reserve_then_lose_the_first)
    try:
        with MediaMTX.start(tmp_path / "mtx", {}, binary=mediamtx_binary) as server:
            assert server.ports.rtsp != stolen[0].getsockname()[1]
            assert server.api.info().version
    finally:
        stolen[0].close()


def test_a_paths_url_is_the_base_url_and_its_name(server: MediaMTX) -> None:
    assert server.rtsp_url("cam0") == f"{server.rtsp_base_url}/cam0"
    assert server.rtsp_base_url == f"rtsp://127.0.0.1:{server.ports.rtsp}"
