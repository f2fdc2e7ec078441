"""Reading what modinfo would say of a module from /lib/modules: fake trees for the cases the
installed kernel cannot show, the installed kernel against modinfo itself for the rest."""

from __future__ import annotations

import gzip
import lzma
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from simfarm.devices.kmod import index, modinfo

RELEASE = "0.0.0-simfarm-test"
INSTALLED = sorted(p.name for p in modinfo.MODULES_DIR.glob("*") if (p / "modules.dep.bin").is_file())
MODINFO = shutil.which("modinfo", path="/usr/sbin:/sbin")
ElfModule = Callable[..., bytes]


@pytest.fixture
def tree(tmp_path: Path, elf_module: ElfModule) -> Path:
    """A kernel's module tree with text listings only (no .bin indexes, as busybox's depmod leaves it)."""
    root = tmp_path / RELEASE
    files = {
        "kernel/drivers/usb/usbip/vhci-hcd.ko": elf_module("version=1.0.8", "license=GPL"),
        "updates/dkms/v4l2loopback.ko.xz": lzma.compress(elf_module("version=0.15.0", "license=GPL")),
        "extra/v4l2loopback-old.ko.gz": gzip.compress(elf_module("license=GPL")),
        "kernel/lib/libcrc32c.ko": elf_module("license=GPL"),
        "kernel/fs/xfs/xfs.ko": elf_module("license=GPL"),
        "toplevel.ko": elf_module("version=3"),
        "kernel/odd/notelf.ko": b"#!/bin/sh\n",
    }
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    (root / "modules.dep").write_text(
        "kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko\n"  # libcrc32c's own line comes later
        "kernel/drivers/usb/usbip/vhci-hcd.ko: kernel/drivers/usb/usbip/usbip-core.ko\n"
        "updates/dkms/v4l2loopback.ko.xz:\n"
        "extra/v4l2loopback-old.ko.gz:\n"
        "kernel/lib/libcrc32c.ko:\n"
        "toplevel.ko:\n"
        "kernel/odd/notelf.ko:\n"
        f"{root}/abs/elsewhere.ko:\n")
    (root / "modules.builtin").write_text("kernel/drivers/usb/core/usbcore.ko\nkernel/fs/ext4/ext4.ko\n")
    (root / "modules.builtin.modinfo").write_bytes(b"usbcore.license=GPL\0ext4.version=1.2\0ext4.license=GPL\0")
    return tmp_path


def test_files_are_found_by_name_with_dashes_and_underscores_alike(tree: Path) -> None:
    where = tree / RELEASE / "kernel/drivers/usb/usbip/vhci-hcd.ko"
    assert modinfo.find(RELEASE, "vhci_hcd", tree) == modinfo.find(RELEASE, "vhci-hcd", tree) == str(where)
    assert modinfo.find(RELEASE, "toplevel", tree) == str(tree / RELEASE / "toplevel.ko")
    assert modinfo.find(RELEASE, "elsewhere", tree) == f"{tree / RELEASE}/abs/elsewhere.ko"


def test_a_module_named_only_as_a_dependency_is_found_on_its_own_line(tree: Path) -> None:
    assert modinfo.find(RELEASE, "libcrc32c", tree) == str(tree / RELEASE / "kernel/lib/libcrc32c.ko")
    assert modinfo.find(RELEASE, "usbip-core", tree) is None  # a dependency without a line of its own
    assert modinfo.find(RELEASE, "hcd", tree) is None  # a name's tail is not the name


def test_versions_from_plain_xz_and_gz_modules(tree: Path) -> None:
    assert modinfo.field(RELEASE, "vhci_hcd", "version", tree) == "1.0.8"
    assert modinfo.field(RELEASE, "v4l2loopback", "version", tree) == "0.15.0"
    assert modinfo.field(RELEASE, "v4l2loopback_old", "version", tree) == ""  # declares none, as 0.12.7
    assert modinfo.field(RELEASE, "v4l2loopback_old", "license", tree) == "GPL"
    assert modinfo.field(RELEASE, "nope", "version", tree) is None


def test_builtin_modules_and_their_fields(tree: Path) -> None:
    assert modinfo.find(RELEASE, "ext4", tree) == modinfo.BUILTIN
    assert modinfo.field(RELEASE, "ext4", "version", tree) == "1.2"
    assert modinfo.field(RELEASE, "usbcore", "version", tree) == ""


def test_unreadable_modules_and_missing_trees_have_no_fields(tree: Path) -> None:
    assert modinfo.field(RELEASE, "notelf", "version", tree) is None
    (tree / RELEASE / "kernel/lib/libcrc32c.ko").unlink()
    assert modinfo.field(RELEASE, "libcrc32c", "license", tree) is None
    assert modinfo.find("9.9.9-absent", "ext4", tree) is None


def test_a_broken_index_falls_back_to_the_text_listing(tree: Path) -> None:
    (tree / RELEASE / "modules.dep.bin").write_bytes(b"not an index")
    assert modinfo.field(RELEASE, "vhci-hcd", "version", tree) == "1.0.8"
    with pytest.raises(ValueError, match="not a kmod index"):
        index.lookup(tree / RELEASE / "modules.dep.bin", "vhci_hcd")


def _listed_names(tree: Path, listing: str) -> list[str]:
    lines = (tree / listing).read_text().splitlines()
    return sorted({line.split(":")[0].rsplit("/", 1)[-1].split(".ko")[0] for line in lines if line})


@pytest.mark.skipif(not INSTALLED, reason="no kernel module tree (sudo scripts/setup-vm.sh installs one)")
@pytest.mark.parametrize("release", INSTALLED)
def test_the_indexes_agree_with_the_text_listings(release: str, tmp_path: Path) -> None:
    real = modinfo.MODULES_DIR / release
    text_only = tmp_path / release
    text_only.mkdir()
    for listing in ("modules.dep", "modules.builtin"):
        shutil.copy(real / listing, text_only / listing)
    # Every seventh: each text search reads half a megabyte, and thousands of them take seconds.
    names = _listed_names(real, "modules.dep")[::7] + _listed_names(real, "modules.builtin")
    by_index = [modinfo.find(release, name) for name in names]
    by_text = [modinfo.find(release, name, tmp_path) for name in names]
    assert None not in by_index
    assert by_index == [str(real / p.removeprefix(f"{text_only}/")) if p != modinfo.BUILTIN else p for p in by_text]


@pytest.mark.skipif(not (INSTALLED and MODINFO), reason="needs a kernel module tree and modinfo (kmod)")
@pytest.mark.parametrize("release", INSTALLED)
def test_fields_match_what_modinfo_prints(release: str) -> None:
    real = modinfo.MODULES_DIR / release
    names = _listed_names(real, "modules.dep")[::100] + _listed_names(real, "modules.builtin")[::50]
    names += ["v4l2loopback", "vivid", "vhci_hcd", "uvcvideo", "no_such_module"]
    for name in names:
        for key in ("version", "license"):
            done = subprocess.run([str(MODINFO), "-k", release, "-F", key, name], capture_output=True, text=True,
                                  check=False)
            assert modinfo.field(release, name, key) == (done.stdout.strip() if done.returncode == 0 else None), name
