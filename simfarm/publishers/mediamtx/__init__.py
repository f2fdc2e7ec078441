"""MediaMTX as the farm's publisher: binary, generated config, control API, server lifecycle."""

from __future__ import annotations

from .api import ApiClient, PathRecordings, PathState, Peer, RtspSession, ServerInfo, Unreachable
from .binary import Version, binary_version, find_binary
from .config import Files, Ports, RecordOptions, build_config, path_entry, render
from .hooks import hook_command, rtsp_publish_argv, v4l2_publish_argv
from .names import check_path_name
from .server import MediaMTX
from .versions import OLDEST, SUPPORTED

__all__ = ["OLDEST", "SUPPORTED", "ApiClient", "Files", "MediaMTX", "PathRecordings", "PathState", "Peer", "Ports",
           "RecordOptions", "RtspSession", "ServerInfo", "Unreachable", "Version", "binary_version",
           "build_config", "check_path_name", "find_binary", "hook_command", "path_entry", "render",
           "rtsp_publish_argv", "v4l2_publish_argv"]
