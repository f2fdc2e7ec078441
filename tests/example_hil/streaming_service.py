"""A small streaming camera service of the kind that manages MediaMTX itself, standing in for yours.

It knows nothing about simfarm. Given a MediaMTX (its API and RTSP
addresses, as ``simfarm env`` or the ``simfarm_mediamtx`` fixture give them)
it:

- discovers capture devices by probing ``/dev/video*`` with ``v4l2-ctl``;
- publishes a device by adding a path through the v3 API whose
  ``runOnDemand`` FFmpeg reads the node when a reader comes;
- takes a snapshot with FFmpeg straight from the node, and from the RTSP
  path when the node is busy (a V4L2 node streams to one reader at a time,
  webcams and v4l2loopback alike: while the path is read, its FFmpeg has it);
- records a stretch of a path with FFmpeg reading RTSP.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

FFMPEG_TIMEOUT_S = 90  # FFmpeg starts slowly under emulation
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the API is on this host: no proxy


@dataclass(frozen=True)
class Device:
    path: str
    card: str
    driver: str


class Busy(Exception):
    """The node is streamed by another reader."""


def discover(dev: str = "/dev") -> list[Device]:
    """Every video capture device present now, as ``v4l2-ctl --info`` describes it."""
    found = []
    for path in sorted(Path(dev).glob("video*"), key=lambda p: int(p.name[5:] or 0)):
        probe = subprocess.run(["v4l2-ctl", "-d", str(path), "--info"], capture_output=True, text=True, timeout=30)
        if probe.returncode != 0:
            continue  # gone while we looked: cameras come and go
        info = dict(re.findall(r"^\s*(Card type|Driver name)\s*:\s*(.*)$", probe.stdout, re.MULTILINE))
        # The device's own caps (after "Device Caps"), not those of the whole driver.
        device_caps = probe.stdout.partition("Device Caps")[2]
        if "Video Capture" in device_caps:
            found.append(Device(str(path), info.get("Card type", ""), info.get("Driver name", "")))
    return found


class StreamingService:
    """Publishes devices as MediaMTX paths, takes snapshots, records."""

    def __init__(self, api_url: str, rtsp_url: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.rtsp_url = rtsp_url.rstrip("/")
        self.paths: dict[str, str] = {}  # path name -> device

    def publish(self, device: str, name: str) -> str:
        """Add path ``name`` that streams ``device`` on demand; returns its RTSP URL."""
        command = shlex.join(["ffmpeg", "-nostdin", "-loglevel", "warning", "-f", "v4l2", "-i", device,
                              "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                              "-pix_fmt", "yuv420p", "-g", "15",
                              # Each captured frame once: FFmpeg otherwise repeats frames when capture
                              # timestamps have gaps (a loaded machine).
                              "-fps_mode", "passthrough", "-f", "rtsp", "-rtsp_transport", "tcp"])
        self._api("POST", f"/v3/config/paths/add/{name}", {
            "runOnDemand": f"{command} rtsp://127.0.0.1:$RTSP_PORT/$MTX_PATH",
            "runOnDemandRestart": True,
            "runOnDemandStartTimeout": "60s",  # FFmpeg's start and first keyframe, under emulation too
            "runOnDemandCloseAfter": "1s",
        })
        self.paths[name] = device
        return f"{self.rtsp_url}/{name}"

    def unpublish(self, name: str) -> None:
        self._api("DELETE", f"/v3/config/paths/delete/{name}")
        del self.paths[name]

    def readers(self, name: str) -> int:
        return len(self._api("GET", f"/v3/paths/get/{name}").get("readers", []))

    def snapshot(self, device: str, output: Path) -> str:
        """One frame of ``device`` into ``output``; from the node, else (busy) from its path. Returns the source."""
        try:
            _ffmpeg(["-f", "v4l2", "-i", device, "-frames:v", "1", "-y", str(output)])
            return device
        except Busy:
            name = next(name for name, published in self.paths.items() if published == device)
            _ffmpeg(["-rtsp_transport", "tcp", "-i", f"{self.rtsp_url}/{name}", "-frames:v", "1", "-y", str(output)])
            return f"{self.rtsp_url}/{name}"

    def record(self, name: str, seconds: float, output: Path) -> None:
        """``seconds`` of path ``name`` into ``output`` (the encoded stream as it is, remuxed)."""
        _ffmpeg(["-rtsp_transport", "tcp", "-i", f"{self.rtsp_url}/{name}", "-t", f"{seconds:g}",
                 "-c", "copy", "-y", str(output)])

    def _api(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(self.api_url + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with _LOCAL.open(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw.strip() else {}


def _ffmpeg(args: list[str]) -> None:
    done = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", *args],
                          capture_output=True, text=True, timeout=FFMPEG_TIMEOUT_S)
    if done.returncode != 0:
        if "Device or resource busy" in done.stderr:
            raise Busy(done.stderr.strip())
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {done.stderr.strip()[-300:]}")
