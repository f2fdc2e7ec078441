"""Choosing KVM or TCG: QEMU's real answers to the probe, the override, and
the probe itself on this machine."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from simfarm.errors import BadInput
from simfarm.vm import accel, kvm

# Captured from qemu-system-x86_64 7.2 running accel.probe_command().
MSR_ABORT = ("qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n"
             "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: "
             "Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.\n")
NO_PERMISSION = ("Could not access KVM kernel module: Permission denied\n"
                 "qemu-system-x86_64: -accel kvm: failed to initialize kvm: Permission denied\n")
CPUID_WARNING = "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]\n"


def test_broken_hardware_virtualization_falls_back_to_tcg() -> None:
    chosen = accel.decide(-6, CPUID_WARNING + MSR_ABORT)
    assert chosen == accel.Accel("tcg", "KVM unusable: failed to set MSR 0x10a to 0x69")


def test_inaccessible_kvm_falls_back_with_qemus_reason() -> None:
    chosen = accel.decide(1, NO_PERMISSION)
    assert chosen == accel.Accel("tcg", "KVM unusable: Could not access KVM kernel module: Permission denied")


def test_clean_exit_means_kvm_even_with_warnings() -> None:
    assert accel.decide(0, CPUID_WARNING).name == "kvm"


def test_silent_failure_and_timeout_are_tcg() -> None:
    assert accel.decide(1, "") == accel.Accel("tcg", "KVM unusable: QEMU exited with 1")
    assert accel.decide(None, "") == accel.Accel("tcg", "KVM probe timed out")


def test_probe_resets_a_host_cpu_and_quits() -> None:
    command = accel.probe_command("qemu-system-x86_64")
    assert command[command.index("-cpu") + 1] == "host"  # what virtme-ng uses with KVM
    assert "-S" in command and command[-2:] == ["-monitor", "stdio"]


@pytest.mark.parametrize("value", ["kvm", "tcg", "TCG "])
def test_override_skips_the_probe(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(accel.ENV_OVERRIDE, value)
    chosen = accel.choose("/nonexistent/qemu")
    assert chosen.name == value.strip().lower()
    assert accel.ENV_OVERRIDE in chosen.reason


def test_bad_override_is_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(accel.ENV_OVERRIDE, "hvf")
    with pytest.raises(BadInput, match="SIMFARM_VM_ACCEL"):
        accel.choose("qemu-system-x86_64")


@pytest.mark.skipif(not (shutil.which("qemu-system-x86_64") and os.path.exists(accel.KVM_DEVICE)),
                    reason="needs qemu-system-x86_64 and /dev/kvm (sudo scripts/setup-vm.sh)")
def test_real_probe_is_quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(accel.ENV_OVERRIDE, raising=False)
    start = time.monotonic()
    chosen = accel.choose(shutil.which("qemu-system-x86_64") or "")
    assert time.monotonic() - start < 5
    assert chosen.name in ("kvm", "tcg") and chosen.reason


def test_a_device_that_cannot_be_opened_is_the_reason() -> None:
    assert kvm.probe("/nonexistent/kvm") == "cannot open /nonexistent/kvm: No such file or directory"


@pytest.mark.skipif(not (shutil.which("qemu-system-x86_64") and os.access(accel.KVM_DEVICE, os.R_OK | os.W_OK)),
                    reason="needs qemu-system-x86_64 and a usable /dev/kvm (sudo scripts/setup-vm.sh)")
def test_in_process_probe_reaches_qemus_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    # What `simfarm doctor` reports is what a VM launch will choose (here: TCG, the MSR refused).
    monkeypatch.delenv(accel.ENV_OVERRIDE, raising=False)
    by_qemu = accel.choose(shutil.which("qemu-system-x86_64"))
    in_process = accel.choose(None)
    assert in_process.name == by_qemu.name
    if "failed to set MSR" in by_qemu.reason:
        # The same MSR refused; QEMU writes only the bits it knows of the value KVM reports.
        assert in_process.reason.rsplit(" to ", 1)[0] == by_qemu.reason.rsplit(" to ", 1)[0], (in_process, by_qemu)
