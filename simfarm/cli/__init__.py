"""The `simfarm` command: a thin layer over the Python API.

Each command group lives in its own module exposing ``register(subparsers)``,
which adds a parser whose ``run`` default takes the parsed namespace and
returns an exit code; ``commands.COMMANDS`` says which module registers which
command and gives each its one-line help. Errors derived from SimfarmError
become one line on stderr and the error's exit code; a reader that stops
reading (``simfarm status --json | head -1``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import BadInput, SimfarmError
from .commands import COMMANDS

# What a shell reports for a writer whose reader went away: 128 + SIGPIPE, as for `yes | head -1`.
EXIT_BROKEN_PIPE = 141


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadInput(f"{self.prog}: {message}")

    def format_help(self) -> str:
        # An epilog may be a function: text that needs heavy imports (the fault
        # catalogue) is made only when help is shown, not for every run.
        if callable(self.epilog):
            self.epilog = self.epilog()
        return super().format_help()


class _Commands(argparse._SubParsersAction):
    """The top-level subparsers: each command gets its one-line help from ``COMMANDS``."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return super().add_parser(name, help=COMMANDS[name][1], **kwargs)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the full parsers of ``command``'s module and no others.

    When ``command`` is None or unknown every command gets a stub parser
    that only names it, so `simfarm --help` and the error for a mistyped
    command list them all; `simfarm status` imports only status_cmd and
    builds only its parsers (each parser costs argparse a few gettext
    lookups on the filesystem: stubs for the other commands took a quarter
    of what `status` does after its imports).
    """
    parser = _Parser(prog="simfarm", description="Fake camera farm for hardware-in-the-loop tests.")
    parser.register("action", "commands", _Commands)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, action="commands")
    if command in COMMANDS:
        importlib.import_module(f".{COMMANDS[command][0]}", __name__).register(sub)
    else:
        for name in COMMANDS:
            sub.add_parser(name, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    # The command is the first word: the top-level parser has no options but --help.
    command = next((word for word in args_in if not word.startswith("-")), None)
    try:
        args = build_parser(command).parse_args(args_in)
        code = int(args.run(args) or 0)
        # Here, not at exit: output to a pipe is buffered, and a write that fails
        # while the interpreter shuts down can no longer be handled quietly.
        sys.stdout.flush()
        return code
    except SimfarmError as exc:
        print(f"simfarm: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Python ignores SIGPIPE, so a closed reader shows up as this error; one from another
        # pipe (an FFmpeg that died under a producer) is a real failure and keeps its traceback.
        if not _stdout_reader_gone():
            raise
        # What is left in stdout's buffer must go nowhere, or flushing it at exit raises again
        # (the recipe in the Python docs' "Note on SIGPIPE", signal module).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _stdout_reader_gone() -> bool:
    """stdout is a pipe or socket whose reader has closed it (the kernel reports POLLERR, or POLLHUP)."""
    import select

    poller = select.poll()
    poller.register(sys.stdout.fileno(), select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
