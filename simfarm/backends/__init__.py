"""Where a farm's cameras come from: one module per backend, each behind base.Backend.

The farm (simfarm.farm) imports this package; backends import only the
farm's leaf modules (state, live, device_faults), never the farm itself.
"""

from __future__ import annotations

from ..spec import parse_backend
from .base import Backend, ProducedCamera, SupervisedCamera
from .loopback import LoopbackBackend
from .uvc import UvcBackend
from .vivid import VividBackend


def get(name: str) -> Backend:
    """The backend called ``name`` (see simfarm.spec.BACKENDS)."""
    backends: dict[str, Backend] = {"loopback": LoopbackBackend(), "vivid": VividBackend(), "uvc": UvcBackend()}
    return backends[parse_backend(name)]


__all__ = ["Backend", "ProducedCamera", "SupervisedCamera", "get"]
