"""The two kinds of failure a user can act on, and the exit codes they map to.

Every error simfarm raises on purpose is one of these; the CLI prints the
message as one line and exits with the class's code.
"""

from __future__ import annotations


class SimfarmError(Exception):
    """Base class: a failure with a one-line message meant for the user."""

    exit_code = 1


class BadInput(SimfarmError):
    """The user asked for something invalid (exit code 2). Nothing was changed."""

    exit_code = 2


class EnvironmentProblem(SimfarmError):
    """The machine lacks something simfarm needs (exit code 1).

    ``remedy`` is the one command (or step) that fixes it; it is appended to
    the message so the user sees the fix on the same line.
    """

    exit_code = 1

    def __init__(self, message: str, remedy: str | None = None) -> None:
        self.remedy = remedy
        super().__init__(f"{message} (fix: {remedy})" if remedy else message)


class InUse(EnvironmentProblem):
    """Something simfarm made (a node, a module) cannot go yet: readers hold it open.

    ``pids`` are the holders simfarm can see; the thing stays recorded, so a
    later teardown finishes the job.
    """

    def __init__(self, what: str, pids: list[int]) -> None:
        self.pids = pids
        who = ", ".join(map(str, pids)) if pids else "processes simfarm cannot see"
        super().__init__(f"{what} is still open (pids: {who})",
                         "close the readers, then run `simfarm teardown` again")
