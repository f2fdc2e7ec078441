"""Proving KVM by booting: the guest kernel must print its first line.

Every in-process check can pass while a stock kernel never runs: under the
PVM hypervisor (nested clouds) /dev/kvm works, QEMU's ``-cpu host`` starts,
and the guest hangs silently after the real-mode setup. Only the kernel's
own words show it runs, so the probe boots the VM's kernel under KVM with a
serial console and waits, bounded, for its first line; it needs no root
filesystem (the kernel is stopped long before it would look for one).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

# A working KVM prints the banner within a second; 20 s also covers a
# machine busy with other VMs without letting a silent guest cost much.
TIMEOUT = 20.0
BANNER = b"Linux version "


class Outcome(NamedTuple):
    """What the probe saw: the banner, or QEMU's exit code and error output (None: neither in time)."""

    banner: bool
    returncode: int | None
    stderr: str


def command(qemu: str, image: Path) -> list[str]:
    """A KVM boot of ``image`` with its console on QEMU's stdout, as virtme-ng's CPU model would run it."""
    return [qemu, "-accel", "kvm", "-cpu", "host", "-machine", "pc", "-m", "256M", "-nodefaults",
            "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
            "-kernel", str(image), "-append", "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1"]


def run(argv: Sequence[str], timeout: float = TIMEOUT) -> Outcome:
    """Run ``argv`` until its stdout carries the kernel banner, it exits, or ``timeout`` passes;
    QEMU is stopped in every case, an interrupt (Ctrl-C) included."""
    proc: subprocess.Popen | None = None
    errors: list[bytes] = []
    seen: bool | None = None
    returncode: int | None = None
    try:
        with _interrupt_deferred():
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        assert proc.stdout is not None and proc.stderr is not None
        stderr = proc.stderr
        # stderr drains on its own thread so a chatty QEMU cannot block on a full pipe.
        drain = threading.Thread(target=lambda: errors.append(stderr.read()), daemon=True)
        drain.start()
        seen = _await_banner(proc.stdout.fileno(), timeout)
        if seen is False:  # QEMU closed its output: it is exiting on its own
            returncode = proc.wait()
    finally:
        if proc is not None:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]
    drain.join(timeout=5)
    return Outcome(bool(seen), returncode, b"".join(errors).decode(errors="replace"))


@contextlib.contextmanager
def _interrupt_deferred() -> Iterator[None]:
    """Holds a Ctrl-C that comes while QEMU is being started until Popen has returned: raised
    inside Popen, after the fork, it would leave a QEMU that nothing knows of."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    saved = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved)
    if pending:
        raise KeyboardInterrupt


def _await_banner(fd: int, timeout: float) -> bool | None:
    """True once the banner is read, False when the output ends without it, None at the timeout."""
    seen = b""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return False
        # Keep a banner's worth of the tail: the banner may straddle two reads.
        seen = seen[-len(BANNER):] + chunk
        if BANNER in seen:
            return True
    return None
