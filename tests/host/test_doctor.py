"""`simfarm doctor`: the report's shape, its fixes, and its verdict."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from simfarm import doctor
from simfarm.cli import main
from simfarm.vm import accel, kernel

NAMES = {"host.modules", "host.v4l2loopback", "host.control_device", "vm.qemu", "vm.vng", "vm.kernel",
         "vm.accel", "ffmpeg", "mediamtx", "vivid", "usb-webcams"}


def fake_mediamtx(tmp_path: Path, output: str) -> Path:
    path = tmp_path / "mediamtx"
    path.write_text(f"#!/bin/sh\necho {output}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_json_report_shape_and_fixes(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"ok", "host_ready", "vm_ready", "checks"}
    assert code == (0 if report["ok"] else 1)
    assert report["ok"] == (report["host_ready"] or report["vm_ready"])
    checks = report["checks"]
    assert NAMES <= {c["name"] for c in checks}
    for check in checks:
        assert set(check) == {"name", "group", "ok", "detail", "fix"}
        assert check["group"] in ("host", "vm", "tools") and check["detail"]
        assert (check["fix"] is None) == check["ok"], check  # every failure says how to fix it
    for group in ("host", "vm"):
        assert report[f"{group}_ready"] == all(c["ok"] for c in checks if c["group"] == group)


def test_host_verdict_matches_host_can_run_cameras() -> None:
    assert doctor.Report(doctor.host_checks()).ready("host") == doctor.host_can_run_cameras()


def test_without_qemu_and_vng_the_vm_is_not_ready(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    checks = {c.name: c for c in doctor.vm_checks()}
    for name in ("vm.qemu", "vm.vng", "vm.accel"):
        assert not checks[name].ok and checks[name].fix == kernel.SETUP_REMEDY
    assert not doctor.Report(list(checks.values())).ready("vm")


def test_nothing_ready_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    code = main(["doctor"])
    out = capsys.readouterr().out
    if doctor.host_can_run_cameras():
        assert code == 0 and "on this kernel" in out
    else:
        assert code == 1 and "cannot run here" in out and "sudo scripts/setup-vm.sh" in out


def test_mediamtx_version_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMFARM_MEDIAMTX", str(fake_mediamtx(tmp_path, "v1.20.1")))
    (check,) = [c for c in doctor.tool_checks() if c.name == "mediamtx"]
    assert check.ok and check.detail.startswith("mediamtx v1.20.1")


def test_a_mediamtx_too_old_fails_its_check_naming_the_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMFARM_MEDIAMTX", str(fake_mediamtx(tmp_path, "v1.18.0")))
    (check,) = [c for c in doctor.tool_checks() if c.name == "mediamtx"]
    assert not check.ok and "too old: simfarm supports 1.19.x to 1.20.x" in check.detail


def test_missing_mediamtx_says_where_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMFARM_MEDIAMTX", "/nonexistent/mediamtx")
    (check,) = [c for c in doctor.tool_checks() if c.name == "mediamtx"]
    assert not check.ok and "SIMFARM_MEDIAMTX" in (check.fix or "")
    assert "(fix:" not in check.detail  # the fix is its own field


def test_bad_accel_override_is_a_failed_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(accel.ENV_OVERRIDE, "hvf")
    (check,) = [c for c in doctor.vm_checks() if c.name == "vm.accel"]
    if os.path.exists("/usr/bin/qemu-system-x86_64"):
        assert not check.ok and check.fix == f"unset {accel.ENV_OVERRIDE}"


def test_guest_kernel_checks_read_its_module_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  bzimage: Callable[[Path, str], Path],
                                                  elf_module: Callable[..., bytes]) -> None:
    # A kernel whose v4l2loopback is too old and which lacks uvcvideo: what this host's kernel cannot show.
    release = "6.1.0-99-amd64"
    (tmp_path / "boot").mkdir()
    bzimage(tmp_path / "boot" / f"vmlinuz-{release}", f"{release} #1 SMP")
    tree = tmp_path / "modules" / release
    for path, fields in {"updates/dkms/v4l2loopback.ko": ["version=0.12.7"], "drivers/vivid.ko": [],
                         "drivers/usbip/vhci-hcd.ko": []}.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_bytes(elf_module(*fields))
    (tree / "modules.dep").write_text("updates/dkms/v4l2loopback.ko:\ndrivers/vivid.ko:\ndrivers/usbip/vhci-hcd.ko:\n")
    monkeypatch.setattr(kernel, "BOOT_DIR", tmp_path / "boot")
    monkeypatch.setattr(kernel, "MODULES_DIR", tmp_path / "modules")
    checks = {c.name: c for c in doctor.vm_checks()}
    assert checks["vm.kernel"].ok and checks["vm.kernel"].detail.startswith(release)
    assert checks["vm.v4l2loopback"] == doctor.Check(
        "vm.v4l2loopback", "vm", False, f"v4l2loopback 0.12.7 (need >= 0.13) built for {release}", kernel.SETUP_REMEDY)
    assert checks["vivid"].ok
    assert checks["usb-webcams"] == doctor.Check(
        "usb-webcams", "tools", False, f"{release} lacks module(s) uvcvideo (--backend uvc)",
        "a distribution kernel (linux-image-amd64) has them")


@pytest.mark.parametrize(("info", "shown"), [
    ("lib/python3.11/site-packages/virtme_ng-1.42.dist-info", "virtme-ng 1.42"),  # pip, pipx, pyenv
    ("lib/python3/dist-packages/virtme_ng-1.30-py3.11.egg-info", "virtme-ng 1.30"),  # a distribution's package
    ("lib/python3.11/site-packages/virtme_other-1.0.dist-info", "virtme-ng (version not found beside it)"),
])
def test_virtme_ng_version_is_read_beside_its_script(tmp_path: Path, info: str, shown: str) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "vng").write_text("#!/bin/sh\nexit 1\n")  # never run
    (tmp_path / info).mkdir(parents=True)
    assert doctor._virtme_ng_version(str(tmp_path / "bin" / "vng")) == shown


@pytest.mark.skipif(not shutil.which("vng"), reason="needs virtme-ng (sudo scripts/setup-vm.sh)")
def test_virtme_ng_version_is_what_vng_prints() -> None:
    vng = shutil.which("vng") or ""
    printed = subprocess.run([vng, "--version"], capture_output=True, text=True, check=True, timeout=60).stdout
    assert doctor._virtme_ng_version(vng) == printed.strip()
