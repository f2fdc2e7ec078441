"""`simfarm doctor`: can the farm run here, on this kernel or in the VM?

Each check says what it found and, when it fails, the one command that fixes
it. The farm can run when every host check passes (cameras on this kernel)
or every VM check passes (`simfarm vm -- COMMAND`); tool checks (FFmpeg,
MediaMTX) are reported but only some features need them.

It answers from files and one in-process KVM probe: programs are found on
PATH, kernel modules in /lib/modules (devices.kmod.modinfo), and the versions it
shows are asked of each binary once and then read back (program_versions).
It imports nothing it does not use: no dataclasses, no subprocess until a
version must be asked, no VM runner, no MediaMTX client.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from . import binaries, program_versions
from .devices.kmod import kmodule, modinfo
from .devices.loopback import poll_fix
from .devices.loopback.module import CONTROL_DEVICE, module_srcversion, module_version
from .errors import BadInput, EnvironmentProblem
from .publishers.mediamtx import binary as mediamtx
from .publishers.mediamtx import versions as mediamtx_versions
from .vm import accel, kernel

Group = Literal["host", "vm", "tools"]
RUN_IN_VM = "simfarm vm -- COMMAND"
# As for MediaMTX's: under TCG on a loaded host QEMU and FFmpeg take more than 10 s to start, and
# a program that answers late still works; the answer is kept (program_versions), so it is paid once.
VERSION_TIMEOUT = 60.0
# virtme_ng-1.42.dist-info (pip), virtme_ng-1.42.egg-info or virtme_ng-1.42-py3.11.egg-info (distributions).
_VIRTME_NG_INFO = re.compile(r"virtme_ng-([^-]+?)(?:-py[\d.]+)?\.(?:dist|egg)-info")


class Check(NamedTuple):
    """One finding; ``fix`` is the command that repairs it (None when ok)."""

    name: str
    group: Group
    ok: bool
    detail: str
    fix: str | None = None


class Report:
    """All findings, and whether each group (host, vm) is ready as a whole."""

    def __init__(self, checks: list[Check]) -> None:
        self.checks = checks

    def ready(self, group: Group) -> bool:
        return all(c.ok for c in self.checks if c.group == group)

    @property
    def ok(self) -> bool:
        """The farm can run somewhere: on this kernel or in the VM."""
        return self.ready("host") or self.ready("vm")

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "host_ready": self.ready("host"), "vm_ready": self.ready("vm"),
                "checks": [c._asdict() for c in self.checks]}


def _version_line(argv: Sequence[str]) -> str:
    """First line a program prints about its version (raises OSError, a timeout included)."""
    done = program_versions.run(argv, timeout=VERSION_TIMEOUT)
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def _message(exc: EnvironmentProblem) -> str:
    # EnvironmentProblem folds its remedy into the message; a check shows it apart.
    return str(exc).removesuffix(f" (fix: {exc.remedy})")


def host_can_run_cameras() -> bool:
    """True when THIS kernel has v4l2loopback >= 0.13 loaded and its control
    device is usable by us; else cameras need the VM (`simfarm vm`)."""
    version = module_version()
    return (version is not None and version >= kernel.MIN_LOOPBACK
            and os.access(CONTROL_DEVICE, os.R_OK | os.W_OK))


def _loadable_here(release: str) -> bool:
    """Is a v4l2loopback >= 0.13 installed for the running kernel?"""
    try:
        version = kernel.loopback_version(release)
    except EnvironmentProblem:
        return False
    return version is not None and kernel.parse_version(version) >= kernel.MIN_LOOPBACK


def host_checks() -> list[Check]:
    release = os.uname().release
    modules_ok = os.path.exists("/proc/modules")
    checks = [Check("host.modules", "host", modules_ok,
                    f"kernel {release} {'can' if modules_ok else 'cannot'} load modules",
                    None if modules_ok else RUN_IN_VM)]
    version = module_version()
    text = ".".join(map(str, version or ()))
    if version is not None and version >= kernel.MIN_LOOPBACK:
        checks.append(Check("host.v4l2loopback", "host", True, f"{text} loaded"))
    elif version is not None:
        checks.append(Check("host.v4l2loopback", "host", False,
                            f"{text} loaded: too old, no control device before 0.13", RUN_IN_VM))
    else:
        loadable = modules_ok and _loadable_here(release)
        legacy = modules_ok and not loadable and kmodule.installed_version("v4l2loopback") is not None
        detail = ("not loaded; the installed one is older than 0.13: farms can load it with their cameras "
                  "(one farm at a time, no hotplug), hotplug and the kernel tests need >= 0.13") if legacy else "not loaded"
        checks.append(Check("host.v4l2loopback", "host", False, detail,
                            "sudo modprobe v4l2loopback devices=0" if loadable else RUN_IN_VM))
    if not os.path.exists(CONTROL_DEVICE):
        checks.append(Check("host.control_device", "host", False, f"{CONTROL_DEVICE} missing",
                            checks[-1].fix or RUN_IN_VM))
    elif not os.access(CONTROL_DEVICE, os.R_OK | os.W_OK):
        checks.append(Check("host.control_device", "host", False, f"no read/write permission on {CONTROL_DEVICE}",
                            "sudo simfarm udev install (then join group video)"))
    else:
        checks.append(Check("host.control_device", "host", True, f"{CONTROL_DEVICE} usable"))
    if version is not None:
        checks.append(_poll("loopback-poll.host", release, version, module_srcversion(), poll_fix.host_remedy(release)))
    return checks


def _program(check: str, name: str, version: Callable[[str], str]) -> Check:
    path = shutil.which(name)
    if path is None:
        return Check(check, "vm", False, f"{name} not on PATH", kernel.SETUP_REMEDY)
    try:
        return Check(check, "vm", True, f"{version(path)} ({path})")
    except OSError as exc:
        return Check(check, "vm", False, f"{name} does not run: {exc}", kernel.SETUP_REMEDY)


def _virtme_ng_version(vng: str) -> str:
    """What `vng --version` prints ('virtme-ng 1.42'), read from the package's metadata beside the script
    (the version importlib.metadata gives it) instead of starting Python for it: seconds under TCG."""
    prefix = Path(os.path.realpath(vng)).parent.parent
    for info in prefix.glob("lib/python3*/*-packages/virtme_ng-*-info"):
        if found := _VIRTME_NG_INFO.fullmatch(info.name):
            return f"virtme-ng {found[1]}"
    return "virtme-ng (version not found beside it)"


def _guest_kernel(guest: kernel.GuestKernel | None, problem: EnvironmentProblem | None) -> list[Check]:
    if problem is not None:
        return [Check("vm.kernel", "vm", False, _message(problem), problem.remedy)]
    if guest is None:
        return [Check("vm.kernel", "vm", False, f"no kernel image with modules under {kernel.BOOT_DIR}",
                      kernel.SETUP_REMEDY)]
    vivid = kernel.has_module(guest.version, "vivid")
    poll = ([] if guest.loopback_version is None else
            [_poll("loopback-poll.vm", guest.version, kernel.parse_version(guest.loopback_version),
                   modinfo.field(guest.version, "v4l2loopback", "srcversion"), kernel.SETUP_REMEDY)])
    return [Check("vm.kernel", "vm", True, f"{guest.version} ({guest.image})"),
            Check("vm.v4l2loopback", "vm", guest.loopback_usable,
                  f"{kernel.loopback_summary(guest)} built for {guest.version}",
                  None if guest.loopback_usable else kernel.SETUP_REMEDY),
            *poll,
            # Only --backend vivid needs it, so it does not decide whether the VM is ready.
            Check("vivid", "tools", vivid, f"vivid {'is' if vivid else 'is not'} a module of {guest.version} "
                  "(--backend vivid)", None if vivid else "a distribution kernel (linux-image-amd64) has it"),
            _usb_webcams(guest.version)]


def _poll(name: str, release: str, version: tuple[int, ...], srcversion: str | None, fix: str) -> Check:
    """Whether select()-based readers (µStreamer) work on this v4l2loopback build; only they need it."""
    found = poll_fix.verdict(version, srcversion, poll_fix.recorded_srcversion(release))
    return Check(name, "tools", found.ok, found.detail, None if found.ok else fix)


def _usb_webcams(version: str) -> Check:
    """--backend uvc plugs userspace USB devices into vhci-hcd, where uvcvideo drives them: the
    guest kernel needs those two modules, and no usbip program."""
    missing = [name for name in kmodule.WEBCAM_MODULES if not kernel.has_module(version, name)]
    if missing:
        return Check("usb-webcams", "tools", False, f"{version} lacks module(s) {', '.join(missing)} "
                     "(--backend uvc)", "a distribution kernel (linux-image-amd64) has them")
    return Check("usb-webcams", "tools", True, f"{version} has {', '.join(kmodule.WEBCAM_MODULES)} (--backend uvc)")


def _accel(guest: kernel.GuestKernel | None) -> Check:
    """Which accelerator a VM launch would use and why, without booting anything: the kept boot-probe
    verdict of this host boot, else the in-process checks "not yet proven by a boot". TCG works (ok);
    where KVM was refused the detail says how to get it."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return Check("vm.accel", "vm", False, "no QEMU to probe", kernel.SETUP_REMEDY)
    try:
        chosen = accel.report(qemu, guest.image if guest else None)
    except BadInput as exc:
        return Check("vm.accel", "vm", False, str(exc), f"unset {accel.ENV_OVERRIDE}")
    detail = f"{chosen.name}: {chosen.reason}"
    if chosen.name == "tcg" and accel.ENV_OVERRIDE not in chosen.reason:
        detail += ("; for KVM: usermod -aG kvm $USER" if "permission" in chosen.reason else
                   "; for KVM (the VM ~20x faster) use a host with hardware virtualization: "
                   "bare metal, or nested VMX/SVM")
    return Check("vm.accel", "vm", True, detail)


def vm_checks() -> list[Check]:
    # One look at the installed kernels serves vm.kernel and vm.accel (whose kept verdict is per kernel image).
    guest, problem = None, None
    try:
        guest = kernel.preferred(kernel.candidates())
    except EnvironmentProblem as exc:
        problem = exc
    return [_program("vm.qemu", "qemu-system-x86_64", lambda path: _version_line([path, "--version"])),
            _program("vm.vng", "vng", _virtme_ng_version),
            *_guest_kernel(guest, problem), _accel(guest)]


def _tool(name: str, remedy: str, find: Callable[[], str], version: Callable[[str], str]) -> Check:
    try:
        path = find()
        return Check(name, "tools", True, f"{version(path)} ({path})")
    except EnvironmentProblem as exc:
        return Check(name, "tools", False, _message(exc), exc.remedy or remedy)
    except OSError as exc:
        return Check(name, "tools", False, f"{name} does not run: {exc}", remedy)


def _mediamtx_version(path: str) -> str:
    """Its version, within the supported range (too old: EnvironmentProblem); a newer one says so."""
    version = mediamtx.binary_version(path)
    newer = mediamtx_versions.check(version)
    newest = ".".join(map(str, mediamtx_versions.NEWEST_KNOWN))
    return f"mediamtx {version}" + (f" (newer than {mediamtx_versions.SUPPORTED}: runs with {newest}'s keys)"
                                    if newer else f" (supported: {mediamtx_versions.SUPPORTED})")


def tool_checks() -> list[Check]:
    return [
        _tool("ffmpeg", binaries.REMEDIES["ffmpeg"], lambda: binaries.require("ffmpeg"),
              lambda path: _version_line([path, "-version"]).split(" Copyright")[0]),
        _tool("mediamtx", mediamtx.INSTALL, mediamtx.find_binary, _mediamtx_version),
    ]


def run() -> Report:
    """All checks: host, VM, tools."""
    return Report(host_checks() + vm_checks() + tool_checks())
