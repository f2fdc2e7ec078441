"""The `simfarm` command: a thin layer over the Python API.

Each command group lives in its own module exposing ``register(subparsers)``,
which adds a parser whose ``run`` default takes the parsed namespace and
returns an exit code. Errors derived from SimfarmError become one line on
stderr and the error's exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import BadInput, SimfarmError
from . import commands


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadInput(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="simfarm", description="Fake camera farm for hardware-in-the-loop tests.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in commands.ALL:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args) or 0)
    except SimfarmError as exc:
        print(f"simfarm: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
