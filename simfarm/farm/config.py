"""Farm files: a YAML description of a farm, one spec per camera.

    name: lab                 # farm name (default: default)
    backend: vivid            # loopback (default) or vivid
    nodes: 40-43              # node numbers, or a list; default: the kernel picks
    patterns_dirs: [mine]     # relative to this file
    defaults: {size: 640x480, fps: 30, format: YUYV, pattern: smpte75}
    cameras:                  # a count, or one mapping per camera
      - {pattern: ball}
      - {size: 1280x720, producer: ffmpeg, source: testsrc2}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import yamlfile
from ..errors import BadInput, SimfarmError
from ..spec import CameraSpec, parse_backend, parse_node_numbers

KEYS = {"name", "backend", "nodes", "patterns_dirs", "defaults", "cameras"}


@dataclass
class FarmPlan:
    """A farm file's content, before the CLI's flags are applied."""

    name: str = "default"
    backend: str | None = None
    nodes: list[int] | None = None
    patterns_dirs: list[str] = field(default_factory=list)
    defaults: dict = field(default_factory=dict)
    camera_specs: list[dict] | None = None

    def cameras(self, count: int | None, overrides: dict, base: CameraSpec | None = None) -> list[CameraSpec]:
        """One spec per camera: ``base`` (the backend's default) < file defaults < per-camera entries < flags."""
        entries = self.camera_specs or [{}] * (count if count is not None else 1)
        if count is not None and self.camera_specs and count != len(self.camera_specs):
            raise BadInput(f"--cameras {count} contradicts the farm file's {len(self.camera_specs)} cameras")
        specs = []
        for entry in entries:
            try:
                specs.append(CameraSpec.parse(**{**(base or CameraSpec()).to_json(), **self.defaults, **entry,
                                                **overrides}))
            except SimfarmError as exc:
                if isinstance(entry, yamlfile.Located):
                    raise BadInput(f"{entry.where()}: {exc}") from None
                raise
        return specs


def load(path: str) -> FarmPlan:
    data = yamlfile.load(path)
    if not isinstance(data, yamlfile.Located):
        raise BadInput(f"{path}:1: a farm file is a mapping (name, cameras, ...)")
    data.check_keys(KEYS, "farm file")
    base = Path(path).parent
    plan = FarmPlan(name=str(data.get("name", "default")))
    if "backend" in data:
        try:
            plan.backend = parse_backend(data["backend"])
        except BadInput as exc:
            raise data.fail("backend", str(exc)) from None
    if "nodes" in data:
        try:
            plan.nodes = parse_node_numbers(data["nodes"])
        except BadInput as exc:
            raise data.fail("nodes", str(exc)) from None
    dirs = data.get("patterns_dirs", [])
    if not isinstance(dirs, list):
        raise data.fail("patterns_dirs", "patterns_dirs is a list of directories")
    plan.patterns_dirs = [str(base / d) for d in dirs]
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise data.fail("defaults", "defaults is a mapping of camera settings")
    plan.defaults = dict(defaults)
    cams = data.get("cameras")
    if isinstance(cams, int) and not isinstance(cams, bool):
        plan.camera_specs = [{}] * cams
    elif isinstance(cams, list) and all(isinstance(c, dict) for c in cams):
        plan.camera_specs = cams
    elif cams is not None:
        raise data.fail("cameras", "cameras is a count or a list of camera mappings")
    try:
        plan.cameras(None, {})
    except BadInput as exc:
        msg = str(exc)
        raise exc if msg.startswith(path) else data.fail("defaults" if "defaults" in data else None, msg) from None
    return plan
