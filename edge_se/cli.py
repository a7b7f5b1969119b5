"""The ``edge-se`` command line: a thin layer over the stage functions.

Each sub-command lives in ``edge_se/commands/<name>.py`` and defines ``NAME``, ``HELP``,
``EXAMPLES``, ``ORDER``, ``add_arguments(parser)`` and ``run(args) -> int``. Command modules keep
heavy imports (torch, onnx, tensorrt) inside ``run`` so ``edge-se --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from types import ModuleType

from edge_se import __version__
from edge_se.errors import EdgeSEError

EXIT_CODES = """exit codes:
  0  success
  1  a check failed (numerics, accuracy, integrity)
  2  bad input or usage (model name, file, shape, option, bundle)
  3  an optional dependency or device is missing (the message names the extra to install)
  4  internal error (a bug; run with --debug for the traceback and please report it)
"""


def _command_modules() -> list[ModuleType]:
    import edge_se.commands as pkg

    mods = [importlib.import_module(f"edge_se.commands.{m.name}") for m in pkgutil.iter_modules(pkg.__path__)]
    mods = [m for m in mods if hasattr(m, "NAME") and hasattr(m, "run")]
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (one sub-parser per command module)."""
    parser = argparse.ArgumentParser(
        prog="edge-se",
        description="Take attention-augmented CNNs from PyTorch to validated edge deployment bundles.",
        epilog="examples:\n  edge-se export se_resnet18 --input-shape 1x3x224x224 --out bundles/se18\n"
        "  edge-se validate bundles/se18\n  edge-se inspect bundles/se18\n\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edge-se {__version__}")
    parser.add_argument("--debug", action="store_true", help="print full tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        examples = getattr(mod, "EXAMPLES", "")
        p = sub.add_parser(
            mod.NAME,
            help=mod.HELP,
            description=getattr(mod, "DESCRIPTION", mod.HELP),
            epilog=(f"examples:\n{examples}\n\n" if examples else "") + EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``edge-se`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from edge_se import progress

    progress.set_quiet(args.quiet)
    try:
        return int(args._run(args) or 0)
    except EdgeSEError as e:
        if args.debug:
            traceback.print_exc()
        print(f"edge-se {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"edge-se {args.command}: interrupted; every artifact is either published whole (with its manifest "
              "entry) or not at all", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: say so plainly, traceback on --debug
        if args.debug:
            traceback.print_exc()
        print(
            f"edge-se {args.command}: internal error: {type(e).__name__}: {e} "
            "(re-run with --debug for the traceback and please report it)",
            file=sys.stderr,
        )
        return 4


if __name__ == "__main__":
    sys.exit(main())
