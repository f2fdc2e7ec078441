"""Shared test setup: every test gets its own simfarm state directory."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Short path: the control socket lives there and AF_UNIX paths are limited to 108 bytes.
    monkeypatch.setenv("SIMFARM_STATE_DIR", str(tmp_path_factory.mktemp("st")))
