"""The loopback backend: camera nodes made and unmade through v4l2loopback.

With the control device (>= 0.13) each node is added and removed on its own;
with 0.12 the farm loads the module with all its nodes (params.py).

Ownership is enforced here: a node is removed only when its card label is
still the one we gave it, so a number reused by someone else is left alone.
"""

from __future__ import annotations

import enum
import errno
import os
import time

from ...errors import EnvironmentProblem
from ..kmod import kmodule
from ..v4l2 import nodes
from ..v4l2.nodes import NodeBusy
from . import params
from .control import CONTROL_DEVICE, DEFAULT_MAX_BUFFERS, LoopbackConfig, LoopbackControl

MIN_VERSION = (0, 13)


class Mode(enum.Enum):
    """How a farm's loopback nodes come to exist."""

    CONTROL = "control"  # >= 0.13: one ioctl per camera, at any time (hotplug)
    PARAMETERS = "parameters"  # 0.12: the farm loads the module with all its cameras


def choose_mode() -> Mode:
    """The mode this kernel allows, or EnvironmentProblem saying what to install or load."""
    if kmodule.loaded(params.MODULE):
        if os.path.exists(CONTROL_DEVICE):
            return Mode.CONTROL
        raise params.loaded_elsewhere()
    installed = kmodule.installed_version(params.MODULE) if os.path.exists("/proc/modules") else None
    if installed is not None and _version(installed) < MIN_VERSION:
        return Mode.PARAMETERS
    raise EnvironmentProblem("v4l2loopback is not loaded",
                             "modprobe v4l2loopback devices=0, or run inside `simfarm vm`")


def _version(text: str) -> tuple[int, ...]:
    # 0.12.7 declares no version at all; anything unparsable counts as old.
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def create(label: str, number: int = -1, max_buffers: int = DEFAULT_MAX_BUFFERS) -> int:
    """Create a node with card ``label`` and a ring of ``max_buffers`` frames through the control
    device; returns its number."""
    with LoopbackControl() as control:
        return control.add(LoopbackConfig(label=label, number=number, max_buffers=max_buffers))


def remove(number: int, label: str, *, timeout: float = 10.0) -> bool:
    """Remove node N if it still carries ``label``; waits for readers up to ``timeout`` s.

    Returns False when the node was already gone (or is no longer ours).
    Raises NodeBusy, naming the pids, when readers outlast the timeout.
    """
    if nodes.card_label(number) != label:
        return False
    deadline = time.monotonic() + timeout
    with LoopbackControl() as control:
        while True:
            try:
                control.remove(number)
                return True
            except OSError as exc:
                if exc.errno in (errno.ENODEV, errno.EINVAL, errno.ENOENT):
                    return False
                if exc.errno != errno.EBUSY:
                    raise EnvironmentProblem(f"cannot remove {nodes.node_path(number)}: {exc.strerror}") from None
            if time.monotonic() >= deadline:
                raise NodeBusy(number, nodes.holders(nodes.node_path(number)))
            time.sleep(0.1)  # v4l2loopback offers no event for "last reader closed"
