"""A CommandProtocol that runs commands on this machine, for the example only: here the DUT is the
machine the tests run on, and labgrid has no local shell driver (its ShellDriver needs a console,
its SSHDriver an SSH server)."""

from __future__ import annotations

import subprocess

import attr
from labgrid.driver.commandmixin import CommandMixin
from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.protocol import CommandProtocol


@target_factory.reg_driver
@attr.s(eq=False)
class LocalCommandDriver(CommandMixin, Driver, CommandProtocol):
    """Runs each command with ``sh -c`` here; answers as ShellDriver does (stdout lines, stderr lines,
    exit code)."""

    bindings: dict = {}

    @Driver.check_active
    def run(self, cmd: str, *, timeout: float = 30.0, codec: str = "utf-8",
            decodeerrors: str = "strict") -> tuple[list[str], list[str], int]:
        return self._run(cmd, timeout=timeout, codec=codec, decodeerrors=decodeerrors)

    def _run(self, cmd: str, *, timeout: float = 30.0, codec: str = "utf-8",
             decodeerrors: str = "strict") -> tuple[list[str], list[str], int]:
        done = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=timeout, check=False)
        return (done.stdout.decode(codec, decodeerrors).splitlines(),
                done.stderr.decode(codec, decodeerrors).splitlines(), done.returncode)

    @Driver.check_active
    def get_status(self) -> int:
        return 1
