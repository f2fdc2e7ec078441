"""MediaMTX as the farm's publisher: binary, generated config, control API, server lifecycle.

The names below are imported on first use (see lazyimport): `simfarm doctor`
asks the binary's version (binary.py) without loading the HTTP client and
the YAML writer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ... import lazyimport

if TYPE_CHECKING:
    from .api import ApiClient, PathRecordings, PathState, Peer, RtspSession, ServerInfo, Unreachable
    from .binary import Version, binary_version, find_binary
    from .config import Files, Ports, RecordOptions, build_config, path_entry, render
    from .hooks import hook_command, rtsp_publish_argv, v4l2_publish_argv
    from .names import check_path_name
    from .server import MediaMTX
    from .versions import OLDEST, SUPPORTED

__getattr__ = lazyimport.exports(__name__, {
    ".api": ["ApiClient", "PathRecordings", "PathState", "Peer", "RtspSession", "ServerInfo", "Unreachable"],
    ".binary": ["Version", "binary_version", "find_binary"],
    ".config": ["Files", "Ports", "RecordOptions", "build_config", "path_entry", "render"],
    ".hooks": ["hook_command", "rtsp_publish_argv", "v4l2_publish_argv"],
    ".names": ["check_path_name"],
    ".server": ["MediaMTX"],
    ".versions": ["OLDEST", "SUPPORTED"],
})

__all__ = ["OLDEST", "SUPPORTED", "ApiClient", "Files", "MediaMTX", "PathRecordings", "PathState", "Peer", "Ports",
           "RecordOptions", "RtspSession", "ServerInfo", "Unreachable", "Version", "binary_version",
           "build_config", "check_path_name", "find_binary", "hook_command", "path_entry", "render",
           "rtsp_publish_argv", "v4l2_publish_argv"]
