"""simfarm's package for the guest: the checkout as it is at VM start, with bytecode for every module."""

from __future__ import annotations

import importlib.util
import tarfile
from pathlib import Path

import pytest

from simfarm.vm import package


def fake_package(root: Path, text: str) -> Path:
    pkg = root / "simfarm"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text(text)
    (pkg / "sub" / "profile.yaml").write_text("data: 1\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "stale.cpython-311.pyc").write_bytes(b"old")
    return pkg


def unpacked(spec: dict[str, str], into: Path) -> Path:
    with tarfile.open(spec["archive"]) as archive:
        archive.extractall(into)
    return into / "simfarm"


def test_the_archive_is_the_package_now_with_current_bytecode_for_each_module(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = fake_package(tmp_path / "checkout", "VALUE = 1\n")
    monkeypatch.setattr(package, "package_dir", lambda: pkg)
    (tmp_path / "first").mkdir()
    spec = package.build(tmp_path / "first")
    assert spec["mountpoint"] == str(pkg)
    (pkg / "sub" / "__init__.py").write_text("VALUE = 2\n")  # an edit before the next VM start
    (tmp_path / "second").mkdir()
    copy = unpacked(package.build(tmp_path / "second"), tmp_path / "guest")

    assert (copy / "sub" / "__init__.py").read_text() == "VALUE = 2\n"
    assert (copy / "sub" / "profile.yaml").read_text() == "data: 1\n"
    assert not (copy / "__pycache__" / "stale.cpython-311.pyc").exists()
    for source in copy.rglob("*.py"):
        pyc = Path(importlib.util.cache_from_source(str(source))).read_bytes()
        # The timestamp form the import system checks: source mtime and size, as unpacked.
        assert int.from_bytes(pyc[4:8], "little") == 0
        assert int.from_bytes(pyc[8:12], "little") == int(source.stat().st_mtime)
        assert int.from_bytes(pyc[12:16], "little") == source.stat().st_size
    assert not list((tmp_path / "second").glob("package"))  # only the archive is left for the guest


def test_the_real_package_is_the_one_this_process_imported() -> None:
    import simfarm
    assert package.package_dir() == Path(simfarm.__file__).resolve().parent
