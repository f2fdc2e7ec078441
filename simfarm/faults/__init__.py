"""Faults: the catalogue, frame-level faults with exact bookkeeping, and seeded scenario timelines.

    spec = FaultSpec.parse("drop frames=10")
    handle = camera_faults.add(spec)          # a FaultSet, one per camera
    ...                                       # the producer serves camera_faults.on_slot() plans
    handle.touched                            # exactly the ten missing sequence numbers

Device-level kinds (unplug, replug, resize, reformat) are parsed and
validated here but carried out by the supervisor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import lazyimport

if TYPE_CHECKING:
    from .catalogue import KINDS, FaultSpec, Kind, Role, describe
    from .durations import parse_duration
    from .faultset import FaultSet
    from .handle import FaultHandle, FaultListener, Mark
    from .log import FaultLog, read_log
    from .scenario import Scenario, ScheduledFault
    from .slots import SlotPlan, SlotWriter
    from .transforms import Corruption

# Imported on first use: the CLI parses a fault with the catalogue alone, without numpy.
__getattr__ = lazyimport.exports(__name__, {
    ".catalogue": ["KINDS", "FaultSpec", "Kind", "Role", "describe"],
    ".durations": ["parse_duration"],
    ".faultset": ["FaultSet"],
    ".handle": ["FaultHandle", "FaultListener", "Mark"],
    ".log": ["FaultLog", "read_log"],
    ".scenario": ["Scenario", "ScheduledFault"],
    ".slots": ["SlotPlan", "SlotWriter"],
    ".transforms": ["Corruption"],
})

__all__ = ["KINDS", "Corruption", "FaultHandle", "FaultListener", "FaultLog", "FaultSet", "FaultSpec", "Kind",
           "Mark", "Role", "Scenario", "ScheduledFault", "SlotPlan", "SlotWriter", "describe", "parse_duration",
           "read_log"]
