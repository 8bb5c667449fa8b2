"""The ``normrl`` console script: one subcommand per module of :mod:`normrl.commands`.

Errors are printed as one line, ``normrl <command>: error: ...``, never a traceback:
exit status 2 for what a user can fix on the command line (a bad flag value, a missing
file, an unknown name), 1 for a run that started and failed (divergence, a full disk);
the rule is in :mod:`normrl.commands._exit`.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from normrl import __version__
from normrl.commands._exit import CommandParser, run_command


def _command_modules():
    from normrl import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{commands.__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="normrl", description="Normalization and plasticity in continual and reinforcement learning.")
    parser.add_argument("--version", action="version", version=f"normrl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(run_command(f"normrl {args.command}", args._run, args) or 0)


if __name__ == "__main__":
    sys.exit(main())
