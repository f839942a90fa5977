"""The perfkit command: layers, metrics, demo, serve, sweep, calibrate, ...

Each sub-command lives in the module that owns its work and exposes ``register(subparsers)``; this file
only assembles them, turns :class:`PerfkitError` into a one-line message and exit status 2, and ends
quietly when the reader of its output goes away (``perfkit hardware | head``).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import PerfkitError

#: Exit status when standard output was closed by its reader (128 + SIGPIPE, as a shell reports it).
BROKEN_PIPE = 141

#: Modules that add sub-commands (each defines ``register(subparsers)``).
COMMAND_MODULES = ("perfkit.cli_core", "perfkit.demo", "perfkit.server.cli", "perfkit.sweeps.cli",
                   "perfkit.calibration.cli", "perfkit.figures")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="perfkit", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"perfkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("perfkit"):
                continue  # that part of perfkit is not built yet
            raise
        module.register(sub)
    for command in sub.choices.values():
        _plain_help(command)
    return parser


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """Help is read in a terminal: the docstrings' reStructuredText ``code`` marks are dropped."""
    parser.description = parser.description and parser.description.replace("``", "")
    for action in parser._actions:
        if action.help:
            action.help = action.help.replace("``", "")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except PerfkitError as exc:
        print(f"perfkit: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader stopped reading (``| head``): no traceback; point stdout at devnull so that Python's
        # final flush does not raise again (the recipe of the signal module's documentation)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
