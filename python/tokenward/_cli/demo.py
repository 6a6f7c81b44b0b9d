"""`tokenward demo`: the tour `make demo` runs, against an embedded DevIdP."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "run the verification tour against an embedded DevIdP"


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("demo", help=HELP, description=HELP + ".")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import run as tour

    return tour()
