"""What a test asks of the farm: how many cameras, which spec, whether to publish.

Defaults come from the command line (``--simfarm-*``), and a test overrides
them with ``@pytest.mark.simfarm(...)``. Parsing lives apart from
provisioning so it can be checked on a host that cannot make cameras.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from ..errors import BadInput
from ..spec import MAX_CAMERAS, CameraSpec, parse_backend

MARKER = "simfarm"
MARKER_HELP = (f"{MARKER}(cameras=1, size='WxH', fps=N, format='YUYV', pattern='name', publish=False, "
               "record=False, backend='loopback', profile=None): the farm this test needs (see simfarm.pytest_plugin)")
# Spec fields a marker or option may set; the rest (producer, source) keep CameraSpec's defaults.
SPEC_FIELDS = ("size", "fps", "format", "pattern")
# Small and slow enough for TCG-emulated VMs, where HIL suites usually run.
DEFAULTS: dict[str, str] = {"cameras": "2", "size": "320x240", "fps": "15", "format": "YUYV", "pattern": "smpte75"}
HELP = {"cameras": "cameras a test gets", "size": "frame size (WxH)", "fps": "frame rate",
        "format": "pixel format", "pattern": "test pattern (simfarm patterns list)"}


@dataclass(frozen=True)
class FarmRequest:
    """``cameras`` cameras of one ``spec`` made by ``backend``; ``publish``/``record`` ask for a
    MediaMTX server."""

    cameras: int
    spec: CameraSpec
    publish: bool = False
    record: bool = False
    backend: str = "loopback"

    def __post_init__(self) -> None:
        if not 1 <= self.cameras <= MAX_CAMERAS:
            raise BadInput(f"cameras must be 1..{MAX_CAMERAS}, not {self.cameras}")
        if self.record and not self.publish:
            raise BadInput("record=True needs publish=True (recordings are made by MediaMTX)")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup(MARKER, "simfarm fake cameras (defaults for @pytest.mark.simfarm)")
    for key, default in DEFAULTS.items():
        group.addoption(f"--simfarm-{key}", dest=f"simfarm_{key}", default=default, metavar=key.upper(),
                        help=f"default {HELP[key]} (default: {default})")


def from_options(config: pytest.Config) -> FarmRequest:
    """The request of a test without a marker; a bad option value is a usage error."""
    values = {key: config.getoption(f"simfarm_{key}") for key in DEFAULTS}
    try:
        return _build(values)
    except BadInput as exc:
        raise pytest.UsageError(f"simfarm: {exc}") from None


def for_marker(default: FarmRequest, marker: pytest.Mark | None) -> FarmRequest:
    """``default`` with the marker's keyword arguments applied; BadInput names a bad one."""
    if marker is None:
        return default
    if marker.args:
        raise BadInput(f"@pytest.mark.{MARKER} takes keyword arguments only, not {marker.args!r}")
    values: dict[str, Any] = {"cameras": default.cameras, "publish": default.publish, "record": default.record,
                              "backend": default.backend, "profile": None,
                              **{key: getattr(default.spec, key) for key in SPEC_FIELDS}}
    unknown = set(marker.kwargs) - set(values)
    if unknown:
        raise BadInput(f"@pytest.mark.{MARKER} has no setting {min(unknown)!r} "
                       f"(known: {', '.join(sorted(values))})")
    backend = parse_backend(marker.kwargs.get("backend", default.backend))
    if backend != "loopback":
        # The other backends' cameras offer other streams: what the marker leaves open is the backend's.
        from .. import backends
        base = backends.get(backend).default_spec(marker.kwargs).to_json()
        values.update({key: base[key] for key in SPEC_FIELDS}, profile=base.get("profile"))
    return _build({**values, **marker.kwargs})


def _build(values: dict[str, Any]) -> FarmRequest:
    try:
        cameras = int(values["cameras"])
    except (TypeError, ValueError):
        raise BadInput(f"cameras {values['cameras']!r} is not a number") from None
    spec = CameraSpec.parse(**{key: values[key] for key in SPEC_FIELDS}, profile=values.get("profile"))
    return FarmRequest(cameras, spec, bool(values.get("publish", False)), bool(values.get("record", False)),
                       parse_backend(values.get("backend", "loopback")))

