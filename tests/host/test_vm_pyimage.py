"""The guest's Python image: a real ext4 image of a prefix, rebuilt only when it changes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from simfarm.vm import pyimage


def test_image_holds_the_prefix_and_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = tmp_path / "prefix"
    (prefix / "lib").mkdir(parents=True)
    (prefix / "lib" / "mod.py").write_text("x = 1\n")
    monkeypatch.setattr(pyimage, "CACHE_DIR", tmp_path / "cache")
    image = pyimage.image_for(prefix)
    listing = subprocess.run(["debugfs", "-R", "ls -l /lib", str(image)], capture_output=True, text=True)
    assert "mod.py" in listing.stdout
    label = subprocess.run(["e2label", str(image)], capture_output=True, text=True).stdout.strip()
    assert label == pyimage.LABEL
    mtime = image.stat().st_mtime_ns
    assert pyimage.image_for(prefix) == image and image.stat().st_mtime_ns == mtime
