"""The kernel the VM boots: a distribution kernel under /boot whose
/lib/modules tree has a v4l2loopback >= 0.13 built for it (by DKMS).

The host may run a different, custom kernel without module support, so
nothing here looks at `uname -r`: everything is keyed by the image's own
version string.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from ..devices.kmod import modinfo
from ..errors import EnvironmentProblem

SETUP_REMEDY = "sudo scripts/setup-vm.sh"
MIN_LOOPBACK = (0, 13)
BOOT_DIR = Path("/boot")
MODULES_DIR = modinfo.MODULES_DIR

# x86 boot protocol: "HdrS" at 0x202; the 16-bit value at 0x20E points (+0x200)
# to a NUL-terminated string that starts with the kernel release.
_HEADER_MAGIC_AT = 0x202
_VERSION_POINTER_AT = 0x20E


# A NamedTuple, not a dataclass: `simfarm doctor` reads it, and dataclasses costs a
# sixth of Python's start-up to import.
class GuestKernel(NamedTuple):
    """A bootable kernel image and what the VM tier needs to know about it."""

    image: Path
    version: str
    loopback_version: str | None  # as `modinfo -k` reports it; None when not built (or it declares none)

    @property
    def modules(self) -> Path:
        return MODULES_DIR / self.version

    @property
    def loopback_usable(self) -> bool:
        return self.loopback_version is not None and parse_version(self.loopback_version) >= MIN_LOOPBACK


def parse_version(text: str) -> tuple[int, ...]:
    """The numbers in a version string, for ordering: '0.15.0' -> (0, 15, 0),
    '6.1.0-56-amd64' -> (6, 1, 0, 56, 64)."""
    return tuple(int(n) for n in re.findall(r"\d+", text))


def image_version(image: Path) -> str:
    """The release string stored in a bzImage header (what `uname -r` will say)."""
    try:
        with open(image, "rb") as f:
            header = f.read(_VERSION_POINTER_AT + 2)
            if header[_HEADER_MAGIC_AT:_HEADER_MAGIC_AT + 4] != b"HdrS":
                raise EnvironmentProblem(f"{image} is not an x86 bzImage kernel", SETUP_REMEDY)
            f.seek(int.from_bytes(header[_VERSION_POINTER_AT:], "little") + 0x200)
            banner = f.read(256)
    except PermissionError:
        raise EnvironmentProblem(f"cannot read kernel image {image}",
                                 f"sudo chmod a+r {image} (or run as root)") from None
    except OSError as exc:
        raise EnvironmentProblem(f"cannot read kernel image {image}: {exc.strerror}", SETUP_REMEDY) from None
    return banner.split(b"\0", 1)[0].decode(errors="replace").split(" ", 1)[0]


def loopback_version(version: str) -> str | None:
    """Version of the v4l2loopback module built for kernel ``version``, or None."""
    return modinfo.field(version, "v4l2loopback", "version", MODULES_DIR) or None


def has_module(version: str, name: str) -> bool:
    """Whether kernel ``version`` has module ``name`` (e.g. vivid, for ``--backend vivid``)."""
    return modinfo.find(version, name, MODULES_DIR) is not None


def describe(image: Path) -> GuestKernel:
    """What we know about one kernel image."""
    version = image_version(image)
    return GuestKernel(image=image, version=version, loopback_version=loopback_version(version))


def candidates() -> list[GuestKernel]:
    """Installed kernels that have a /lib/modules tree, newest first."""
    kernels = [describe(image) for image in BOOT_DIR.glob("vmlinuz-*")
               if (MODULES_DIR / image.name.removeprefix("vmlinuz-")).is_dir()]
    return sorted(kernels, key=lambda k: parse_version(k.version), reverse=True)


def preferred(kernels: list[GuestKernel]) -> GuestKernel | None:
    """The first (newest) kernel with a usable v4l2loopback, else the first one."""
    return next((k for k in kernels if k.loopback_usable), kernels[0] if kernels else None)


def find(image: Path | None = None) -> GuestKernel:
    """The kernel to boot: ``image`` when given, else the newest installed one
    with a usable v4l2loopback. Raises EnvironmentProblem with the fix."""
    if image is None:
        kernel = preferred(candidates())
        if kernel is None:
            raise EnvironmentProblem(f"no kernel image with modules under {BOOT_DIR}", SETUP_REMEDY)
    else:
        if not image.is_file():
            raise EnvironmentProblem(f"kernel image {image} does not exist", SETUP_REMEDY)
        kernel = describe(image)
        if not kernel.modules.is_dir():
            raise EnvironmentProblem(f"{kernel.modules} is missing for kernel {image}",
                                     f"sudo apt-get install linux-image-{kernel.version}")
    if not kernel.loopback_usable:
        raise EnvironmentProblem(f"kernel {kernel.version} has {loopback_summary(kernel)}", SETUP_REMEDY)
    return kernel


def loopback_summary(kernel: GuestKernel) -> str:
    """'v4l2loopback 0.15.0' / 'v4l2loopback 0.12.7 (need >= 0.13)' / 'no v4l2loopback'."""
    if kernel.loopback_version is None:
        return "no v4l2loopback"
    need = "" if kernel.loopback_usable else f" (need >= {'.'.join(map(str, MIN_LOOPBACK))})"
    return f"v4l2loopback {kernel.loopback_version}{need}"
