"""Waiting for what a kernel uevent brings (a USB device, a video node) instead of sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pyudev

from ...errors import EnvironmentProblem

T = TypeVar("T")


class Watch:
    """Kernel uevents of ``subsystems``, watched from now: start one before the action that
    causes them, so none is missed."""

    def __init__(self, *subsystems: str) -> None:
        self._monitor = pyudev.Monitor.from_netlink(pyudev.Context(), source="kernel")
        for subsystem in subsystems:
            self._monitor.filter_by(subsystem)
        self._monitor.start()

    def until(self, condition: Callable[[], T | None], what: str, timeout: float) -> T:
        """``condition()``'s first non-None value, checked again after each uevent."""
        deadline = time.monotonic() + timeout
        while (found := condition()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise EnvironmentProblem(f"{what} did not happen within {timeout:g} s")
            self._monitor.poll(timeout=left)
        return found
