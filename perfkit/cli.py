"""The ``perfkit`` command: ``layers``, ``metrics``, ``demo``, ``serve``, ``sweep``, ``calibrate``, ...

Each sub-command lives in the module that owns its work and exposes ``register(subparsers)``; this file
only assembles them and turns :class:`PerfkitError` into a one-line message and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import PerfkitError

#: Modules that add sub-commands (each defines ``register(subparsers)``).
COMMAND_MODULES = ("perfkit.cli_core", "perfkit.demo", "perfkit.server.cli", "perfkit.sweeps.cli",
                   "perfkit.calibration.cli", "perfkit.figures", "perfkit.planner.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perfkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("perfkit"):
                continue  # that part of perfkit is not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PerfkitError as exc:
        print(f"perfkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
