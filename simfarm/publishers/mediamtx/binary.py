"""Finding the mediamtx program and asking its version.

MediaMTX is in no distribution or language registry: it ships as a static
binary on its GitHub releases page, so the remedy says where to get it.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import NamedTuple

from ... import program_versions
from ...errors import EnvironmentProblem

ENV = "SIMFARM_MEDIAMTX"
INSTALL = ("download a release from https://github.com/bluenviron/mediamtx/releases, "
           f"then put `mediamtx` on PATH or set {ENV}=/path/to/mediamtx")

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


# A NamedTuple (ordered as a tuple), not a dataclass: `simfarm doctor` reads it, and
# dataclasses costs a sixth of Python's start-up to import.
class Version(NamedTuple):
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"


def find_binary(explicit: str | None = None) -> str:
    """Absolute path of mediamtx: ``explicit`` (a ``--mediamtx`` value), else ``$SIMFARM_MEDIAMTX``, else PATH."""
    if explicit:
        where, wanted = "--mediamtx", explicit
    elif os.environ.get(ENV):
        where, wanted = f"${ENV}", os.environ[ENV]
    else:
        where, wanted = "PATH", "mediamtx"
    found = shutil.which(wanted)
    if not found:
        raise EnvironmentProblem(f"mediamtx not found ({where}: {wanted!r} is not an executable)", INSTALL)
    return os.path.abspath(found)


def parse_version(text: str) -> Version:
    """The version in ``mediamtx --version`` output (``v1.20.1``)."""
    match = _VERSION.search(text)
    if not match:
        raise EnvironmentProblem(f"cannot read a version from mediamtx --version: {text.strip()!r}", INSTALL)
    return Version(*(int(part) for part in match.groups()))


def binary_version(binary: str) -> Version:
    """Run ``binary --version`` (once per binary: see program_versions)."""
    try:
        # Generous: a 40 MB static binary starts in seconds under emulation, more on a loaded machine.
        done = program_versions.run([binary, "--version"], timeout=60)
    except OSError as error:  # TimeoutError among them
        raise EnvironmentProblem(f"cannot run {binary} --version: {error}", INSTALL) from error
    if done.returncode != 0:
        raise EnvironmentProblem(f"{binary} --version failed ({done.returncode}): "
                                 f"{(done.stderr or done.stdout).strip()[-200:]!r}", INSTALL)
    return parse_version(done.stdout)
