"""Port reservations: disjoint across processes racing for the same ports, freed on release or death."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from simfarm.errors import EnvironmentProblem
from simfarm.publishers.ports import DEFAULT_RANGE, ports_dir, reserve_ports

# A narrow candidate range, so that unlocked picks would surely collide.
CANDIDATES = DEFAULT_RANGE[-60:]
PER_PROCESS = 20

# Reserves once told to go (stdin line), prints its ports, holds them until stdin closes.
HOLDER = f"""
import sys
from pathlib import Path
from simfarm.publishers.ports import reserve_ports
sys.stdin.readline()
reservation = reserve_ports({PER_PROCESS}, directory=Path(sys.argv[1]), candidates=range(*map(int, sys.argv[2:4])))
print(*reservation.ports, flush=True)
sys.stdin.read()
"""


def start_holder(directory: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(directory), str(CANDIDATES.start), str(CANDIDATES.stop)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_two_processes_reserving_at_once_get_disjoint_ports(tmp_path: Path) -> None:
    holders = [start_holder(tmp_path) for _ in range(2)]
    try:
        for holder in holders:  # both are started before either may go
            assert holder.stdin is not None
            holder.stdin.write("go\n")
            holder.stdin.flush()
        first, second = ({int(port) for port in holder.stdout.readline().split()}  # type: ignore[union-attr]
                         for holder in holders)
        assert len(first) == len(second) == PER_PROCESS
        assert not first & second
        assert first | second <= set(CANDIDATES)
        # While they hold them, this process gets none of theirs either.
        with reserve_ports(10, directory=tmp_path, candidates=CANDIDATES) as mine:
            assert not set(mine.ports) & (first | second)
    finally:
        for holder in holders:
            holder.communicate(timeout=30)  # closes stdin: the holder exits
    # A process's reservations end with it.
    with reserve_ports(1, directory=tmp_path, candidates=sorted(first)[:1]) as again:
        assert again.ports == (sorted(first)[0],)


def test_a_reserved_port_is_not_given_twice_until_released(tmp_path: Path) -> None:
    with reserve_ports(1, directory=tmp_path, candidates=CANDIDATES) as held:
        port = held.ports[0]
        with pytest.raises(EnvironmentProblem, match="only 0 of 1"):
            reserve_ports(1, directory=tmp_path, candidates=[port])
        assert (tmp_path / f"{port}.lock").exists()
    assert not (tmp_path / f"{port}.lock").exists()
    with reserve_ports(1, directory=tmp_path, candidates=[port]) as again:
        assert again.ports == (port,)


def test_a_port_something_listens_on_is_skipped(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        with pytest.raises(EnvironmentProblem, match="only 0 of 1"):
            reserve_ports(1, directory=tmp_path, candidates=[busy])
    assert list(tmp_path.iterdir()) == []  # its lock file went with the failed attempt


def test_release_is_idempotent(tmp_path: Path) -> None:
    reservation = reserve_ports(2, directory=tmp_path, candidates=CANDIDATES)
    reservation.release()
    reservation.release()
    assert reservation.ports == ()
    assert list(tmp_path.iterdir()) == []


def test_reservations_are_machine_wide_not_per_farm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The per-test SIMFARM_STATE_DIR must not split reservations between xdist workers.
    before = ports_dir()
    monkeypatch.setenv("SIMFARM_STATE_DIR", str(tmp_path))
    assert ports_dir() == before
    monkeypatch.setenv("SIMFARM_PORTS_DIR", str(tmp_path / "ports"))
    assert ports_dir() == tmp_path / "ports"
