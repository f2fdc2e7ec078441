"""simfarm's own package for the guest, as one archive with its bytecode.

The guest reads the host's files over 9p, where every lookup and read costs
milliseconds under TCG: importing simfarm's own modules from the checkout
cost `simfarm --help` in the VM more than half of what numpy's 212 modules
cost from the guest's ext4 image. At each VM start the package this process
runs from is packed, with bytecode compiled here at host speed, into one
archive; the guest unpacks it into its memory and mounts it over the
package's own path (guest.mount_package), so the checkout's tests and
scripts, `python3 -m simfarm` from the checkout, an editable install and
PYTHONPATH all import this copy, and the copy is the checkout as it is now.
"""

from __future__ import annotations

import compileall
import shutil
import tarfile
from pathlib import Path

import simfarm

# Nothing a guest process imports: bytecode is compiled afresh below.
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc")


def package_dir() -> Path:
    """The simfarm package this process imported (the checkout, PYTHONPATH or site-packages)."""
    return Path(simfarm.__file__).resolve().parent


def build(workdir: Path) -> dict[str, str]:
    """Pack the package into ``workdir``; returns what guest.mount_package needs."""
    source = package_dir()
    staged = workdir / "package" / source.name
    shutil.copytree(source, staged, ignore=_SKIP)  # copy2: sources keep their mtimes, as the bytecode records
    # A module that does not compile gets no bytecode: its import in the guest reports the error as usual.
    compileall.compile_dir(staged, ddir=str(source), quiet=2, workers=0)
    archive = workdir / "simfarm-package.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(staged, arcname=source.name)
    shutil.rmtree(staged.parent)
    return {"archive": str(archive), "mountpoint": str(source)}
