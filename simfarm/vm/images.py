"""The guest's Python and shared libraries, on block devices instead of 9p.

Inside the VM every file lookup over 9p costs milliseconds and mapped
libraries are paged in over it without any cache: importing numpy and
OpenCV took a minute or more per process under TCG, and every FFmpeg start
mapped its 215 libraries (236 MB) over it again, tens of seconds on a loaded
machine. The same files on an ext4 image attached as a disk go through the
guest's own page cache. Each image is a copy of one host directory, rebuilt
whenever that directory changes, and mounted read-only over the same path in
the guest (see guest.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from ..errors import EnvironmentProblem

CACHE_DIR = Path(os.environ.get("SIMFARM_VM_CACHE", "/var/cache/simfarm"))


@dataclass(frozen=True)
class Image:
    """One host directory the guest gets on a disk of its own."""

    kind: str  # names the image file: <kind>-<fingerprint>.ext4
    label: str  # the ext4 label, by which the guest finds the disk
    source: Path  # the directory copied, and where the guest mounts the copy
    watched: Path  # a directory whose listing changes whenever the source's content does

    def fingerprint(self) -> str:
        """Changes when a file in ``watched`` is added, removed, resized or rewritten (a package
        installed, removed or upgraded), not when the same package is merely reinstalled."""
        digest = hashlib.sha256(str(self.source).encode())
        for entry in sorted(os.scandir(self.watched), key=lambda e: e.name):
            info = entry.stat(follow_symlinks=False)
            size = info.st_size if entry.is_file(follow_symlinks=False) else 0
            digest.update(f"{entry.name}:{size}:{info.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]

    def mount(self) -> dict[str, str]:
        """What the guest needs to mount it (guest.mount_images)."""
        return {"label": self.label, "mountpoint": str(self.source)}


def guest_images() -> list[Image]:
    """The images worth attaching here: this interpreter's prefix and the system's shared libraries.

    The distribution's own Python (prefix /usr) is far too big to copy and
    keeps its packages elsewhere: it keeps loading over 9p.
    """
    found = []
    prefix = Path(sys.base_prefix).resolve()
    if prefix != Path("/usr"):
        found.append(Image("python", "simfarm-py", prefix, Path(sysconfig.get_paths()["purelib"])))
    libraries = Path("/usr/lib", sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu")
    if libraries.is_dir():
        found.append(Image("libs", "simfarm-lib", libraries, libraries))
    return found


def _tree_bytes(root: Path) -> int:
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                continue
    return total


def image_file(image: Image) -> Path:
    """An up-to-date ext4 image of ``image.source`` (built on first use, about a minute)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"{image.kind}-{image.fingerprint()}.ext4"
    with open(CACHE_DIR / f"{image.kind}-image.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two `simfarm vm` at once build it once
        if not path.exists():
            _build(image, path)
    return path


def _build(image: Image, path: Path) -> None:
    for old in CACHE_DIR.glob(f"{image.kind}-*.ext4"):
        old.unlink()
    size_kib = int(_tree_bytes(image.source) * 1.25) // 1024 + 128 * 1024  # room for ext4's metadata
    print(f"simfarm vm: building the guest's {image.kind} image {path} from {image.source}",
          file=sys.stderr, flush=True)
    partial = path.with_suffix(".partial")
    done = subprocess.run(["mkfs.ext4", "-q", "-F", "-L", image.label, "-O", "^has_journal",
                           "-E", "root_owner=0:0", "-d", str(image.source), str(partial), f"{size_kib}k"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise EnvironmentProblem(f"mkfs.ext4 could not build the {image.kind} image: {done.stderr.strip()}",
                                 "apt-get install -y e2fsprogs")
    os.replace(partial, path)
