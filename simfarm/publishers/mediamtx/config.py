"""The MediaMTX configuration for one farm, as YAML.

MediaMTX refuses to start on an unknown key, so the configuration is
written for the version that reads it (versions.py): only keys of that
version's reference ``mediamtx.yml``, with its types (durations are strings).
Several farms run side by side, so everything listens on 127.0.0.1 on ports
the caller reserved, and every protocol the farm does not use is off: each
would open fixed default ports (RTMP 1935, HLS 8888, WebRTC 8889/8189, SRT
8890, MoQ 8892/8893, RTP/RTCP 8000/8001 for RTSP over UDP) and clash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ...errors import BadInput
from ..ports import HOST
from .binary import Version
from .hooks import hook_command
from .names import check_path_name
from .versions import adapt_config

RECORD_FORMATS = ("fmp4", "mpegts")
MAX_SEGMENT_SECONDS = 24 * 3600  # MediaMTX: "maximum segment duration is 1 day"

# %path keeps each camera apart; %Y..%S are required unless %s is used, and
# %f (microseconds) is required when the playback server is on.
RECORD_NAME = "%path/%Y-%m-%d_%H-%M-%S-%f"


@dataclass(frozen=True)
class Ports:
    """The TCP ports one server listens on (all on 127.0.0.1)."""

    rtsp: int
    api: int
    playback: int | None = None  # only when recording with playback


@dataclass(frozen=True)
class RecordOptions:
    """Recording of every path to disk, under the server's directory."""

    format: str = "fmp4"
    segment_seconds: int | None = None  # None keeps MediaMTX's default (1h)
    playback: bool = False  # also serve recordings over the playback API

    def __post_init__(self) -> None:
        if self.format not in RECORD_FORMATS:
            raise BadInput(f"record format {self.format!r} must be one of {', '.join(RECORD_FORMATS)}")
        if self.segment_seconds is not None and not 1 <= self.segment_seconds <= MAX_SEGMENT_SECONDS:
            raise BadInput(f"record segment length {self.segment_seconds}s must be 1-{MAX_SEGMENT_SECONDS}s")


@dataclass(frozen=True)
class Files:
    """Where one server's files live inside the directory it owns."""

    workdir: Path

    @property
    def config(self) -> Path:
        return self.workdir / "mediamtx.yml"

    @property
    def log(self) -> Path:
        return self.workdir / "mediamtx.log"

    @property
    def output(self) -> Path:
        """stdout and stderr: errors from before the log opens, and the hooks' (ffmpeg's) output."""
        return self.workdir / "mediamtx.out"

    @property
    def recordings(self) -> Path:
        return self.workdir / "recordings"


def path_entry(publisher: Sequence[str]) -> dict[str, Any]:
    """One ``paths`` entry: MediaMTX runs ``publisher`` from start to stop, restarting it when it exits.

    Also valid as the body of ``POST /v3/config/paths/add/{name}``.
    """
    return {"runOnInit": hook_command(publisher), "runOnInitRestart": True}


def build_config(files: Files, paths: Mapping[str, Sequence[str]], ports: Ports, *, version: Version,
                 record: RecordOptions | None = None) -> dict[str, Any]:
    """The configuration ``version`` reads, as a mapping: path name -> publisher argv, the reserved ports, recording."""
    playback = bool(record and record.playback)
    if playback != (ports.playback is not None):
        raise ValueError("a playback port is needed exactly when recording with playback")
    config: dict[str, Any] = {
        "logLevel": "info",
        "logDestinations": ["file"],
        "logFile": str(files.log.absolute()),
        # Explicit rather than the default, so a changed default cannot lock us
        # out: anyone on this host may publish and read, and use the API.
        "authMethod": "internal",
        "authInternalUsers": [{
            "user": "any",
            "ips": [HOST, "::1"],
            "permissions": [{"action": action} for action in ("publish", "read", "playback", "api")],
        }],
        "api": True,
        "apiAddress": f"{HOST}:{ports.api}",
        "metrics": False,
        "pprof": False,
        "playback": playback,
        **({"playbackAddress": f"{HOST}:{ports.playback}"} if playback else {}),
        "rtsp": True,
        "rtspTransports": ["tcp"],
        "rtspEncryption": "no",
        "rtspAddress": f"{HOST}:{ports.rtsp}",
        "rtmp": False,
        "hls": False,
        "webrtc": False,
        "srt": False,
        "moq": False,
    }
    if record:
        config["pathDefaults"] = _record_defaults(files, record)
    config["paths"] = {check_path_name(name): path_entry(argv) for name, argv in paths.items()}
    return adapt_config(config, version)


def _record_defaults(files: Files, record: RecordOptions) -> dict[str, Any]:
    # In pathDefaults, so paths added later through the API record too.
    directory = str(files.recordings.absolute())
    if "%" in directory:
        raise BadInput(f"state directory {directory!r} contains '%', which MediaMTX's recordPath would expand")
    defaults: dict[str, Any] = {
        "record": True,
        "recordPath": f"{directory}/{RECORD_NAME}",
        "recordFormat": record.format,
    }
    if record.segment_seconds is not None:
        defaults["recordSegmentDuration"] = f"{record.segment_seconds}s"
    return defaults


def render(config: Mapping[str, Any]) -> str:
    """YAML text for ``config``."""
    header = "# Generated by simfarm for one farm; MediaMTX rejects unknown keys.\n"
    return header + yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True,
                                   width=1 << 20)  # one line per hook command
