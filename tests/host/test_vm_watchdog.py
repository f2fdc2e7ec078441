"""The watchdog on every VM run: a guest that never shows a sign of life is stopped within
the bound, with one line naming the cause, and leaves no process behind."""

from __future__ import annotations

import os
import runpy
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from simfarm.errors import BadInput
from simfarm.vm import runner, watchdog
from simfarm.vm.watchdog import Watchdog

KERNEL_LINE = "[    0.087180] Kernel command line: console=ttyS0\n"


def _stand_in(tmp_path: Path, body: str) -> list[str]:
    """A stand-in for vng (and the QEMU it runs): records its pid, then does ``body``."""
    script = tmp_path / "vng"
    script.write_text(f"#!/bin/sh\necho $$ > {tmp_path / 'pid'}\n{textwrap.dedent(body)}")
    script.chmod(0o755)
    return [str(script)]


def _left_behind(tmp_path: Path) -> bool:
    try:
        os.kill(int((tmp_path / "pid").read_text()), 0)
    except ProcessLookupError:
        return False
    return True


def _relay(argv: list[str], dog: Watchdog) -> tuple[int, float]:
    start = time.monotonic()
    code = runner._run_relayed(argv, os.environ, dog)
    return code, time.monotonic() - start


def test_a_silent_guest_is_stopped_within_the_bound(tmp_path: Path) -> None:
    dog = Watchdog(tmp_path / "console", 1.5, "kvm")
    code, took = _relay(_stand_in(tmp_path, "exec sleep 300\n"), dog)
    assert took < 1.5 + 15  # the bound, the stop's grace, a loaded machine
    assert code != 0 and not _left_behind(tmp_path)
    assert dog.cause is not None and "\n" not in dog.cause
    assert "no kernel console line within 0.5 s under kvm" in dog.cause and "SIMFARM_VM_ACCEL=tcg" in dog.cause


def test_a_guest_whose_script_never_starts_is_stopped(tmp_path: Path) -> None:
    console = tmp_path / "console"
    dog = Watchdog(console, 2.0, "tcg")
    code, _ = _relay(_stand_in(tmp_path, f"printf '{KERNEL_LINE}' > {console}\nexec sleep 300\n"), dog)
    assert dog.cause is not None and "the kernel booted but the guest script did not start within 2 s" in dog.cause
    assert not _left_behind(tmp_path)


@pytest.mark.parametrize("where", ["port", "stderr"])
def test_a_started_guest_may_be_silent_past_the_bound(tmp_path: Path, where: str) -> None:
    console = tmp_path / "console"
    marker = watchdog.MARKER.decode()
    announce = f"echo '{marker}' >> {console}" if where == "port" else f"echo '{marker}' >&2"
    dog = Watchdog(console, 1.0, "kvm")
    body = f"printf '{KERNEL_LINE}' > {console}\n{announce}\nsleep 2\nexit 7\n"
    code, took = _relay(_stand_in(tmp_path, body), dog)
    assert (code, dog.cause) == (7, None) and took >= 2


def test_the_guest_script_announces_what_the_watchdog_awaits() -> None:
    guest = runpy.run_path(str(runner.GUEST_SCRIPT))
    assert guest["STARTED"] == watchdog.MARKER + b"\n"
    assert guest["WATCHED_PORT"] == "/dev/ttyS1"  # COM2, where the kernel's early console is sent
    assert "earlycon=uart8250,io,0x2f8,115200" in watchdog.KERNEL_OPTIONS


def test_bound_comes_from_the_option_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(watchdog.ENV, raising=False)
    assert watchdog.requested_bound(None) is None
    monkeypatch.setenv(watchdog.ENV, "90")
    assert watchdog.requested_bound(None) == 90 and watchdog.requested_bound(5) == 5
    assert watchdog.DEFAULT_BOUND["tcg"] > watchdog.DEFAULT_BOUND["kvm"]


@pytest.mark.parametrize("value, env", [(0.0, ""), (-3.0, ""), (float("nan"), ""), (None, "soon")])
def test_a_bad_bound_is_bad_input_before_anything_starts(monkeypatch: pytest.MonkeyPatch, value: float | None,
                                                        env: str) -> None:
    monkeypatch.setenv(watchdog.ENV, env)
    monkeypatch.setattr(runner, "_require_vng", lambda: pytest.fail("got as far as virtme-ng"))
    with pytest.raises(BadInput, match="boot timeout|SIMFARM_VM_BOOT_TIMEOUT"):
        runner.run_in_vm(["true"], boot_timeout=value)


def test_simfarm_vm_stops_a_qemu_that_never_prints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    """The whole launch, with a stand-in for vng and QEMU that never prints a byte."""
    vng = _stand_in(tmp_path, "exec sleep 300\n")[0]
    monkeypatch.setenv("SIMFARM_VM_ACCEL", "kvm")  # what a PVM host looked like before the boot probe
    monkeypatch.setattr(runner, "_require_vng", lambda: vng)
    monkeypatch.setattr(runner.binaries, "require", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(runner.kernel_mod, "find", lambda image: SimpleNamespace(
        version="6.1.0-99-amd64", image=tmp_path / "vmlinuz", loopback_version="0.15.0"))
    monkeypatch.setattr(runner.images, "guest_images", lambda: [])
    monkeypatch.setattr(runner, "_host_mediamtx", lambda: None)
    monkeypatch.chdir(tmp_path)
    start = time.monotonic()
    code = runner.run_in_vm(["true"], boot_timeout=1.5)
    assert time.monotonic() - start < 1.5 + 15
    assert code == watchdog.EXIT_CODE == 124
    assert not _left_behind(tmp_path)
    said = capfd.readouterr().err.splitlines()
    assert said[0].startswith("simfarm vm: kernel 6.1.0-99-amd64, accel kvm (forced by SIMFARM_VM_ACCEL)")
    assert said[-1].startswith("simfarm vm: the guest showed no sign of life (no kernel console line")
