"""The guest's Python, on a block device instead of 9p.

Inside the VM every file lookup over 9p costs milliseconds and mapped
libraries are paged in over it without any cache: importing numpy and
OpenCV took a minute or more per process under TCG. The same files on an
ext4 image attached as a disk go through the guest's own page cache, which
brings a process start back to seconds. The image is a copy of this
interpreter's installation prefix, rebuilt whenever its site-packages change,
and mounted read-only over the same path in the guest (see guest.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from ..errors import EnvironmentProblem

CACHE_DIR = Path(os.environ.get("SIMFARM_VM_CACHE", "/var/cache/simfarm"))
LABEL = "simfarm-py"


def installation_prefix() -> Path | None:
    """The directory holding this interpreter's stdlib and site-packages, or
    None for the distribution's own Python (prefix /usr: far too big to copy,
    and its packages live elsewhere); that one keeps loading over 9p."""
    prefix = Path(sys.base_prefix).resolve()
    return None if prefix == Path("/usr") else prefix


def _fingerprint(prefix: Path) -> str:
    """Changes whenever a package is installed, removed or upgraded (its
    dist-info name carries the version), not when one is merely reinstalled."""
    digest = hashlib.sha256(str(prefix).encode())
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in sorted(os.scandir(site), key=lambda e: e.name):
        size = entry.stat(follow_symlinks=False).st_size if entry.is_file() else 0
        digest.update(f"{entry.name}:{size}\n".encode())
    return digest.hexdigest()[:16]


def _tree_bytes(root: Path) -> int:
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                continue
    return total


def image_for(prefix: Path) -> Path:
    """An up-to-date ext4 image of ``prefix`` (built on first use, ~1 min)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    image = CACHE_DIR / f"python-{_fingerprint(prefix)}.ext4"
    with open(CACHE_DIR / "python-image.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two `simfarm vm` at once build it once
        if not image.exists():
            _build(prefix, image)
    return image


def _build(prefix: Path, image: Path) -> None:
    for old in CACHE_DIR.glob("python-*.ext4"):
        old.unlink()
    size_kib = int(_tree_bytes(prefix) * 1.25) // 1024 + 128 * 1024  # room for ext4's metadata
    print(f"simfarm vm: building the guest's Python image {image} from {prefix}", file=sys.stderr, flush=True)
    partial = image.with_suffix(".partial")
    done = subprocess.run(["mkfs.ext4", "-q", "-F", "-L", LABEL, "-O", "^has_journal",
                           "-E", "root_owner=0:0", "-d", str(prefix), str(partial), f"{size_kib}k"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise EnvironmentProblem(f"mkfs.ext4 could not build the Python image: {done.stderr.strip()}",
                                 "apt-get install -y e2fsprogs")
    os.replace(partial, image)
