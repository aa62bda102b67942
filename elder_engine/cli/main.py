"""Entry point of `python -m elder_engine` and the `elder` script: the parser and `main`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from ..errors import ElderError, cause_line
from .common import COMMANDS

DESCRIPTION = "Headless command line: `python -m elder_engine COMMAND ...`."


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, where to look), exit 2."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import adapter_cmd, bench_cmd, eval_cmd, history_cmd, sweep_cmd  # noqa: F401  (register their commands)

    parser = OneLineParser(prog="python -m elder_engine", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn in COMMANDS.items():
        p = sub.add_parser(name, help=(fn.__doc__ or "").strip().splitlines()[0])
        fn.configure(p)
        p.set_defaults(run=fn)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from .checks import check_args

        check_args(args)  # argument errors before any model loads
        return int(args.run(args) or 0)
    except ElderError as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as error:  # the environment (a file, the disk): the user's to fix, not a bug
        print(f"error: {cause_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:  # a bug: one line; ELDER_DEBUG=1 shows the traceback
        if os.environ.get("ELDER_DEBUG"):
            raise
        print(f"internal error: {cause_line(error)} (set ELDER_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
