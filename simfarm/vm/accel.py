"""Choosing QEMU's accelerator: KVM only when a guest has been seen to run, else TCG.

/dev/kvm can exist and answer every question while no stock kernel can run
on it: with broken nesting QEMU aborts at vCPU reset ("failed to set MSR
..."); under the PVM hypervisor (``kvm_pvm``, offered by nested clouds)
everything passes and the guest hangs silently after the real-mode setup.
virtme-ng only checks that /dev/kvm opens. So the cheap checks here only
rule KVM *out* (no device, no permission, PVM, the vCPU refusing its MSRs
in-process, see vm.kvm); ruling it *in* takes a boot of the VM's own kernel
that prints its first line (vm.boot_probe). That verdict is kept per host
boot, QEMU binary and kernel image (vm.verdicts), so the boot is paid once
per boot of the host; `simfarm doctor` reads the kept verdict and never
boots anything.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal, NamedTuple

from ..errors import BadInput
from . import kvm

ENV_OVERRIDE = "SIMFARM_VM_ACCEL"
KVM_DEVICE = "/dev/kvm"
PVM_MODULE = "/sys/module/kvm_pvm"
PVM_REASON = "KVM is PVM, which boots only PVM guest kernels: using TCG"
UNPROVEN = "not yet proven by a boot"
# "qemu-system-x86_64: error: " in front of QEMU's messages.
_PROGRAM_PREFIX = re.compile(r"^qemu[^:\s]*: (error: )?")


class Accel(NamedTuple):
    """The accelerator to use and why it was chosen (one short phrase)."""

    name: Literal["kvm", "tcg"]
    reason: str


def decide(banner: bool, returncode: int | None, stderr: str) -> Accel:
    """Interpret a boot probe: the kernel's banner means KVM runs guests; QEMU failing
    means TCG with QEMU's own first error line; neither in time (None) means TCG too."""
    if banner:
        return Accel("kvm", "KVM booted the guest kernel")
    if returncode is None:
        return Accel("tcg", "KVM did not boot the guest kernel: no console output in time (a hypervisor "
                            "that runs only its own guests, or broken nested virtualization)")
    messages = [_PROGRAM_PREFIX.sub("", line).strip() for line in stderr.splitlines()
                if line.strip() and "warning:" not in line]
    return Accel("tcg", f"KVM unusable: {messages[0] if messages else f'QEMU exited with {returncode}'}")


def override() -> Accel | None:
    """``$SIMFARM_VM_ACCEL`` (kvm|tcg) when set; any other value is bad input."""
    forced = os.environ.get(ENV_OVERRIDE, "").strip().lower()
    if not forced:
        return None
    if forced not in ("kvm", "tcg"):
        raise BadInput(f"{ENV_OVERRIDE}={forced!r}: expected 'kvm' or 'tcg'")
    return Accel(forced, f"forced by {ENV_OVERRIDE}")  # type: ignore[arg-type]


def ruled_out() -> Accel | None:
    """TCG with the reason when a check that starts no VM already rules KVM out; None when
    only a boot can tell (a millisecond: /dev/kvm, the PVM module, a vCPU's MSRs asked in-process)."""
    if not os.path.exists(KVM_DEVICE):
        return Accel("tcg", f"{KVM_DEVICE} does not exist")
    if not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        return Accel("tcg", f"no permission on {KVM_DEVICE} (join group kvm)")
    if os.path.isdir(PVM_MODULE):
        return Accel("tcg", PVM_REASON)
    reason = kvm.probe(KVM_DEVICE)
    return None if reason is None else Accel("tcg", f"KVM unusable: {reason}")


def choose(qemu: str, image: Path) -> Accel:
    """KVM or TCG for booting ``image`` with ``qemu`` here: the override, else what rules
    KVM out, else the kept verdict of this host boot, else a boot probe (kept for next time)."""
    from . import boot_probe, verdicts  # only a VM launch gets this far
    if (chosen := override() or ruled_out()) is not None:
        return chosen
    key = verdicts.key(qemu, image)
    if (kept := verdicts.load(key)) is not None:
        return Accel(kept[0], f"{kept[1]} (kept from an earlier boot probe)")  # type: ignore[arg-type]
    outcome = boot_probe.run(boot_probe.command(qemu, image))
    chosen = decide(*outcome)
    verdicts.store(key, chosen.name, chosen.reason)
    return chosen


def report(qemu: str | None, image: Path | None) -> Accel:
    """What a VM launch would choose, without booting anything (for `simfarm doctor`):
    the override, what rules KVM out, the kept verdict, or KVM "not yet proven by a boot"."""
    if (chosen := override() or ruled_out()) is not None:
        return chosen
    if qemu is not None and image is not None:
        from . import verdicts
        if (kept := verdicts.load(verdicts.key(qemu, image))) is not None:
            return Accel(kept[0], f"{kept[1]} (boot probe of this host boot)")  # type: ignore[arg-type]
    return Accel("kvm", f"the in-process checks pass; {UNPROVEN} (the first `simfarm vm` boots "
                        f"the kernel to prove it, and falls back to TCG if it stays silent)")
