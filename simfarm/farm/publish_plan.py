"""How a farm publishes, decided before anything is made: the options, the
checks that need no device, and the names both sides share.

The provisioner turns :class:`PublishOptions` into a plan (a missing or old
MediaMTX binary, bad recording options or an unreachable API fail here,
before any node exists); the supervisor follows the plan (publishing.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import binaries
from ..errors import BadInput
from ..publishers.mediamtx import ApiClient, RecordOptions, versions
from ..publishers.mediamtx.config import Files
from ..publishers.mediamtx.server import require_binary

WORKDIR = "mediamtx"  # in the farm's state directory: config, logs, recordings
# What starting MediaMTX and waiting for every path may add to a supervisor's start (seconds, under emulation):
# the server's readiness, then FFmpeg opening each node and sending its first keyframe.
START_S = 120.0


@dataclass(frozen=True)
class PublishOptions:
    """How a farm publishes: ``Farm.provision(..., publish=PublishOptions(record=True))``."""

    record: bool = False  # record every path into the farm's directory
    mediamtx: str | None = None  # the binary (default: $SIMFARM_MEDIAMTX, then PATH)
    api: str | None = None  # an existing server's API URL: use it instead of starting one
    record_format: str = "fmp4"
    segment_seconds: int | None = None  # recording segment length (MediaMTX's default: 1 h)
    # False: a managed MediaMTX for the service under test, with no paths of simfarm's (the service adds
    # its own through the API and reads the nodes itself, which simfarm's publishers would hold).
    camera_paths: bool = True

    def resolve(self) -> dict[str, Any]:
        """The plan the supervisor follows, after every check that needs no device.

        Run by the provisioner before anything is created: a missing or old
        binary, a bad recording option or an unreachable API fails here.
        """
        if self.api:
            if not self.camera_paths:
                raise BadInput("a MediaMTX for the service is one the farm starts: drop --mediamtx-api")
            if self.mediamtx:
                raise BadInput("--mediamtx and --mediamtx-api exclude each other")
            if self.record:
                raise BadInput("recording needs a managed MediaMTX (segments go to the farm's directory): "
                               "drop --record or --mediamtx-api")
            versions.of_server(ApiClient(self.api).info().version)
            binary = None
        else:
            RecordOptions(self.record_format, self.segment_seconds)
            binary, _ = require_binary(self.mediamtx)
        binaries.require("ffmpeg")
        return {"record": self.record, "binary": binary, "api": self.api.rstrip("/") if self.api else None,
                "record_format": self.record_format, "segment_seconds": self.segment_seconds,
                "camera_paths": self.camera_paths}


def path_name(label: str) -> str:
    """The MediaMTX path of the camera labelled ``label``."""
    return label


def recordings_dir(farm_dir: Path) -> Path:
    return Files(farm_dir / WORKDIR).recordings
