"""Stopping a VM whose guest never comes to life.

A guest that hangs at boot prints nothing and never exits (a stock kernel
under the PVM hypervisor stops after "Probing EDD"), so a VM run would wait
forever. The runner gives QEMU one more serial port, written to a file
(:func:`qemu_options`), and the kernel an early console on it: the kernel's
first line there is the first sign of life, the guest script's
:data:`MARKER` (written there too, or to stderr where that port is
missing) the second. Either one late, and the watchdog stops the whole VM
session. Once the guest script has started, silence is the command's
business, not the watchdog's.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

ENV = "SIMFARM_VM_BOOT_TIMEOUT"
# Seconds until the guest script starts. TCG boots the same kernel ~20x
# slower than KVM; both bounds leave a loaded host several times the usual.
DEFAULT_BOUND = {"kvm": 60.0, "tcg": 600.0}
# The kernel's first console line must come within this share of the bound.
FIRST_LINE_SHARE = 1 / 3
MARKER = b"simfarm-vm: guest script started"
# COM2 (0x2f8) is the extra port: COM1 is virtme-ng's console.
GUEST_PORT = "/dev/ttyS1"
KERNEL_OPTIONS = ("earlycon=uart8250,io,0x2f8,115200", "loglevel=6")
EXIT_CODE = 124  # as timeout(1)
_POLL_S = 0.2
_STOP_GRACE_S = 5.0


def qemu_options(console: Path) -> str:
    """The QEMU options (one string, as virtme-ng's --qemu-opts takes them) for the watched port."""
    return f"-chardev file,id=simfarm-watch,path={console} -serial chardev:simfarm-watch"


def requested_bound(value: float | None = None) -> float | None:
    """The bound asked for: ``value``, else ``$SIMFARM_VM_BOOT_TIMEOUT``, else None (the accelerator's
    default, :data:`DEFAULT_BOUND`). Raises ValueError for anything but a positive number of seconds."""
    if value is None and (text := os.environ.get(ENV, "").strip()):
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{ENV}={text!r}: expected seconds, e.g. 300") from None
    if value is not None and not value > 0:  # also refuses NaN
        raise ValueError(f"boot timeout {value:g}: must be more than 0 seconds")
    return value


class Watchdog:
    """Watches one VM session; :meth:`watch` runs on a thread of its own."""

    def __init__(self, console: Path, bound_s: float, accel: str) -> None:
        self._console = console
        self._bound = bound_s
        self._accel = accel
        self._started = threading.Event()
        self._tail = b""
        self.cause: str | None = None

    def saw_output(self, chunk: bytes) -> None:
        """Output the guest sent on stderr: the marker there (its fallback) counts as the script's start."""
        seen = self._tail + chunk
        if MARKER in seen:
            self._started.set()
        self._tail = seen[-len(MARKER):]

    def watch(self, group: int, ended: threading.Event) -> None:
        """Until ``ended`` (the session exited) or the guest script started: on a missed
        deadline, record the cause and stop process group ``group``."""
        start = time.monotonic()
        first_line_by = start + self._bound * FIRST_LINE_SHARE
        script_by = start + self._bound
        kernel_spoke = False
        while not ended.wait(_POLL_S):
            text = self._console_text()
            kernel_spoke = kernel_spoke or bool(text)
            if self._started.is_set() or MARKER in text:
                return
            now = time.monotonic()
            if not kernel_spoke and now > first_line_by:
                self._stop(group, ended, f"no kernel console line within {first_line_by - start:.3g} s")
                return
            if now > script_by:
                self._stop(group, ended, f"the kernel booted but the guest script did not start within "
                                         f"{self._bound:.3g} s")
                return

    def _console_text(self) -> bytes:
        try:
            return self._console.read_bytes()
        except OSError:
            return b""

    def _stop(self, group: int, ended: threading.Event, what: str) -> None:
        self.cause = (f"simfarm vm: the guest showed no sign of life ({what} under {self._accel}); "
                      f"stopped the VM. If this host's KVM cannot boot a stock kernel, set "
                      f"SIMFARM_VM_ACCEL=tcg; a slow host may need a longer --boot-timeout ({ENV})")
        # SIGTERM lets virtme-ng clean up; whatever of its session outlives the grace goes anyway.
        for signum, grace in ((signal.SIGTERM, _STOP_GRACE_S), (signal.SIGKILL, 0.0)):
            try:
                os.killpg(group, signum)
            except ProcessLookupError:
                return
            ended.wait(grace)
