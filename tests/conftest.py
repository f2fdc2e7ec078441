"""Shared test setup: every test gets its own simfarm state directory."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Short path: the control socket lives there and AF_UNIX paths are limited to 108 bytes.
    monkeypatch.setenv("SIMFARM_STATE_DIR", str(tmp_path_factory.mktemp("st")))
    # And its own cache: what one test's fake program answered is not another's.
    monkeypatch.setenv("SIMFARM_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


# scripts/test.sh sets this: there the MediaMTX tier must run, so a skip of it is a failure of the run.
REQUIRE_MEDIAMTX = "SIMFARM_REQUIRE_MEDIAMTX"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and os.environ.get(REQUIRE_MEDIAMTX) and item.get_closest_marker("mediamtx"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"a MediaMTX test may not skip here (${REQUIRE_MEDIAMTX} is set): {reason}"
