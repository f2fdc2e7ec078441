"""MediaMTX tier: runs where a mediamtx binary exists, and is skipped, with the reason, elsewhere."""

from __future__ import annotations

import os
import shutil

import pytest

from simfarm.publishers.mediamtx import find_binary
from simfarm.publishers.mediamtx.binary import ENV

SKIP_REASON = f"no mediamtx binary: put it on PATH or set {ENV}"


@pytest.fixture(scope="session")
def mediamtx_binary() -> str:
    if not os.environ.get(ENV) and not shutil.which("mediamtx"):
        pytest.skip(SKIP_REASON)
    return find_binary()  # a $SIMFARM_MEDIAMTX that names no program fails here, loudly


@pytest.fixture(autouse=True)
def _needs_mediamtx(mediamtx_binary: str) -> None:
    """Every test of this tier needs the binary, whether it asks for it or not."""
