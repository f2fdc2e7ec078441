"""The loopback backend: camera nodes made and unmade through v4l2loopback.

Ownership is enforced here: a node is removed only when its card label is
still the one we gave it, so a number reused by someone else is left alone.
"""

from __future__ import annotations

import errno
import time

from ..errors import EnvironmentProblem
from . import nodes
from .loopback_control import LoopbackConfig, LoopbackControl, module_version
from .nodes import NodeBusy

MIN_VERSION = (0, 13)


def require_runtime_hotplug() -> tuple[int, ...]:
    version = module_version()
    if version is None:
        raise EnvironmentProblem("v4l2loopback is not loaded",
                                 "modprobe v4l2loopback devices=0, or run inside `simfarm vm`")
    if version < MIN_VERSION:
        raise EnvironmentProblem(
            f"v4l2loopback {'.'.join(map(str, version))} cannot add devices at run time (needs >= 0.13)",
            "sudo scripts/setup-vm.sh, then run inside `simfarm vm`")
    return version


def create(label: str, number: int = -1) -> int:
    """Create a node with card ``label``; returns its number."""
    require_runtime_hotplug()
    with LoopbackControl() as control:
        return control.add(LoopbackConfig(label=label, number=number))


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
