"""Generated MediaMTX config: path names, hook commands as MediaMTX will run them, recording, listeners."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from simfarm.errors import BadInput
from simfarm.publishers.mediamtx import (
    Files,
    Ports,
    RecordOptions,
    Version,
    build_config,
    check_path_name,
    hook_command,
    path_entry,
    render,
    rtsp_publish_argv,
    v4l2_publish_argv,
)

NEWEST = Version(1, 20, 1)
HOOK_ENV = {"MTX_PATH": "site/cam-0", "RTSP_PORT": "24321"}


def as_mediamtx_runs_it(command: str, env: dict[str, str]) -> list[str]:
    """What MediaMTX executes for a hook string: $NAME / ${NAME} replaced (Go os.Expand), then shell-word split."""
    expanded = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), command)
    return shlex.split(expanded)


@pytest.mark.parametrize("name", ["cam0", "site/cam-1", "a.b~c:d", "under_score", "X9"])
def test_plain_path_names_are_accepted(name: str) -> None:
    assert check_path_name(name) == name


@pytest.mark.parametrize("name", [
    "", "/cam", "cam/", "a//b", "../x", "a/./b", "..", "cam 0", "cam$0", "cäm", "cam?x", "cam#1", "cam%path",
    "~^cam", "all", "all_others",
])
def test_path_names_mediamtx_would_reject_or_misread_are_bad_input(name: str) -> None:
    with pytest.raises(BadInput):
        check_path_name(name)


def test_a_bad_path_name_fails_the_config(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="all_others"):
        build_config(Files(tmp_path), {"all_others": ["true"]}, Ports(20001, 20002), version=NEWEST)


@pytest.mark.parametrize("device", ["/dev/video3", "/tmp/my cams/it's \"here\"\\video0", "/tmp/a\nb", "/tmp/*;|&"])
def test_hook_command_runs_exactly_the_argv_after_mediamtx_expands_and_splits_it(device: str) -> None:
    argv = v4l2_publish_argv(device, gop=15, ffmpeg="/opt/ffmpeg dir/ffmpeg")
    ran = as_mediamtx_runs_it(hook_command(argv), HOOK_ENV)
    assert ran == [arg.replace("$RTSP_PORT", "24321").replace("$MTX_PATH", "site/cam-0") for arg in argv]
    assert ran[ran.index("-i") + 1] == device
    assert ran[-1] == "rtsp://127.0.0.1:24321/site/cam-0"


def test_hook_command_survives_the_yaml_round_trip(tmp_path: Path) -> None:
    argv = v4l2_publish_argv("/tmp/it's here/video0", gop=15, ffmpeg="ffmpeg")
    config = yaml.safe_load(render(build_config(Files(tmp_path), {"cam0": argv}, Ports(20001, 20002), version=NEWEST)))
    assert config["paths"]["cam0"] == {"runOnInit": hook_command(argv), "runOnInitRestart": True}
    assert path_entry(argv) == config["paths"]["cam0"]


@pytest.mark.parametrize("arg", ["$HOME", "${MTX_PATH}", "$MTX_PATHS", "$$", "cost$", "$RTSP_PORT_X"])
def test_a_dollar_mediamtx_would_expand_is_bad_input(arg: str) -> None:
    with pytest.raises(BadInput, match="expand"):
        hook_command(["ffmpeg", arg])


def test_an_empty_hook_is_bad_input() -> None:
    with pytest.raises(BadInput):
        hook_command([])


def test_publisher_sends_h264_with_a_short_gop_over_rtsp_tcp_to_its_own_path() -> None:
    argv = rtsp_publish_argv(["-f", "lavfi", "-i", "testsrc2"], gop=10, ffmpeg="ffmpeg")
    assert argv[argv.index("-c:v") + 1] == "libx264"
    assert argv[argv.index("-g") + 1] == argv[argv.index("-keyint_min") + 1] == "10"
    assert argv[argv.index("-rtsp_transport") + 1] == "tcp"
    assert argv[-1] == "rtsp://127.0.0.1:$RTSP_PORT/$MTX_PATH"
    with pytest.raises(BadInput):
        rtsp_publish_argv([], gop=0, ffmpeg="ffmpeg")


def test_every_listener_is_on_localhost_at_the_reserved_ports(tmp_path: Path) -> None:
    config = build_config(Files(tmp_path), {}, Ports(20001, 20002, 20003), version=NEWEST, record=RecordOptions(playback=True))
    assert (config["rtspAddress"], config["apiAddress"], config["playbackAddress"]) == (
        "127.0.0.1:20001", "127.0.0.1:20002", "127.0.0.1:20003")
    assert config["api"] is config["playback"] is True
    assert not any(config[switch] for switch in ("rtmp", "hls", "webrtc", "srt", "moq", "metrics", "pprof"))
    assert config["rtspTransports"] == ["tcp"]
    assert "playbackAddress" not in build_config(Files(tmp_path), {}, Ports(20001, 20002), version=NEWEST)


def test_localhost_may_use_the_api(tmp_path: Path) -> None:
    users = build_config(Files(tmp_path), {}, Ports(20001, 20002), version=NEWEST)["authInternalUsers"]
    assert any(user["user"] == "any" and "127.0.0.1" in user["ips"]
               and {"action": "api"} in user["permissions"] for user in users)


def test_logs_go_to_a_file_in_the_servers_directory(tmp_path: Path) -> None:
    config = build_config(Files(tmp_path), {}, Ports(20001, 20002), version=NEWEST)
    assert (config["logDestinations"], config["logFile"]) == (["file"], str(tmp_path / "mediamtx.log"))


@pytest.mark.parametrize("options", [RecordOptions(), RecordOptions(format="mpegts", segment_seconds=5, playback=True)])
def test_recording_goes_under_the_servers_directory_with_the_placeholders_mediamtx_requires(
        tmp_path: Path, options: RecordOptions) -> None:
    ports = Ports(20001, 20002, 20003 if options.playback else None)
    defaults = build_config(Files(tmp_path), {}, ports, version=NEWEST, record=options)["pathDefaults"]
    record_path = defaults["recordPath"]
    assert record_path.startswith(f"{tmp_path / 'recordings'}/%path/")
    # MediaMTX: %path, and %s or all of %Y %m %d %H %M %S, and %f when playback is on.
    assert all(token in record_path for token in ("%path", "%Y", "%m", "%d", "%H", "%M", "%S", "%f"))
    assert defaults["record"] is True
    assert defaults["recordFormat"] == options.format
    assert defaults.get("recordSegmentDuration") == (f"{options.segment_seconds}s" if options.segment_seconds else None)


def test_no_recording_leaves_path_defaults_alone(tmp_path: Path) -> None:
    assert "pathDefaults" not in build_config(Files(tmp_path), {"cam0": ["true"]}, Ports(20001, 20002), version=NEWEST)


def test_a_percent_in_the_directory_would_be_expanded_so_it_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="%"):
        build_config(Files(tmp_path / "100%s"), {}, Ports(20001, 20002), version=NEWEST, record=RecordOptions())


@pytest.mark.parametrize("bad", [{"format": "mp4"}, {"segment_seconds": 0}, {"segment_seconds": 86401}])
def test_bad_record_options_are_bad_input(bad: dict[str, object]) -> None:
    with pytest.raises(BadInput):
        RecordOptions(**bad)  # type: ignore[arg-type]


def test_playback_needs_its_port_and_only_then(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        build_config(Files(tmp_path), {}, Ports(20001, 20002), version=NEWEST, record=RecordOptions(playback=True))
    with pytest.raises(ValueError):
        build_config(Files(tmp_path), {}, Ports(20001, 20002, 20003), version=NEWEST)
