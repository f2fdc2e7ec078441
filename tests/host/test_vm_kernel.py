"""Finding the kernel the VM boots and the v4l2loopback built for it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from simfarm.errors import EnvironmentProblem
from simfarm.vm import kernel

BzImage = Callable[[Path, str], Path]

INSTALLED = sorted(kernel.BOOT_DIR.glob("vmlinuz-*"))


def test_version_comes_from_the_image_header(tmp_path: Path, bzimage: BzImage) -> None:
    image = bzimage(tmp_path / "vmlinuz", "6.1.0-99-amd64 (debian-kernel@lists.debian.org) #1 SMP")
    assert kernel.image_version(image) == "6.1.0-99-amd64"


@pytest.mark.skipif(not INSTALLED, reason="no kernel under /boot (sudo scripts/setup-vm.sh)")
@pytest.mark.parametrize("image", INSTALLED, ids=lambda p: p.name)
def test_installed_images_name_their_own_version(image: Path) -> None:
    assert kernel.image_version(image) == image.name.removeprefix("vmlinuz-")


def test_a_non_kernel_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    junk = tmp_path / "vmlinuz"
    junk.write_bytes(b"\0" * 0x1000)
    with pytest.raises(EnvironmentProblem) as info:
        kernel.image_version(junk)
    assert info.value.remedy == kernel.SETUP_REMEDY


def test_missing_image_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem) as info:
        kernel.find(tmp_path / "nope")
    assert info.value.remedy == kernel.SETUP_REMEDY


def test_image_without_modules_names_its_package(tmp_path: Path, bzimage: BzImage) -> None:
    image = bzimage(tmp_path / "vmlinuz", "0.0.0-simfarm-test #1")
    with pytest.raises(EnvironmentProblem, match="/lib/modules/0.0.0-simfarm-test") as info:
        kernel.find(image)
    assert info.value.remedy == "sudo apt-get install linux-image-0.0.0-simfarm-test"


def test_no_module_for_an_unknown_kernel() -> None:
    assert kernel.loopback_version("0.0.0-simfarm-test") is None


def test_versions_order_numerically() -> None:
    assert kernel.parse_version("0.12.7") < kernel.MIN_LOOPBACK <= kernel.parse_version("0.13.2")
    assert kernel.parse_version("6.1.0-56-amd64") < kernel.parse_version("6.1.0-100-amd64")


def test_preferred_is_the_newest_with_a_usable_module() -> None:
    old_usable = kernel.GuestKernel(Path("/boot/a"), "6.1.0-50-amd64", "0.15.0")
    new_too_old = kernel.GuestKernel(Path("/boot/b"), "6.1.0-60-amd64", "0.12.7")
    newest_none = kernel.GuestKernel(Path("/boot/c"), "6.1.0-70-amd64", None)
    assert kernel.preferred([newest_none, new_too_old, old_usable]) == old_usable
    assert kernel.preferred([newest_none, new_too_old]) == newest_none
    assert kernel.preferred([]) is None


def test_summary_says_what_is_wrong() -> None:
    assert kernel.loopback_summary(kernel.GuestKernel(Path("/x"), "v", "0.15.0")) == "v4l2loopback 0.15.0"
    assert kernel.loopback_summary(kernel.GuestKernel(Path("/x"), "v", "0.12.7")) == \
        "v4l2loopback 0.12.7 (need >= 0.13)"
    assert kernel.loopback_summary(kernel.GuestKernel(Path("/x"), "v", None)) == "no v4l2loopback"


@pytest.mark.skipif(not INSTALLED, reason="no kernel under /boot (sudo scripts/setup-vm.sh)")
def test_find_returns_a_bootable_kernel_or_says_how_to_fix() -> None:
    try:
        found = kernel.find()
    except EnvironmentProblem as exc:
        assert exc.remedy == kernel.SETUP_REMEDY
    else:
        assert found.image.is_file() and found.modules.is_dir() and found.loopback_usable
