"""The guest's images: real ext4 images of host directories, rebuilt only when they change."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from simfarm.vm import images


def test_an_image_holds_its_directory_and_is_rebuilt_only_when_it_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "prefix"
    (source / "lib").mkdir(parents=True)
    (source / "lib" / "mod.py").write_text("x = 1\n")
    monkeypatch.setattr(images, "CACHE_DIR", tmp_path / "cache")
    image = images.Image("test", "simfarm-test", source, source / "lib")
    built = images.image_file(image)
    listing = subprocess.run(["debugfs", "-R", "ls -l /lib", str(built)], capture_output=True, text=True)
    assert "mod.py" in listing.stdout
    label = subprocess.run(["e2label", str(built)], capture_output=True, text=True).stdout.strip()
    assert label == "simfarm-test"
    mtime = built.stat().st_mtime_ns
    assert images.image_file(image) == built and built.stat().st_mtime_ns == mtime
    (source / "lib" / "new.py").write_text("y = 2\n")  # a package installed
    rebuilt = images.image_file(image)
    assert rebuilt != built and not built.exists()
    assert image.mount() == {"label": "simfarm-test", "mountpoint": str(source)}


def test_the_guest_gets_the_shared_libraries_and_a_private_pythons_prefix() -> None:
    found = {image.kind: image for image in images.guest_images()}
    assert found["libs"].source == Path("/usr/lib/x86_64-linux-gnu")
    assert len({image.label for image in found.values()}) == len(found)
