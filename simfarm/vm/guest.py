"""Runs INSIDE the VM, before the user's command: loads the media modules,
makes sure udev processes real uevents, then execs the command.

    python -I guest.py LAUNCH_FILE

The runner executes this file by path with the host's interpreter (the host
root is the guest's root), so it uses the standard library only and imports
nothing from simfarm: the guest must not depend on how simfarm is installed.
LAUNCH_FILE is JSON written by the runner: {"argv": [...], "cwd": "...",
"env": {...}, "images": [...], and optionally "package" and "mediamtx"}; the
command gets exactly that environment (with $SIMFARM_MEDIAMTX at the guest's
copy).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from typing import Any

# Exit code when the guest could not be prepared: distinct from the command's
# usual codes, as `docker run` and `git bisect run` use it.
SETUP_FAILED = 125
UDEVD_PATHS = ("/usr/lib/systemd/systemd-udevd", "/lib/systemd/systemd-udevd")
# devices=0: v4l2loopback >= 0.13 otherwise pre-creates one node; the farm
# makes its own through the control device.
MODULES = (("videodev",), ("v4l2loopback", "devices=0"))
GUEST_BIN = "/tmp/simfarm-vm-bin"  # /tmp is the guest's own memory (tmpfs under an overlay)
GUEST_PACKAGE = "/tmp/simfarm-vm-package"
# The runner's watchdog (simfarm/vm/watchdog.py: the same words and port) stops a
# VM whose guest script never starts; it reads this line from the watched port.
STARTED = b"simfarm-vm: guest script started\n"
WATCHED_PORT = "/dev/ttyS1"
# The runner raised the console log level so the kernel's first line reaches that
# port; from here on the console is quiet again, as virtme-ng leaves it.
QUIET_PRINTK = "/proc/sys/kernel/printk"


class SetupError(Exception):
    """The guest lacks something; the message says what."""


def _run(*argv: str) -> None:
    done = subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SetupError(f"{' '.join(argv)} failed: {done.stderr.strip() or f'exit {done.returncode}'}")


def ensure_udevd() -> None:
    """virtme-ng's init normally starts udevd and coldplugs; do both if it did not."""
    if subprocess.run(["udevadm", "control", "--ping"], check=False, capture_output=True).returncode == 0:
        return
    daemon = next((path for path in UDEVD_PATHS if os.access(path, os.X_OK)), None)
    if daemon is None:
        raise SetupError("systemd-udevd not found (install the udev package on the host)")
    _run(daemon, "--daemon")
    _run("udevadm", "trigger", "--action=add")


def load_modules() -> None:
    """Insert videodev and v4l2loopback, then wait until udev handled their events."""
    for module in MODULES:
        _run("modprobe", *module)
    _run("udevadm", "settle", "--timeout=60")


def mount_images(specs: list[dict[str, str]]) -> None:
    """Mount the host's images (see simfarm/vm/images.py: the Python prefix, the
    shared libraries) read-only over their own paths, so loading them stops going
    through 9p. Processes already running keep what they mapped from 9p."""
    if not specs:
        return
    _run("modprobe", "-a", "virtio_blk", "ext4")
    _run("udevadm", "settle", "--timeout=60")
    for spec in specs:
        device = f"/dev/disk/by-label/{spec['label']}"
        if not os.path.exists(device):
            raise SetupError(f"the image labelled {spec['label']} did not appear as a disk")
        _run("mount", "-t", "ext4", "-o", "ro,noatime", device, spec["mountpoint"])


def mount_package(spec: dict[str, str]) -> None:
    """Unpack simfarm's package (see simfarm/vm/package.py: the host's, with its
    bytecode) into the guest's memory and mount it over the package's own path,
    so that importing simfarm stops going through 9p whichever way it is found."""
    # The archive is the runner's own: its 'data' filter (where Python has it) changes nothing in it.
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    try:
        with tarfile.open(spec["archive"]) as archive:
            archive.extractall(GUEST_PACKAGE, **safe)  # type: ignore[arg-type]
    except (OSError, tarfile.TarError) as exc:
        raise SetupError(f"cannot unpack simfarm's package {spec['archive']} into the guest: {exc}") from None
    _run("mount", "--bind", os.path.join(GUEST_PACKAGE, os.path.basename(spec["mountpoint"])), spec["mountpoint"])


def copy_mediamtx(host_path: str, env: dict[str, str]) -> None:
    """Copy the host's MediaMTX into the guest's memory and point $SIMFARM_MEDIAMTX at the copy.

    The host's files reach the guest over 9p, which pages an executable in
    without a cache: under TCG each start of the 40 MB static binary read it
    again, seconds each time (`mediamtx --version` timed out). One copy costs
    about as much as one such start.
    """
    target = os.path.join(GUEST_BIN, "mediamtx")
    try:
        os.makedirs(GUEST_BIN, exist_ok=True)
        shutil.copy2(host_path, target)
    except OSError as exc:
        raise SetupError(f"cannot copy {host_path} into the guest: {exc.strerror}") from None
    env["SIMFARM_MEDIAMTX"] = target


def exec_command(launch: dict[str, Any]) -> int:
    """Replace this process with the command; returns only if it cannot start."""
    argv: list[str] = launch["argv"]
    try:
        os.chdir(launch["cwd"])
    except OSError as exc:
        print(f"simfarm vm: cannot enter {launch['cwd']}: {exc.strerror}", file=sys.stderr)
        return SETUP_FAILED
    try:
        os.execvpe(argv[0], argv, launch["env"])
    except FileNotFoundError:
        print(f"simfarm vm: {argv[0]}: command not found", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"simfarm vm: {argv[0]}: permission denied", file=sys.stderr)
        return 126


def announce_start() -> None:
    """Tell the runner's watchdog the script runs: on its port, or on stderr where that port is missing."""
    try:
        fd = os.open(WATCHED_PORT, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            os.write(fd, STARTED)
        finally:
            os.close(fd)
    except OSError:
        sys.stderr.buffer.write(STARTED)
        sys.stderr.flush()
    try:
        with open(QUIET_PRINTK, "w", encoding="ascii") as f:
            f.write("1")
    except OSError:
        pass  # a chattier console costs time, nothing else


def main(argv: list[str]) -> int:
    announce_start()
    with open(argv[1], encoding="utf-8") as f:
        launch = json.load(f)
    try:
        ensure_udevd()
        load_modules()
        mount_images(launch.get("images", []))
        if "package" in launch:
            mount_package(launch["package"])
        if "mediamtx" in launch:
            copy_mediamtx(launch["mediamtx"], launch["env"])
    except SetupError as exc:
        print(f"simfarm vm: guest setup failed: {exc}", file=sys.stderr)
        return SETUP_FAILED
    return exec_command(launch)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
