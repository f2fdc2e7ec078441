"""v4l2loopback 0.12.x: every camera made at once, by loading the module.

0.12 (Debian bookworm, Ubuntu 24.04) has no control device: devices exist
only from module parameters, fixed until the module is unloaded. So a farm on
0.12 loads the module itself with all of its cameras, owns it, and unloads it
at teardown; one such farm at a time, and no hotplug faults.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import EnvironmentProblem
from ..kmod import kmodule
from ..v4l2 import nodes
from .control import DEFAULT_MAX_BUFFERS, LoopbackConfig

MODULE = "v4l2loopback"
MAX_DEVICES = 8  # 0.12's compile-time limit (MAX_DEVICES in v4l2loopback.c)
NEEDS_CONTROL = "install v4l2loopback >= 0.13 (sudo scripts/setup-vm.sh, then run inside `simfarm vm`)"


def check(count: int) -> None:
    """Refuse, before anything is made, a farm loading the module could not give."""
    if count > MAX_DEVICES:
        raise EnvironmentProblem(f"v4l2loopback 0.12 makes at most {MAX_DEVICES} devices, not {count}",
                                 NEEDS_CONTROL)


def loaded_elsewhere() -> EnvironmentProblem:
    """The error for a 0.12 module that is loaded already: its devices are someone else's."""
    return EnvironmentProblem(f"{MODULE} < 0.13 is loaded already (by someone else, or another farm) "
                              "and cannot add devices at run time",
                              f"unload it (modprobe -r {MODULE}) when its devices are unused, or {NEEDS_CONTROL}")


def load(labels: Sequence[str], numbers: Sequence[int] | None, max_buffers: int = DEFAULT_MAX_BUFFERS) -> list[int]:
    """Load the module with one device per label, each with a ring of ``max_buffers`` frames; returns
    their node numbers, in order.

    The kernel gives a taken number's device the next free one instead of
    failing, so numbers asked for are checked after loading (and the module
    unloaded again when one was not honoured).
    """
    check(len(labels))
    config = LoopbackConfig(label="", max_buffers=max_buffers)
    try:
        kmodule.load(MODULE, {
            "devices": str(len(labels)),
            "video_nr": ",".join(str(n) for n in numbers) if numbers else ",".join("-1" for _ in labels),
            "card_label": ",".join(labels),
            "exclusive_caps": ",".join("1" if config.announce_all_caps == 0 else "0" for _ in labels),
            "max_buffers": str(config.max_buffers),
            "max_openers": str(config.max_openers),
        })
    except EnvironmentProblem:
        if kmodule.loaded(MODULE):
            raise loaded_elsewhere() from None
        raise
    made = [nodes.numbers_with_label(label) for label in labels]
    if any(len(found) != 1 for found in made) or (numbers and [found[0] for found in made] != list(numbers)):
        unload(labels, timeout=5.0)
        raise EnvironmentProblem(f"{MODULE} did not make the nodes asked for (wanted {numbers or 'any'}, got {made})",
                                 "check that the requested /dev/video numbers are free")
    return [found[0] for found in made]


def owns_module(labels: Sequence[str]) -> bool:
    """Whether the loaded module is still the one a farm loaded: its nodes carry the farm's labels."""
    return kmodule.loaded(MODULE) and any(nodes.numbers_with_label(label) for label in labels)


def unload(labels: Sequence[str], *, timeout: float) -> bool:
    """Unload the module if it still carries ``labels``; False when it was gone or is not ours."""
    if not owns_module(labels):
        return False
    kmodule.unload(MODULE, timeout=timeout, holders=lambda: nodes.holders(
        *(nodes.node_path(number) for label in labels for number in nodes.numbers_with_label(label))))
    return True
