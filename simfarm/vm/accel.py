"""Choosing QEMU's accelerator: KVM when it really works, else TCG.

/dev/kvm can exist and open fine while hardware virtualization is broken
(nested setups): QEMU then aborts as soon as it resets a vCPU with
``-cpu host`` ("failed to set MSR ..."). virtme-ng only checks that /dev/kvm
is accessible, so we probe with the CPU model it will use and tell it to use
TCG when the probe fails. The probe takes a few tens of milliseconds;
`simfarm doctor` asks KVM the same question in-process instead (vm.kvm),
in a millisecond.
"""

from __future__ import annotations

import os
import re
from typing import Literal, NamedTuple

from ..errors import BadInput
from . import kvm

ENV_OVERRIDE = "SIMFARM_VM_ACCEL"
KVM_DEVICE = "/dev/kvm"
PROBE_TIMEOUT = 10.0
# "qemu-system-x86_64: error: " in front of QEMU's messages.
_PROGRAM_PREFIX = re.compile(r"^qemu[^:\s]*: (error: )?")


class Accel(NamedTuple):
    """The accelerator to use and why it was chosen (one short phrase)."""

    name: Literal["kvm", "tcg"]
    reason: str


def probe_command(qemu: str) -> list[str]:
    """A QEMU run that creates and resets a KVM vCPU, then quits from the monitor."""
    # -S stops before the guest runs, but vCPU reset (where the MSR abort
    # happens) is already done; "quit" on stdin then ends it cleanly.
    return [qemu, "-accel", "kvm", "-cpu", "host", "-machine", "pc", "-nodefaults",
            "-no-user-config", "-display", "none", "-S", "-monitor", "stdio"]


def decide(returncode: int | None, stderr: str) -> Accel:
    """Interpret the probe: exit 0 means KVM works; anything else (or None for
    a timeout) means TCG, with QEMU's own first error line as the reason."""
    if returncode == 0:
        return Accel("kvm", "KVM probe passed")
    if returncode is None:
        return Accel("tcg", "KVM probe timed out")
    messages = [_PROGRAM_PREFIX.sub("", line).strip() for line in stderr.splitlines()
                if line.strip() and "warning:" not in line]
    return Accel("tcg", f"KVM unusable: {messages[0] if messages else f'QEMU exited with {returncode}'}")


def probe(qemu: str) -> Accel:
    """Run the probe against this machine's KVM."""
    import subprocess  # only here: `simfarm doctor` probes in-process
    try:
        done = subprocess.run(probe_command(qemu), check=False, input="quit\n", capture_output=True,
                              text=True, timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return decide(None, "")
    return decide(done.returncode, done.stderr)


def in_process() -> Accel:
    """The probe's verdict without running QEMU: KVM asked directly (vm.kvm)."""
    reason = kvm.probe(KVM_DEVICE)
    return Accel("kvm", "KVM probe passed") if reason is None else Accel("tcg", f"KVM unusable: {reason}")


def choose(qemu: str | None) -> Accel:
    """KVM or TCG for this machine; ``$SIMFARM_VM_ACCEL`` (kvm|tcg) overrides. The probe runs ``qemu``
    (what a VM launch trusts) or, when None, asks KVM in-process (what `simfarm doctor` reports)."""
    forced = os.environ.get(ENV_OVERRIDE, "").strip().lower()
    if forced:
        if forced not in ("kvm", "tcg"):
            raise BadInput(f"{ENV_OVERRIDE}={forced!r}: expected 'kvm' or 'tcg'")
        return Accel(forced, f"forced by {ENV_OVERRIDE}")  # type: ignore[arg-type]
    if not os.path.exists(KVM_DEVICE):
        return Accel("tcg", f"{KVM_DEVICE} does not exist")
    if not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        return Accel("tcg", f"no permission on {KVM_DEVICE} (join group kvm)")
    return probe(qemu) if qemu is not None else in_process()
