"""Finding mediamtx, reading its version, and stopping a server process so that nothing is left behind."""

from __future__ import annotations

import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from simfarm.errors import EnvironmentProblem
from simfarm.publishers.mediamtx import (Files, MediaMTX, Ports, Version, binary_version, build_config, find_binary,
                                        process, versions)
from simfarm.publishers.mediamtx.server import require_binary
from simfarm.publishers.mediamtx.binary import ENV, parse_version


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 1\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `mediamtx` on an otherwise empty PATH, and no $SIMFARM_MEDIAMTX."""
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    return executable(tmp_path / "bin" / "mediamtx")


def test_binary_comes_from_the_argument_then_the_environment_then_path(
        on_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_binary() == str(on_path)
    from_env = executable(tmp_path / "env" / "mediamtx")
    monkeypatch.setenv(ENV, str(from_env))
    assert find_binary() == str(from_env)
    explicit = executable(tmp_path / "arg" / "mtx")
    assert find_binary(str(explicit)) == str(explicit)


@pytest.mark.parametrize("where", ["argument", "environment", "path"])
def test_a_missing_binary_says_how_to_install_mediamtx(
        where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(ENV, str(tmp_path / "nope")) if where == "environment" else monkeypatch.delenv(ENV, False)
    with pytest.raises(EnvironmentProblem) as caught:
        find_binary(str(tmp_path / "nope") if where == "argument" else None)
    message = str(caught.value)
    assert "github.com/bluenviron/mediamtx/releases" in message
    assert "PATH" in message and ENV in message
    assert {"argument": "--mediamtx", "environment": f"${ENV}", "path": "PATH:"}[where] in message


def test_version_is_read_from_the_version_output() -> None:
    assert parse_version("v1.20.1\n") == Version(1, 20, 1)
    assert str(Version(1, 20, 1)) == "v1.20.1"
    with pytest.raises(EnvironmentProblem, match="cannot read a version"):
        parse_version("mediamtx dev build\n")


def test_a_binary_that_fails_its_version_check_is_an_environment_problem() -> None:
    with pytest.raises(EnvironmentProblem, match="--version failed"):
        binary_version("/bin/false")


def test_start_without_a_binary_is_an_environment_problem(on_path: Path, tmp_path: Path) -> None:
    on_path.unlink()
    with pytest.raises(EnvironmentProblem, match="mediamtx not found"):
        MediaMTX.start(tmp_path / "mtx", {})
    assert not (tmp_path / "mtx").exists()


# Like MediaMTX: ignores SIGINT (as a hung server would) and starts a "hook" in a process group of its own,
# which ignores SIGINT too; reports both pids through a FIFO, then waits.
SERVER = textwrap.dedent("""
    import signal, subprocess, sys, time
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    hook = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                             "signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)"], process_group=0)
    with open(sys.argv[1], "w") as fifo:
        fifo.write(f"{hook.pid}\\n")
    time.sleep(600)
""")


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie awaiting whatever reaps orphans here."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_stop_kills_a_hung_server_and_the_hooks_it_left_in_their_own_process_groups(tmp_path: Path) -> None:
    fifo = tmp_path / "pids"
    os.mkfifo(fifo)
    server = process.launch([sys.executable, "-c", SERVER, str(fifo)], cwd=tmp_path, output=tmp_path / "out",
                            env=os.environ)
    try:
        hook = int(fifo.read_text())  # blocks until the server has started its hook
        assert os.getpgid(hook) == hook != os.getpgid(server.pid)
        assert process.session_members(server.pid) == [hook]
        process.stop(server, timeout=0.2)
        assert server.returncode is not None
        assert process.session_members(server.pid) == []
        assert not alive(hook)
        process.stop(server, timeout=0.2)  # idempotent
    finally:
        if server.returncode is None:
            server.kill()
            server.wait()


def test_a_server_that_exits_by_itself_is_seen_and_reaped(tmp_path: Path) -> None:
    server = process.launch(["sh", "-c", "echo 'listen tcp 127.0.0.1:1: bind: address already in use'; exit 3"],
                            cwd=tmp_path, output=tmp_path / "out", env=os.environ)
    assert process.wait_exit(server, 30)
    assert server.returncode is None  # seen, not yet reaped: its pid still names its session
    process.stop(server, timeout=1)
    assert server.returncode == 3
    assert process.tail(tmp_path / "out") == "listen tcp 127.0.0.1:1: bind: address already in use"


def test_a_running_server_is_stopped_with_sigint(tmp_path: Path) -> None:
    server = process.launch(["sleep", "600"], cwd=tmp_path, output=tmp_path / "out", env=os.environ)
    assert not process.wait_exit(server, 0)
    process.stop(server, timeout=30)
    assert server.returncode == -2  # SIGINT


def test_tail_gives_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("".join(f"line {index}\n" for index in range(100)))
    assert process.tail(log, 3) == "line 97\nline 98\nline 99"
    assert process.tail(tmp_path / "missing") == ""


def test_launch_appends_output(tmp_path: Path) -> None:
    for word in ("one", "two"):
        server = process.launch(["echo", word], cwd=tmp_path, output=tmp_path / "out", env=os.environ)
        assert process.wait_exit(server, 30)
        process.stop(server, timeout=5)
    assert (tmp_path / "out").read_text() == "one\ntwo\n"


def stand_in(tmp_path: Path, behaviour: str, version: str = "v1.20.1") -> str:
    """A program answering ``--version`` as MediaMTX ``version`` and otherwise doing ``behaviour``:
    for what start() does when the server fails, not for anything MediaMTX itself does."""
    path = tmp_path / "bin" / "mediamtx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nif [ "$1" = --version ]; then echo {version}; exit 0; fi\n{behaviour}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_a_server_that_exits_at_start_fails_with_its_last_lines_and_leaves_nothing(tmp_path: Path) -> None:
    binary = stand_in(tmp_path, 'echo "ERR: json: unknown field \\"bogus\\""; exit 1')
    launched: list[int] = []
    with pytest.raises(EnvironmentProblem, match="exited with code 1") as caught:
        MediaMTX.start(tmp_path / "mtx", {}, binary=binary, on_launch=launched.append)
    assert 'unknown field "bogus"' in str(caught.value)
    assert len(launched) == 1 and not alive(launched[0])


def test_a_server_never_ready_is_stopped_with_its_log(tmp_path: Path) -> None:
    binary = stand_in(tmp_path, 'echo "still loading"; exec sleep 600')
    launched: list[int] = []
    with pytest.raises(EnvironmentProblem, match="not ready after 0.5s") as caught:
        MediaMTX.start(tmp_path / "mtx", {}, binary=binary, ready_timeout=0.5, on_launch=launched.append)
    assert "still loading" in str(caught.value)
    assert len(launched) == 1 and not alive(launched[0])


def test_a_version_below_the_supported_range_is_refused_naming_the_range() -> None:
    with pytest.raises(EnvironmentProblem, match=r"MediaMTX v1\.18\.2 is too old: simfarm supports 1\.19\.x to 1\.20\.x"):
        versions.check(Version(1, 18, 2))
    assert versions.check(Version(1, 19, 1)) is None and versions.check(Version(1, 20, 9)) is None


def test_a_newer_version_runs_with_the_newest_known_keys_after_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    binary = stand_in(tmp_path, "exit 0", version="v1.21.0")
    assert require_binary(binary) == (binary, Version(1, 21, 0))
    assert "warning: MediaMTX v1.21.0 is newer than simfarm knows (1.19.x to 1.20.x)" in capsys.readouterr().err
    config = build_config(Files(tmp_path), {}, Ports(20001, 20002), version=Version(1, 21, 0))
    assert config == build_config(Files(tmp_path), {}, Ports(20001, 20002), version=Version(1, 20, 1))
