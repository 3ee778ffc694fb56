"""``python -m hivemind_core`` — one entry, subcommands from their feature packages.

Each module in :data:`COMMAND_MODULES` has ``register(subparsers)`` that adds
its commands and sets ``func`` (called with the parsed args, returns the exit
code). Errors meant for users (:class:`HiveMindError`) print one line and exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from hivemind_core.errors import HiveMindError
from hivemind_core.jobs.names import printable

# Feature packages add their CLI module here.
COMMAND_MODULES: list[str] = []
COMMAND_MODULES.append("hivemind_core.vpn.cli")
COMMAND_MODULES.append("hivemind_core.tasks.cli")  # submit, status, list, cancel, result, nodes

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hivemind_core", description="HiveMind Master command line."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HiveMindError as exc:
        print(f"error: {printable(exc, keep_newlines=True)}", file=sys.stderr)   # may quote user text
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
