"""Run one command inside a VM that boots the distribution kernel (virtme-ng).

The guest sees the host's root filesystem read-only over 9p, so the same
Python, checkout and tools are there. Writes reach the host only inside
directories shared with --rwdir (the working directory always is); /tmp,
/etc, /usr, /var, /home and $HOME are guest-private overlays and /run,
/var/tmp are fresh tmpfs. The host environment is handed to the command through a launch
file, because virtme-ng gives the guest command init's environment only.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from .. import binaries
from ..errors import BadInput, EnvironmentProblem
from ..publishers.mediamtx.binary import find_binary
from . import accel as accel_mod
from . import kernel as kernel_mod
from . import images, network, package, watchdog as watchdog_mod
from .accel import Accel
from .network import Forward
from .watchdog import Watchdog

GUEST_SCRIPT = Path(__file__).with_name("guest.py")
# vng pastes paths unquoted into a shell command line and virtme-run accepts
# only these characters in --rwdir, so anything else is refused up front.
_SAFE_PATH = re.compile(r"[A-Za-z0-9_+/.-]+")
_MEMORY = re.compile(r"[1-9][0-9]*[KMGT]?")
# Variables that point at host session resources under /run or sockets the
# guest does not have; passing them would only mislead programs there.
_HOST_SESSION_ENV = frozenset({
    "PWD", "OLDPWD", "SHLVL", "_", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS",
    "SSH_AUTH_SOCK", "SSH_AGENT_PID", "DISPLAY", "WAYLAND_DISPLAY", "TMUX", "TMUX_PANE",
})
# Emulated CPUs make compiling Python ~25x slower: every guest process would
# recompile the checkout's modules (seconds each) if bytecode could not be
# cached, and the checkout is shared read-write, so caching works there.
_NO_BYTECODE_ENV = "PYTHONDONTWRITEBYTECODE"
IN_VM_ENV = "SIMFARM_IN_VM"


def guest_env(environ: Mapping[str, str], accel: Accel) -> dict[str, str]:
    """The command's environment in the guest: the host's, minus host-session
    variables and PYTHONDONTWRITEBYTECODE, plus SIMFARM_IN_VM=1 and
    SIMFARM_VM_ACCEL=kvm|tcg so code can tell where it runs (under TCG
    everything is ~25x slower: scale timeouts)."""
    env = {k: v for k, v in environ.items() if k not in _HOST_SESSION_ENV and k != _NO_BYTECODE_ENV}
    env[IN_VM_ENV] = "1"
    env[accel_mod.ENV_OVERRIDE] = accel.name
    return env


def _safe(path: Path, what: str) -> Path:
    if not _SAFE_PATH.fullmatch(str(path)):
        raise BadInput(f"{what} {str(path)!r}: virtme-ng cannot pass paths with spaces or "
                       "characters other than letters, digits and _+/.-")
    return path


def shared_dirs(cwd: Path, rwdirs: Sequence[Path]) -> list[Path]:
    """Absolute, de-duplicated directories to share read-write, cwd first."""
    result: list[Path] = []
    for directory in (cwd, *rwdirs):
        resolved = directory.resolve()
        if not resolved.is_dir():
            raise BadInput(f"--rwdir {directory}: not a directory")
        if resolved == Path("/"):
            raise BadInput("refusing to share / read-write with the VM")
        if resolved not in result:
            result.append(_safe(resolved, "directory"))
    return result


def vng_command(vng: str, image: Path, accel: Accel, *, cpus: int, memory: str, cwd: Path,
                rwdirs: Sequence[Path], home: Path, guest_argv: Sequence[str],
                disks: Sequence[Path] = (), console: Path | None = None, net: bool = False,
                forwards: Sequence[Forward] = ()) -> list[str]:
    """The vng invocation that boots ``image`` and runs ``guest_argv`` in ``cwd``; with
    ``console``, the kernel's early console and the guest script's start go to that file
    (see vm.watchdog); with ``net`` or ``forwards``, user networking (see vm.network)."""
    argv = [vng, "--run", str(_safe(image, "kernel image")), "--force-9p",
            "--cpus", str(cpus), "--memory", memory, "--cwd", str(cwd)]
    for directory in rwdirs:
        argv += ["--rwdir", str(directory)]
    for disk in disks:
        # Raw, read-only virtio disks: vng's --disk would make QEMU guess the format (and warn).
        argv.append(f"--qemu-opts=-drive file={_safe(disk, 'disk image')},format=raw,if=virtio,readonly=on")
    # vng overlays /home but not /root: without this, tools writing caches
    # under $HOME fail with EROFS. Writes there stay in the guest; rwdirs
    # below $HOME are still mounted on top and reach the host.
    if home != Path("/") and not home.is_relative_to("/home"):
        argv += ["--overlay-rwdir", str(_safe(home, "home directory"))]
    if console is not None:
        argv += [f"--qemu-opts={watchdog_mod.qemu_options(_safe(console, 'console file'))}",
                 "--append", " ".join(watchdog_mod.KERNEL_OPTIONS)]
    argv += network.vng_options(net, forwards)
    if accel.name == "tcg":
        argv.append("--disable-kvm")
    return argv + ["--exec", shlex.join(guest_argv)]


def _guest_python() -> str:
    """The interpreter for guest.py: the distribution's, whose few files load
    quickly over 9p, before the Python image is mounted; ours otherwise."""
    return "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def _require_vng() -> str:
    vng = shutil.which("vng")
    if vng is None or not shutil.which("virtme-run", path=os.path.dirname(vng)):
        raise EnvironmentProblem("virtme-ng (vng) is not installed", kernel_mod.SETUP_REMEDY)
    return vng


def _run_relayed(argv: Sequence[str], env: Mapping[str, str], watchdog: Watchdog | None = None) -> int:
    """Run vng with its output copied to our stdout and stderr as it comes.

    QEMU opens /proc/self/fd/1 and /2 as *files* (O_TRUNC, own offsets):
    inherited regular files would be truncated and overwritten from offset 0,
    so QEMU always gets pipes and we forward. vng runs QEMU as a grandchild,
    so it gets a session of its own that we can end whole when interrupted;
    stdin is /dev/null (a background group must not read the terminal).
    SIGTERM and SIGHUP sent to us (a CI job's timeout, a closed terminal)
    go on to that session: their default action would end this process
    alone and leave QEMU running with nobody to stop it. A ``watchdog``
    watches the session meanwhile and stops it if the guest never starts.
    """
    with _SignalForwarder() as forwarder:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        forwarder.start(proc.pid)
        ended = threading.Event()
        threads = [threading.Thread(target=_copy, args=(proc.stdout, 1, None), daemon=True),
                   threading.Thread(target=_copy, args=(proc.stderr, 2, watchdog), daemon=True)]
        if watchdog is not None:
            threads.append(threading.Thread(target=watchdog.watch, args=(proc.pid, ended), daemon=True))
        for thread in threads:
            thread.start()
        try:
            code = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted: do not leave QEMU running
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
            ended.set()
    for thread in threads:
        thread.join()
    return code


class _SignalForwarder:
    """Passes SIGTERM and SIGHUP on to a process group for as long as it is entered.

    Set before the group exists, so that a signal in between is not lost: it
    is held and sent once :meth:`start` names the group. Only the main thread
    may set handlers; elsewhere nothing is forwarded.
    """

    def __init__(self) -> None:
        self._group: int | None = None
        self._pending: int | None = None
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> _SignalForwarder:
        if threading.current_thread() is threading.main_thread():
            self._saved = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)

    def start(self, group: int) -> None:
        self._group = group
        if self._pending is not None:
            self._send(self._pending)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self._group is None:
            self._pending = signum
        else:
            self._send(signum)

    def _send(self, signum: int) -> None:
        assert self._group is not None
        try:
            os.killpg(self._group, signum)
        except ProcessLookupError:
            pass  # the group ended on its own meanwhile


def _copy(source: IO[bytes], fd: int, watchdog: Watchdog | None) -> None:
    with source, open(fd, "wb", closefd=False) as sink:
        while chunk := os.read(source.fileno(), 65536):
            sink.write(chunk)
            sink.flush()
            if watchdog is not None:
                watchdog.saw_output(chunk)


def _host_mediamtx() -> str | None:
    """The MediaMTX simfarm would run here, if any: the guest runs a copy of it (see guest.copy_mediamtx)."""
    try:
        return find_binary()
    except EnvironmentProblem:
        return None


def run_in_vm(command: Sequence[str], *, kernel: Path | None = None, cpus: int = 2,
              memory: str = "2G", cwd: Path | None = None, rwdirs: Sequence[Path] = (),
              boot_timeout: float | None = None, net: bool = False, forwards: Sequence[Forward] = ()) -> int:
    """Boot the VM, run ``command`` there in ``cwd`` (default: the current
    directory) with this process's environment, stream its output, and return
    its exit code. 125 means the guest could not be prepared; 255 that the
    guest died (e.g. a kernel panic); 124 that the guest showed no sign of
    life within ``boot_timeout`` seconds (default: ``$SIMFARM_VM_BOOT_TIMEOUT``,
    else 60 under KVM and 600 under TCG) and was stopped. ``net`` gives the guest
    user networking, ``forwards`` host ports leading to guest ports (vm.network)."""
    if not command:
        raise BadInput("no command to run in the VM")
    if cpus < 1:
        raise BadInput(f"--cpus {cpus}: must be at least 1")
    if not _MEMORY.fullmatch(memory):
        raise BadInput(f"--memory {memory!r}: expected a size like 2G or 512M")
    try:
        requested_bound = watchdog_mod.requested_bound(boot_timeout)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    dirs = shared_dirs(cwd or Path.cwd(), rwdirs)
    vng = _require_vng()
    qemu = binaries.require("qemu-system-x86_64")
    guest_kernel = kernel_mod.find(kernel)
    accel = accel_mod.choose(qemu, guest_kernel.image)
    bound = requested_bound or watchdog_mod.DEFAULT_BOUND[accel.name]
    print(f"simfarm vm: kernel {guest_kernel.version}, accel {accel.name} ({accel.reason}), "
          f"v4l2loopback {guest_kernel.loopback_version}, {cpus} CPUs, {memory}",
          file=sys.stderr, flush=True)
    # Host /tmp is what the guest's /tmp overlay starts from, so a file made
    # here before boot is readable there ($TMPDIR might be under /run: not).
    with tempfile.TemporaryDirectory(prefix="simfarm-vm-", dir="/tmp") as tmp:
        launch = Path(tmp, "launch.json")
        attached = images.guest_images()
        disks = [images.image_file(image) for image in attached]
        mediamtx = _host_mediamtx()
        launch.write_text(json.dumps({"argv": list(command), "cwd": str(dirs[0]),
                                      "env": guest_env(os.environ, accel),
                                      "images": [image.mount() for image in attached],
                                      "package": package.build(Path(tmp)),
                                      **({"mediamtx": mediamtx} if mediamtx else {})}))
        console = Path(tmp, "console")
        argv = vng_command(vng, guest_kernel.image, accel, cpus=cpus, memory=memory, cwd=dirs[0],
                           rwdirs=dirs, home=Path.home(), disks=disks, console=console,
                           net=net, forwards=forwards,
                           guest_argv=[_guest_python(), "-I", str(GUEST_SCRIPT), str(launch)])
        # vng starts `virtme-run` from PATH; make sure it is the one beside vng.
        env = {**os.environ, "PATH": f"{os.path.dirname(vng)}:{os.environ.get('PATH', '')}"}
        watchdog = Watchdog(console, bound, accel.name)
        code = _run_relayed(argv, env, watchdog)
    if watchdog.cause is not None:
        print(watchdog.cause, file=sys.stderr, flush=True)
        return watchdog_mod.EXIT_CODE
    return 128 - code if code < 0 else code  # killed by signal N: 128+N, as shells say
