"""A program's version is asked once per binary, and again when the binary changes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from simfarm import program_versions


def counting_program(tmp_path: Path, answer: str, status: int = 0) -> tuple[Path, Path]:
    """A program that prints ``answer``, exits ``status`` and notes each run in a log beside it."""
    log = tmp_path / "runs"
    program = tmp_path / "prog"
    program.write_text(f"#!/bin/sh\necho run >> {log}\necho {answer}\nexit {status}\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return program, log


def runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_asked_once_then_read_back(tmp_path: Path) -> None:
    program, log = counting_program(tmp_path, "prog 1.2.3")
    first = program_versions.run([str(program), "--version"], timeout=10)
    again = program_versions.run([str(program), "--version"], timeout=10)
    assert first.stdout == again.stdout == "prog 1.2.3\n" and again.returncode == 0
    assert runs(log) == 1
    assert (program_versions.cache_dir() / "versions.json").is_file()


def test_a_changed_binary_is_asked_again(tmp_path: Path) -> None:
    program, log = counting_program(tmp_path, "prog 1.2.3")
    program_versions.run([str(program), "--version"], timeout=10)
    # An upgrade in place; one byte longer, as the clock may not tick between the two writes.
    program.write_text(program.read_text().replace("1.2.3", "1.2.40"))
    assert program_versions.run([str(program), "--version"], timeout=10).stdout == "prog 1.2.40\n"
    assert program_versions.run([str(program), "-V"], timeout=10).stdout == "prog 1.2.40\n"  # another command
    assert runs(log) == 3


def test_failures_are_not_kept(tmp_path: Path) -> None:
    program, log = counting_program(tmp_path, "broken", status=3)
    for _ in range(2):
        assert program_versions.run([str(program), "--version"], timeout=10).returncode == 3
    assert runs(log) == 2
    with pytest.raises(OSError):
        program_versions.run([str(tmp_path / "missing"), "--version"], timeout=10)


def test_an_unwritable_cache_only_means_asking_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(program_versions.ENV, str(blocker / "cache"))  # under a file: cannot be made
    program, log = counting_program(tmp_path, "prog 1")
    for _ in range(2):
        assert program_versions.run([str(program)], timeout=10).stdout == "prog 1\n"
    assert runs(log) == 2 and set(os.listdir(tmp_path)) == {"file", "prog", "runs"}


def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(program_versions.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    assert program_versions.cache_dir() == Path("/x/cache/simfarm")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert program_versions.cache_dir() == Path.home() / ".cache" / "simfarm"
