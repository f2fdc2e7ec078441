"""Finding the external programs simfarm drives, with the fix when absent."""

from __future__ import annotations

import os
import shutil

from .errors import EnvironmentProblem

# The one command that installs each program on Debian/Ubuntu.
REMEDIES = {
    "ffmpeg": "apt-get install -y ffmpeg",
    "ffprobe": "apt-get install -y ffmpeg",
    "qemu-system-x86_64": "apt-get install -y qemu-system-x86",
    "udevadm": "apt-get install -y udev",
    "modinfo": "apt-get install -y kmod",
    "modprobe": "apt-get install -y kmod",
}
# Where administration tools live when a user's PATH leaves them out.
_SBIN = "/usr/sbin:/sbin"


def require(name: str, *, env: str | None = None) -> str:
    """Absolute path of program ``name`` (or of ``$env`` when set), else EnvironmentProblem."""
    override = os.environ.get(env) if env else None
    path = override if override else shutil.which(name) or shutil.which(name, path=_SBIN)
    if not path or not os.access(path, os.X_OK):
        where = f"${env}={override!r}" if override else "PATH"
        raise EnvironmentProblem(f"{name} not found on {where}", REMEDIES.get(name))
    return path
