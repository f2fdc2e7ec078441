"""`simfarm vm`: argument handling and one-line errors (no VM is booted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simfarm.cli import main


@pytest.mark.parametrize("argv", [["vm"], ["vm", "--"], ["vm", "--cpus", "0", "--", "true"],
                                  ["vm", "--memory", "big", "--", "true"]])
def test_bad_invocations_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("simfarm: error: ") and err.count("\n") == 1


def test_missing_virtme_ng_exits_1_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["vm", "--", "sh", "-c", "exit 3"]) == 1
    assert "(fix: sudo scripts/setup-vm.sh)" in capsys.readouterr().err


def test_rwdir_must_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vm", "--rwdir", str(tmp_path / "missing"), "--", "true"]) == 2
    assert "not a directory" in capsys.readouterr().err
