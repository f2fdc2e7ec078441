"""Choosing KVM or TCG: each boot-probe outcome, what rules KVM out without a boot,
the kept verdicts, the override, and the probe itself against stand-ins for QEMU."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from simfarm.errors import BadInput, EnvironmentProblem
from simfarm.vm import accel, boot_probe, kernel, kvm, verdicts

# Captured from qemu-system-x86_64 7.2 booting a kernel with -accel kvm -cpu host on a
# host with broken nesting.
MSR_ABORT = ("qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n"
             "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: "
             "Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.\n")
CPUID_WARNING = "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]\n"
# What a stock kernel's console starts with.
BANNER = "Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC\n"


def test_the_kernel_banner_means_kvm() -> None:
    assert accel.decide(True, None, CPUID_WARNING).name == "kvm"


def test_a_qemu_error_is_tcg_with_qemus_reason() -> None:
    assert accel.decide(False, -6, CPUID_WARNING + MSR_ABORT) == accel.Accel(
        "tcg", "KVM unusable: failed to set MSR 0x10a to 0x69")
    assert accel.decide(False, 1, "") == accel.Accel("tcg", "KVM unusable: QEMU exited with 1")


def test_silence_is_tcg() -> None:
    chosen = accel.decide(False, None, "")
    assert chosen.name == "tcg" and "no console output in time" in chosen.reason


@pytest.fixture
def fake_qemu(tmp_path: Path) -> Callable[[str], list[str]]:
    """A stand-in for the probe's QEMU: a script that does ``body`` and records its pid."""
    def make(body: str) -> list[str]:
        script = tmp_path / "qemu"
        script.write_text(f"#!/bin/sh\necho $$ > {tmp_path / 'pid'}\n{textwrap.dedent(body)}")
        script.chmod(0o755)
        return [str(script)]
    return make


def _gone(pid_file: Path) -> bool:
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_probe_sees_the_banner_and_stops_the_guest(fake_qemu: Callable[[str], list[str]], tmp_path: Path) -> None:
    argv = fake_qemu(f"printf 'early\\n{BANNER}'\nexec sleep 300\n")
    outcome = boot_probe.run(argv, timeout=30)
    assert outcome.banner and outcome.returncode is None
    assert _gone(tmp_path / "pid")


def test_probe_gives_up_on_a_silent_guest_within_its_bound(fake_qemu: Callable[[str], list[str]],
                                                          tmp_path: Path) -> None:
    argv = fake_qemu("echo 'Probing EDD (edd=off to disable)... ok' >&2\nexec sleep 300\n")
    start = time.monotonic()
    outcome = boot_probe.run(argv, timeout=1.0)
    assert time.monotonic() - start < 10
    assert outcome == boot_probe.Outcome(False, None, "Probing EDD (edd=off to disable)... ok\n")
    assert accel.decide(*outcome).name == "tcg"
    assert _gone(tmp_path / "pid")


def test_probe_reports_qemu_failing(fake_qemu: Callable[[str], list[str]], tmp_path: Path) -> None:
    (tmp_path / "said").write_text(MSR_ABORT)
    outcome = boot_probe.run(fake_qemu(f"cat {tmp_path / 'said'} >&2\nexit 134\n"), timeout=30)
    assert outcome == boot_probe.Outcome(False, 134, MSR_ABORT)


def test_an_interrupted_probe_leaves_no_qemu(fake_qemu: Callable[[str], list[str]], tmp_path: Path) -> None:
    argv = fake_qemu("echo ready\nexec sleep 300\n")
    code = f"from simfarm.vm import boot_probe; boot_probe.run({argv!r}, timeout=300)"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    pid_file = tmp_path / "pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the stand-in never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert b"KeyboardInterrupt" in err
    assert _gone(pid_file)


def test_probe_boots_the_kernel_with_a_serial_console_under_kvm() -> None:
    argv = boot_probe.command("qemu-system-x86_64", Path("/boot/vmlinuz-x"))
    assert argv[argv.index("-accel") + 1] == "kvm"
    assert argv[argv.index("-cpu") + 1] == "host"  # what virtme-ng uses with KVM
    assert argv[argv.index("-kernel") + 1] == "/boot/vmlinuz-x"
    assert "console=ttyS0" in argv[argv.index("-append") + 1].split()
    assert argv[argv.index("-serial") + 1] == "stdio"


@pytest.fixture
def usable_kvm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A /dev/kvm that passes the checks that start no VM; returns where the PVM module would be."""
    device = tmp_path / "kvm"
    device.touch()
    monkeypatch.setattr(accel, "KVM_DEVICE", str(device))
    monkeypatch.setattr(accel, "PVM_MODULE", str(tmp_path / "module" / "kvm_pvm"))
    monkeypatch.setattr(kvm, "probe", lambda device: None)
    monkeypatch.delenv(accel.ENV_OVERRIDE, raising=False)
    return tmp_path / "module" / "kvm_pvm"


def test_pvm_is_recognised_without_a_boot(usable_kvm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    usable_kvm.mkdir(parents=True)
    monkeypatch.setattr(boot_probe, "run", _no_boot)
    assert accel.choose("qemu", Path("/boot/vmlinuz-x")) == accel.Accel("tcg", accel.PVM_REASON)
    assert accel.PVM_REASON == "KVM is PVM, which boots only PVM guest kernels: using TCG"


def test_a_missing_device_rules_kvm_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel, "KVM_DEVICE", str(tmp_path / "kvm"))
    monkeypatch.delenv(accel.ENV_OVERRIDE, raising=False)
    assert accel.ruled_out() == accel.Accel("tcg", f"{tmp_path / 'kvm'} does not exist")


def _no_boot(*args: object, **kwargs: object) -> boot_probe.Outcome:
    raise AssertionError("booted a probe where none was needed")


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, usable_kvm: Path) -> dict[str, Path]:
    """A cache directory, a boot id, a QEMU binary and a kernel image of this test's own."""
    monkeypatch.setenv("SIMFARM_CACHE_DIR", str(tmp_path / "cache"))
    boot = tmp_path / "boot_id"
    boot.write_text("boot-1\n")
    monkeypatch.setattr(verdicts, "BOOT_ID", boot)
    qemu, image = tmp_path / "qemu-system-x86_64", tmp_path / "vmlinuz"
    qemu.write_text("qemu")
    image.write_text("kernel")
    return {"boot": boot, "qemu": qemu, "image": image}


def _probe_returning(outcome: boot_probe.Outcome, calls: list[int]) -> Callable[..., boot_probe.Outcome]:
    def run(argv: list[str], timeout: float = boot_probe.TIMEOUT) -> boot_probe.Outcome:
        calls.append(1)
        return outcome
    return run


def test_a_verdict_is_probed_once_per_host_boot(host: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(boot_probe, "run", _probe_returning(boot_probe.Outcome(True, None, ""), calls))
    first = accel.choose(str(host["qemu"]), host["image"])
    again = accel.choose(str(host["qemu"]), host["image"])
    assert (first.name, again.name, len(calls)) == ("kvm", "kvm", 1)
    assert "kept" in again.reason
    assert accel.report(str(host["qemu"]), host["image"]).name == "kvm"


@pytest.mark.parametrize("change", ["boot", "qemu", "image"])
def test_a_verdict_of_another_boot_qemu_or_kernel_is_ignored(host: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                                            change: str) -> None:
    calls: list[int] = []
    monkeypatch.setattr(boot_probe, "run", _probe_returning(boot_probe.Outcome(False, None, ""), calls))
    assert accel.choose(str(host["qemu"]), host["image"]).name == "tcg"
    host[change].write_text("boot-2\n" if change == "boot" else "upgraded, a different size")
    monkeypatch.setattr(boot_probe, "run", _probe_returning(boot_probe.Outcome(True, None, ""), calls))
    assert accel.choose(str(host["qemu"]), host["image"]).name == "kvm"
    assert len(calls) == 2


def test_a_new_boot_drops_the_verdicts_of_earlier_ones(host: dict[str, Path]) -> None:
    old = verdicts.key(str(host["qemu"]), host["image"])
    verdicts.store(old, "tcg", "silent")
    host["boot"].write_text("boot-2\n")
    new = verdicts.key(str(host["qemu"]), host["image"])
    verdicts.store(new, "kvm", "booted")
    assert verdicts.load(old) is None and verdicts.load(new) == ("kvm", "booted")


def test_a_corrupt_cache_means_probing_again(host: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    (host["boot"].parent / "cache").mkdir()
    (host["boot"].parent / "cache" / verdicts.FILE_NAME).write_text("{not json")
    calls: list[int] = []
    monkeypatch.setattr(boot_probe, "run", _probe_returning(boot_probe.Outcome(True, None, ""), calls))
    assert accel.choose(str(host["qemu"]), host["image"]).name == "kvm" and calls == [1]


def test_doctor_says_kvm_is_not_yet_proven(host: dict[str, Path]) -> None:
    chosen = accel.report(str(host["qemu"]), host["image"])
    assert chosen.name == "kvm" and accel.UNPROVEN in chosen.reason


@pytest.mark.parametrize("value", ["kvm", "tcg", "TCG "])
def test_override_skips_the_probe(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(accel.ENV_OVERRIDE, value)
    monkeypatch.setattr(boot_probe, "run", _no_boot)
    chosen = accel.choose("/nonexistent/qemu", Path("/nonexistent/vmlinuz"))
    assert chosen.name == value.strip().lower()
    assert accel.ENV_OVERRIDE in chosen.reason


def test_bad_override_is_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(accel.ENV_OVERRIDE, "hvf")
    with pytest.raises(BadInput, match="SIMFARM_VM_ACCEL"):
        accel.choose("qemu-system-x86_64", Path("/boot/vmlinuz"))


def test_a_device_that_cannot_be_opened_is_the_reason() -> None:
    assert kvm.probe("/nonexistent/kvm") == "cannot open /nonexistent/kvm: No such file or directory"


def _bootable() -> kernel.GuestKernel | None:
    try:
        return kernel.find()
    except EnvironmentProblem:
        return None


@pytest.mark.skipif(not (shutil.which("qemu-system-x86_64") and os.access(accel.KVM_DEVICE, os.R_OK | os.W_OK)
                         and _bootable() is not None),
                    reason="needs qemu-system-x86_64, a usable /dev/kvm and the VM kernel (sudo scripts/setup-vm.sh)")
def test_in_process_probe_reaches_the_boot_probes_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    # Where the in-process check refuses KVM, a real boot must fail the same way (this host: the MSR refused).
    reason = kvm.probe(accel.KVM_DEVICE)
    if reason is None:
        pytest.skip("KVM passes the in-process check here: only a boot can tell")
    guest = _bootable()
    assert guest is not None
    booted = accel.decide(*boot_probe.run(boot_probe.command(shutil.which("qemu-system-x86_64") or "", guest.image)))
    assert booted.name == "tcg"
    if "failed to set MSR" in booted.reason:
        # The same MSR refused; QEMU writes only the bits it knows of the value KVM reports.
        assert reason.rsplit(" to ", 1)[0] == booted.reason.removeprefix("KVM unusable: ").rsplit(" to ", 1)[0]
