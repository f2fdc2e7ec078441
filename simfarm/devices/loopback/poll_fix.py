"""Whether a v4l2loopback module answers a capture opener's poll() correctly (docs/v4l2loopback-poll.md).

From 0.14.0 (to at least 0.15.4) v4l2loopback reports a waiting frame as
POLLIN | POLLWRNORM, so select() sees a capture node writable and readers
such as µStreamer give up on it. scripts/setup-vm.sh patches the DKMS source
and records, per kernel, the srcversion of the module it built from it. That
record is the only thing that tells a fixed build from an affected one
without loading the module and streaming through it: both carry the same
version. Nothing here opens a device.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

AFFECTED_FROM = (0, 14)
NEWEST_KNOWN_AFFECTED = (0, 15, 4)
MARKERS = Path("/opt/simfarm/v4l2loopback-poll-fix")
PATCH = "scripts/patches/v4l2loopback-poll-rdnorm.patch"
SYMPTOM = ("select() sees its capture nodes writable, so select()-based readers such as µStreamer "
           "take a frame for a disconnect (\"Got unexpected writing event\")")


class Verdict(NamedTuple):
    """``ok`` False: select()-based readers misbehave on this module; ``detail`` says why we think so."""

    ok: bool
    detail: str


def recorded_srcversion(release: str, markers: Path = MARKERS) -> str | None:
    """The srcversion scripts/setup-vm.sh recorded for its patched build for kernel ``release``."""
    try:
        return (markers / release).read_text().strip() or None
    except OSError:
        return None


def verdict(version: tuple[int, ...], srcversion: str | None, recorded: str | None) -> Verdict:
    """Judge a module by its ``version`` and ``srcversion`` against the build ``recorded`` as patched."""
    text = ".".join(map(str, version))
    if version < AFFECTED_FROM:
        return Verdict(True, f"v4l2loopback {text} answers readers with POLLIN | POLLRDNORM (the bug came in 0.14)")
    if srcversion is not None and srcversion == recorded:
        return Verdict(True, f"v4l2loopback {text} built with simfarm's poll fix (srcversion {srcversion})")
    maybe = "may answer" if version > NEWEST_KNOWN_AFFECTED else "answers"
    return Verdict(False, f"v4l2loopback {text}, not built by scripts/setup-vm.sh with the poll fix, {maybe} "
                          f"readers' poll() with POLLIN | POLLWRNORM: {SYMPTOM}")


def host_remedy(release: str) -> str:
    """How to fix the module loaded on this machine's kernel ``release`` (docs/v4l2loopback-poll.md)."""
    return (f"apply {PATCH} to /usr/src/v4l2loopback-VERSION, sudo dkms build --force v4l2loopback/VERSION "
            f"-k {release} && sudo dkms install --force v4l2loopback/VERSION -k {release}, reload the module, "
            f"and record it: modinfo -F srcversion v4l2loopback | sudo tee {MARKERS}/{release}")
