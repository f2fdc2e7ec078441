"""Building the VM run: environment, shared directories, the vng command
(checked against vng's own parser with --dry-run), and refusals."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from simfarm.errors import BadInput, EnvironmentProblem
from simfarm.vm import kernel, runner
from simfarm.vm.accel import Accel
from simfarm.vm.network import Forward

TCG = Accel("tcg", "test")
KVM = Accel("kvm", "test")


def test_guest_env_keeps_what_commands_need() -> None:
    env = runner.guest_env({"PATH": "/root/.pyenv/shims:/usr/bin", "PYTHONPATH": "/src",
                            "SIMFARM_STATE_DIR": "/s", "PWD": "/host", "XDG_RUNTIME_DIR": "/run/user/0",
                            "SSH_AUTH_SOCK": "/tmp/agent", "SIMFARM_VM_ACCEL": "kvm",
                            "PYTHONDONTWRITEBYTECODE": "1"}, TCG)
    assert env == {"PATH": "/root/.pyenv/shims:/usr/bin", "PYTHONPATH": "/src", "SIMFARM_STATE_DIR": "/s",
                   "SIMFARM_IN_VM": "1", "SIMFARM_VM_ACCEL": "tcg"}


def test_shared_dirs_put_cwd_first_once(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    (tmp_path / "link").symlink_to(tmp_path)
    dirs = runner.shared_dirs(tmp_path, [tmp_path / "reports", tmp_path / "link", tmp_path])
    assert dirs == [tmp_path.resolve(), (tmp_path / "reports").resolve()]


@pytest.mark.parametrize("name", ["with space", "quote'd", "dollar$x"])
def test_paths_vng_would_mangle_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    with pytest.raises(BadInput, match="virtme-ng cannot pass"):
        runner.shared_dirs(tmp_path / name, [])


def test_root_and_missing_dirs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="refusing"):
        runner.shared_dirs(tmp_path, [Path("/")])
    with pytest.raises(BadInput, match="not a directory"):
        runner.shared_dirs(tmp_path, [tmp_path / "missing"])


def command(accel: Accel, tmp_path: Path, home: Path = Path("/root")) -> list[str]:
    return runner.vng_command("vng", Path("/boot/vmlinuz-6.1.0-56-amd64"), accel, cpus=2, memory="2G",
                              cwd=tmp_path, rwdirs=[tmp_path, Path("/srv")], home=home,
                              guest_argv=[sys.executable, "-I", "/x/guest.py", "/tmp/launch file.json"])


def test_vng_command_shares_dirs_and_picks_the_accelerator(tmp_path: Path) -> None:
    tcg = command(TCG, tmp_path)
    assert tcg[:3] == ["vng", "--run", "/boot/vmlinuz-6.1.0-56-amd64"]
    assert "--force-9p" in tcg and "--disable-kvm" in tcg
    assert tcg[tcg.index("--cwd") + 1] == str(tmp_path)
    assert [tcg[i + 1] for i, arg in enumerate(tcg) if arg == "--rwdir"] == [str(tmp_path), "/srv"]
    assert "--disable-kvm" not in command(KVM, tmp_path)


def test_home_is_made_writable_unless_vng_already_does(tmp_path: Path) -> None:
    root = command(TCG, tmp_path, home=Path("/root"))
    assert root[root.index("--overlay-rwdir") + 1] == "/root"
    assert "--overlay-rwdir" not in command(TCG, tmp_path, home=Path("/home/ci"))


def test_exec_string_round_trips_through_a_shell(tmp_path: Path) -> None:
    argv = command(TCG, tmp_path)
    assert shlex.split(argv[argv.index("--exec") + 1]) == [sys.executable, "-I", "/x/guest.py",
                                                           "/tmp/launch file.json"]


def test_no_network_unless_asked(tmp_path: Path) -> None:
    assert not any("netdev" in arg or "virtme.dhcp" in arg for arg in command(TCG, tmp_path))


def test_net_and_forwards_make_one_user_nic_with_dhcp(tmp_path: Path) -> None:
    argv = runner.vng_command("vng", Path("/boot/vmlinuz"), TCG, cpus=2, memory="2G", cwd=tmp_path, rwdirs=[],
                              home=Path("/root"), guest_argv=["true"], net=True,
                              forwards=[Forward.parse("13240:3240"), Forward.parse("0.0.0.0:8080:80")])
    nics = [arg for arg in argv if "-netdev" in arg]
    assert nics == ["--qemu-opts=-netdev user,id=simfarm0,hostfwd=tcp:127.0.0.1:13240-:3240,"
                    "hostfwd=tcp:0.0.0.0:8080-:80 -device virtio-net-pci,netdev=simfarm0"]
    assert "virtme.dhcp net.ifnames=0 biosdevname=0" in argv
    only_forward = runner.vng_command("vng", Path("/boot/vmlinuz"), TCG, cpus=2, memory="2G", cwd=tmp_path,
                                      rwdirs=[], home=Path("/root"), guest_argv=["true"],
                                      forwards=[Forward.parse("13240:3240")])
    assert any("hostfwd=tcp:127.0.0.1:13240-:3240" in arg for arg in only_forward)


@pytest.mark.parametrize("text", ["3240", "a:1:2", "0:3240", "13240:70000", "1:2:3:4"])
def test_bad_forwards_are_refused(text: str) -> None:
    with pytest.raises(BadInput, match="--forward"):
        Forward.parse(text)


@pytest.mark.parametrize("kwargs, message", [
    ({"cpus": 0}, "--cpus"), ({"memory": "lots"}, "--memory"), ({"memory": "0G"}, "--memory")])
def test_bad_sizes_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        runner.run_in_vm(["true"], **kwargs)


def test_empty_command_is_refused() -> None:
    with pytest.raises(BadInput, match="no command"):
        runner.run_in_vm([])


def test_missing_vng_names_the_setup_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EnvironmentProblem) as info:
        runner.run_in_vm(["true"], cwd=tmp_path)
    assert info.value.remedy == kernel.SETUP_REMEDY == "sudo scripts/setup-vm.sh"


def _bootable() -> kernel.GuestKernel | None:
    try:
        return kernel.find()
    except EnvironmentProblem:
        return None


@pytest.mark.skipif(not shutil.which("vng") or _bootable() is None,
                    reason="needs virtme-ng and a kernel with v4l2loopback (sudo scripts/setup-vm.sh)")
@pytest.mark.parametrize("accel", [TCG, KVM], ids=["tcg", "kvm"])
def test_vng_accepts_the_command(tmp_path: Path, accel: Accel) -> None:
    guest = _bootable()
    assert guest is not None
    argv = runner.vng_command(shutil.which("vng") or "vng", guest.image, accel, cpus=2, memory="1G",
                              cwd=tmp_path, rwdirs=[tmp_path], home=Path("/root"), guest_argv=["true"],
                              forwards=[Forward.parse("13240:3240")])
    env = {**os.environ, "PATH": f"{os.path.dirname(argv[0])}:{os.environ['PATH']}"}
    done = subprocess.run([argv[0], "--dry-run", *argv[1:]], check=False, capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    qemu = done.stdout + done.stderr
    assert f"path={tmp_path},security_model=none" in qemu  # the rwdir, over 9p
    assert ("-cpu max" in qemu) == (accel.name == "tcg")  # virtme-ng uses -cpu host with KVM
    assert "=/root " in qemu  # $HOME as a guest-private overlay
    assert "-netdev user,id=simfarm0,hostfwd=tcp:127.0.0.1:13240-:3240 -device virtio-net-pci" in qemu
    assert "virtme.dhcp" in qemu


def test_guest_script_runs_the_command_with_the_launch_env(tmp_path: Path) -> None:
    launch = {"argv": ["sh", "-c", 'echo "$FOO $(pwd)"; exit 3'], "cwd": str(tmp_path),
              "env": {"FOO": "from-launch", "PATH": os.environ["PATH"]}}
    done = _exec_in_guest_script(launch, tmp_path)
    assert (done.returncode, done.stdout) == (3, f"from-launch {tmp_path}\n")


def test_guest_script_reports_a_missing_command(tmp_path: Path) -> None:
    launch = {"argv": ["no-such-command-here"], "cwd": str(tmp_path), "env": {"PATH": str(tmp_path)}}
    done = _exec_in_guest_script(launch, tmp_path)
    assert done.returncode == 127 and "no-such-command-here: command not found" in done.stderr


def _exec_in_guest_script(launch: dict, cwd: Path) -> subprocess.CompletedProcess:
    # As in the guest: the file by path, isolated (-I), with nothing of simfarm importable.
    code = ("import json, runpy, sys; g = runpy.run_path(sys.argv[1]); "
            "sys.exit(g['exec_command'](json.loads(sys.argv[2])))")
    return subprocess.run([sys.executable, "-I", "-c", code, str(runner.GUEST_SCRIPT), json.dumps(launch)],
                          check=False, capture_output=True, text=True, cwd=cwd, timeout=30)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_terminated_runner_ends_the_whole_vm_session(tmp_path: Path, signum: int) -> None:
    """vng runs QEMU as a grandchild in a session of its own: terminating `simfarm vm`
    must end it too. A FIFO held open by the stand-in's shell and its background
    child reads EOF exactly when both have gone."""
    fifo = tmp_path / "held"
    os.mkfifo(fifo)
    held = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    stand_in = ["sh", "-c", f"exec 3>{fifo}; sleep 300 & echo $$; wait"]
    code = f"import os, sys; from simfarm.vm import runner; sys.exit(-runner._run_relayed({stand_in!r}, os.environ))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert proc.stdout is not None
    group = int(proc.stdout.readline())  # the stand-in's shell leads its session, as vng does
    try:
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == signum  # the stand-in died of the signal passed on
        readable, _, _ = select.select([held], [], [], 60)
        assert readable and os.read(held, 1) == b"", "the stand-in's session outlived the runner"
    finally:
        os.close(held)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        proc.kill()
        proc.wait()
