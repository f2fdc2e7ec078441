"""What a program prints about its version, asked once per binary.

`simfarm doctor` reports the versions of QEMU, virtme-ng, FFmpeg and
MediaMTX (whose version decides the configuration keys simfarm writes);
starting each costs many times Python's own start-up, and a 40 MB static
MediaMTX takes seconds under emulation. So a successful answer is kept in
``versions.json`` under :func:`cache_dir`, for the command with the
binary's real path, along with the binary's size and modification time:
a binary upgraded or replaced no longer matches and is asked again (its new
answer takes the old one's place). Failed runs are not kept. subprocess
is imported only to ask: it costs a twentieth of Python's start-up.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from . import cachefile

ENV = "SIMFARM_CACHE_DIR"


class Answer(NamedTuple):
    """What the program said (as subprocess.run's result names it)."""

    returncode: int
    stdout: str
    stderr: str


def cache_dir() -> Path:
    """``$SIMFARM_CACHE_DIR``, else ``$XDG_CACHE_HOME/simfarm``, else ``~/.cache/simfarm``."""
    if explicit := os.environ.get(ENV):
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "simfarm"


def run(argv: Sequence[str], timeout: float) -> Answer:
    """``subprocess.run(argv)``'s status and output (as text), or the kept answer of an earlier successful
    run of the same command on the same binary. Raises OSError when it cannot run, TimeoutError (an
    OSError too) when it outlasts ``timeout`` seconds."""
    try:
        real = os.path.realpath(argv[0])
        st = os.stat(real)
    except OSError:
        return _ask(argv, timeout)
    key, binary = json.dumps([real, *argv[1:]]), [st.st_size, st.st_mtime_ns]
    kept = _load().get(key)
    if isinstance(kept, list) and len(kept) == 4 and kept[:2] == binary:
        return Answer(0, kept[2], kept[3])
    done = _ask(argv, timeout)
    if done.returncode == 0:
        _store(key, [*binary, done.stdout, done.stderr])
    return done


def _ask(argv: Sequence[str], timeout: float) -> Answer:
    import subprocess
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise TimeoutError(str(exc)) from None
    return Answer(done.returncode, done.stdout, done.stderr)


def _path() -> Path:
    return cache_dir() / "versions.json"


def _load() -> dict[str, object]:
    return cachefile.load(_path())


def _store(key: str, answer: list[object]) -> None:
    kept = _load()
    kept[key] = answer
    cachefile.store(_path(), kept)
