"""Where a farm's cameras come from: one module per backend, each behind base.Backend.

The farm (simfarm.farm) imports this package; backends import the rooms
below (simfarm.state, simfarm.devices, producers, faults), never the farm.
The cameras a backend's supervisor runs (live) and the bookkeeping of
device-level faults (device_faults) live here, for backends and farm alike.
Only the backend asked for is imported: a loopback farm's provisioner and
supervisor load nothing of vivid's or of the USB webcams'.
"""

from __future__ import annotations

import importlib

from ..spec import parse_backend
from .base import Backend, ProducedCamera, SupervisedCamera, WorkerBackend

# backend name -> (its module in this package, its class)
_BACKENDS = {"loopback": ("loopback.backend", "LoopbackBackend"), "vivid": ("vivid", "VividBackend"),
             "uvc": ("uvc.backend", "UvcBackend")}


def get(name: str) -> Backend:
    """The backend called ``name`` (see simfarm.spec.BACKENDS)."""
    module, cls = _BACKENDS[parse_backend(name)]
    backend: Backend = getattr(importlib.import_module(f".{module}", __name__), cls)()
    return backend


__all__ = ["Backend", "ProducedCamera", "SupervisedCamera", "WorkerBackend", "get"]
