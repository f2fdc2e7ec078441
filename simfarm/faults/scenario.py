"""Scenario files: a seeded timeline of faults across a farm's cameras.

    seed: 7                       # optional, default 0
    duration: 2m                  # optional: events from here on are not scheduled
    timeline:
      - at: 2s                    # from the start of the scenario (default 0)
        camera: 0                 # an index, a list of indices, all, or random
        fault: drop frames=10     # as on the command line, or {kind: drop, frames: 10}
      - at: 5s
        for: 3s                   # how long each occurrence lasts
        camera: all
        fault: {kind: noise, amount: 0.3}
      - at: 10s
        every: 20s                # repeat: occurrences at at, at + every, ...
        repeat: 3                 # how many (default: until duration)
        camera: random            # one camera drawn per occurrence
        for: 1s
        choice:                   # one option drawn per occurrence and camera
          - {fault: black, weight: 1}
          - {fault: freeze, weight: 3, for: 2s}   # an option's `for` overrides the entry's

:meth:`Scenario.schedule` turns it into the list of faults to start, each at
a time, on a camera, under a fault id. It is a pure function of the file,
the seed and the camera indices: each entry draws from its own generator,
seeded from (seed, entry number), so editing an entry or appending one leaves
the draws of the others alone. Every mistake is a BadInput naming the file and line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .. import yamlfile
from ..errors import BadInput
from ..yamlfile import Located
from .catalogue import FaultSpec
from .durations import parse_duration

# A guard against `every: 1ms` over hours: the schedule is built in memory.
MAX_EVENTS = 100_000
_ENTRY_KEYS = {"at", "for", "every", "repeat", "camera", "fault", "choice"}


@dataclass(frozen=True)
class ScheduledFault:
    """Start ``spec`` on ``camera`` at ``time_s`` seconds into the scenario, as fault ``fault_id``."""

    time_s: float
    camera: int
    fault_id: str
    spec: FaultSpec

    def to_json(self) -> dict[str, Any]:
        return {"at_s": self.time_s, "camera": self.camera, "fault": self.fault_id,
                "device_level": self.spec.device_level, **self.spec.to_json()}


@dataclass(frozen=True)
class _Option:
    spec: FaultSpec
    weight: float


@dataclass(frozen=True)
class _Entry:
    index: int
    source: Located
    at: float
    every: float | None
    repeat: int | None
    cameras: str | tuple[int, ...]  # "all", "random", or indices
    options: tuple[_Option, ...]

    def times(self, duration: float | None) -> list[float]:
        """Start times of its occurrences, all before ``duration`` when there is one."""
        count = 1 if self.every is None else self.repeat  # None: until the duration
        times: list[float] = []
        while count is None or len(times) < count:
            time = self.at + len(times) * (self.every or 0.0)
            if duration is not None and time >= duration:
                break
            if len(times) == MAX_EVENTS:
                raise self.source.fail("every", f"more than {MAX_EVENTS} occurrences: give repeat or "
                                                "a shorter scenario duration")
            times.append(time)
        return times


class Scenario:
    """A loaded, validated scenario file."""

    def __init__(self, path: str, seed: int, duration_s: float | None, entries: Sequence[_Entry]) -> None:
        self.path = path
        self.seed = seed
        self.duration_s = duration_s
        self._entries = tuple(entries)

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        data = yamlfile.load(path)
        if not isinstance(data, Located):
            raise BadInput(f"{path}:1: a scenario is a mapping with a 'timeline' list")
        data.check_keys({"seed", "duration", "timeline"}, "scenario")
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise data.fail("seed", f"seed {seed!r} is not a non-negative integer")
        duration = _checked(data, "duration", parse_duration) if "duration" in data else None
        timeline = data.get("timeline")
        if not isinstance(timeline, list) or not timeline:
            raise data.fail("timeline" if "timeline" in data else None, "timeline must be a non-empty list")
        entries = []
        for index, item in enumerate(timeline):
            if not isinstance(item, Located):
                raise data.fail("timeline", f"timeline entry {index + 1} is not a mapping")
            entries.append(_entry(index, item, duration))
        return cls(str(path), seed, duration, entries)

    def schedule(self, cameras: Sequence[int], seed: int | None = None) -> list[ScheduledFault]:
        """Every fault to start, by time (entries in file order at equal times), for a farm of ``cameras``."""
        seed = self.seed if seed is None else seed
        if seed < 0:
            raise BadInput(f"seed {seed} is not a non-negative integer")
        if not cameras:
            raise BadInput(f"{self.path}: the farm has no cameras to schedule faults on")
        events = []
        for entry in self._entries:
            rng = np.random.default_rng([seed, entry.index])
            if isinstance(entry.cameras, tuple) and (unknown := set(entry.cameras) - set(cameras)):
                raise entry.source.fail("camera", f"camera {min(unknown)} is not in the farm "
                                                  f"(cameras: {', '.join(map(str, cameras))})")
            weights = np.array([option.weight for option in entry.options])
            for occurrence, time in enumerate(entry.times(self.duration_s)):
                if isinstance(entry.cameras, tuple):
                    targets: Sequence[int] = entry.cameras
                elif entry.cameras == "random":
                    targets = [cameras[int(rng.integers(len(cameras)))]]
                else:
                    targets = cameras
                for camera in targets:
                    option = entry.options[int(rng.choice(len(weights), p=weights / weights.sum()))
                                           if len(weights) > 1 else 0]
                    events.append(ScheduledFault(time, camera, f"e{entry.index}.{occurrence}.c{camera}",
                                                 option.spec))
        events.sort(key=lambda event: event.time_s)
        return events


def _checked(mapping: Located, key: str, parse: Callable[[object, str], float]) -> float:
    """``parse(mapping[key])`` with a BadInput moved to the key's line."""
    try:
        return parse(mapping[key], key)
    except BadInput as exc:
        raise mapping.fail(key, str(exc)) from None


def _entry(index: int, item: Located, duration: float | None) -> _Entry:
    item.check_keys(_ENTRY_KEYS, "timeline entry")
    at = _checked(item, "at", partial(parse_duration, allow_zero=True)) if "at" in item else 0.0
    every = _checked(item, "every", parse_duration) if "every" in item else None
    repeat = item.get("repeat")
    if repeat is not None and (isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1):
        raise item.fail("repeat", f"repeat {repeat!r} is not a positive integer")
    if repeat is not None and repeat > 1 and every is None:
        raise item.fail("repeat", "repeat needs every (the time between occurrences)")
    if every is not None and repeat is None and duration is None:
        raise item.fail("every", "every without repeat needs the scenario's duration")
    if ("fault" in item) == ("choice" in item):
        raise item.fail(None, "a timeline entry needs exactly one of fault and choice")
    if "camera" not in item:
        raise item.fail(None, "a timeline entry needs a camera: an index, a list of indices, all or random")
    duration_s = _checked(item, "for", parse_duration) if "for" in item else None
    options = (_Option(_spec(item, "fault", duration_s), 1.0),) if "fault" in item else _choice(item, duration_s)
    return _Entry(index, item, at, every, repeat, _cameras(item), options)


def _spec(mapping: Located, key: str, duration: float | None) -> FaultSpec:
    value = mapping[key]
    try:
        if isinstance(value, dict):
            return FaultSpec.from_mapping(value, duration=duration)
        if isinstance(value, str):
            return FaultSpec.parse(value, duration=duration)
    except BadInput as exc:
        raise mapping.fail(key, str(exc)) from None
    raise mapping.fail(key, f"fault {value!r} is neither text (drop frames=10) nor a mapping "
                            "({kind: drop, frames: 10})")


def _choice(item: Located, duration_s: float | None) -> tuple[_Option, ...]:
    options = item["choice"]
    if not isinstance(options, list) or not options or not all(isinstance(o, Located) for o in options):
        raise item.fail("choice", "choice must be a non-empty list of mappings with a fault and a weight")
    chosen = []
    for option in options:
        option.check_keys({"fault", "weight", "for"}, "choice")
        if "fault" not in option:
            raise option.fail(None, "a choice needs a fault")
        weight = option.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise option.fail("weight", f"weight {weight!r} is not a positive number")
        own = _checked(option, "for", parse_duration) if "for" in option else duration_s
        chosen.append(_Option(_spec(option, "fault", own), float(weight)))
    return tuple(chosen)


def _cameras(item: Located) -> str | tuple[int, ...]:
    value = item["camera"]
    if value in ("all", "random"):
        return value
    indices = value if isinstance(value, list) else [value]
    if not indices or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indices):
        raise item.fail("camera", f"camera {value!r} is not an index, a list of indices, all or random")
    return tuple(indices)
