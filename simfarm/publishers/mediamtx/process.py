"""Running the server process so that stopping it leaves nothing behind.

The server starts in a session of its own, so its session id is its pid.
MediaMTX starts each hook (ffmpeg) in a new process group but in that same
session, and stops them itself on SIGINT. When it cannot (it hangs, or was
killed), its hooks are left running, orphaned; they are found again by that
session id. The server is not reaped until they are gone: until then its pid,
and so the session id, cannot belong to anybody else.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ...errors import EnvironmentProblem
from ...procfs import stat_fields


def launch(argv: Sequence[str], *, cwd: Path, output: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, stdout and stderr appended to ``output``."""
    with open(output, "ab") as sink:
        return subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)


def wait_exit(process: subprocess.Popen[bytes], timeout: float | None) -> bool:
    """Whether ``process`` ended within ``timeout`` seconds, without reaping it."""
    if process.returncode is not None:
        return True
    pidfd = os.pidfd_open(process.pid)
    try:
        return _exits(pidfd, timeout)
    finally:
        os.close(pidfd)


def stop(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGINT, then SIGKILL after ``timeout``; then kill whatever it left in its session, then reap it.

    Only ever signals ``process`` and processes in the session it leads.
    Idempotent. Raises EnvironmentProblem when a process of the session
    survives SIGKILL for ``timeout`` (stuck in the kernel).
    """
    if process.returncode is not None:
        return
    # os.kill, not Popen.send_signal: that may reap the process, freeing its pid (the session id).
    if not wait_exit(process, 0):
        os.kill(process.pid, signal.SIGINT)  # MediaMTX's graceful stop: it stops its hooks too
        if not wait_exit(process, timeout):
            os.kill(process.pid, signal.SIGKILL)
            wait_exit(process, None)
    survivors = kill_session(process.pid, timeout)
    process.wait()
    if survivors:
        raise EnvironmentProblem(f"processes {survivors} started by pid {process.pid} survived SIGKILL",
                                 "look for processes stuck in the kernel (state D in `ps`)")


def kill_session(session: int, timeout: float) -> list[int]:
    """SIGKILL every live process of ``session`` but its leader; returns those still there after ``timeout``.

    Safe while the session's leader is ours or gone: the kernel keeps a pid in
    use for as long as any process has it as its session id, so processes of
    session ``session`` are then the leader's, never a stranger's.
    """
    return [pid for pid in session_members(session) if not _kill(pid, session, timeout)]


def session_members(session: int) -> list[int]:
    """Live processes of ``session`` other than its leader."""
    return [pid for pid in _pids() if pid != session and _session_of(pid) == session]


def _pids() -> list[int]:
    return [int(entry.name) for entry in os.scandir("/proc") if entry.name.isdigit()]


def _session_of(pid: int) -> int | None:
    """The session of a live process; None when it has ended (or is a zombie)."""
    fields = stat_fields(pid)
    return None if fields is None else int(fields[3])


def _kill(pid: int, session: int, timeout: float) -> bool:
    """SIGKILL ``pid`` if it is still in ``session``; whether it is gone within ``timeout``."""
    try:
        pidfd = os.pidfd_open(pid)  # refers to this very process, even once its pid is reused
    except ProcessLookupError:
        return True
    try:
        # Checked after opening the pidfd, so the check and the signal concern the same process.
        if _session_of(pid) != session:
            return True
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return _exits(pidfd, timeout)
    finally:
        os.close(pidfd)


def _exits(pidfd: int, timeout: float | None) -> bool:
    readable, _, _ = select.select([pidfd], [], [], timeout)
    return bool(readable)


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 16384))
            text = log.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
