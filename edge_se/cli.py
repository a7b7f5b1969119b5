"""The ``edge-se`` command line: a thin layer over the stage functions.

Each sub-command lives in ``edge_se/commands/<name>.py`` and defines ``NAME``, ``HELP``,
``EXAMPLES``, ``ORDER``, ``add_arguments(parser)`` and ``run(args) -> int``. Command modules keep
heavy imports (torch, onnx, tensorrt) inside ``run`` so ``edge-se --help`` stays fast.

Conventions: ``-q``, ``--debug`` and ``--json`` go before or after COMMAND; results go to stdout
(with ``--json``, exactly one JSON document, also on failure), progress and notes to stderr through
the ``edge_se`` logger (:func:`edge_se.progress.cli_output`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
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
  4  internal error (a bug; run with --debug for the traceback and please report it), or an
     inference engine that failed while running valid input (TensorRT execution)
"""


def _command_modules() -> list[ModuleType]:
    import edge_se.commands as pkg

    mods = [importlib.import_module(f"edge_se.commands.{m.name}") for m in pkgutil.iter_modules(pkg.__path__)]
    mods = [m for m in mods if hasattr(m, "NAME") and hasattr(m, "run")]
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))


def _add_output_options(parser: argparse.ArgumentParser, default: object) -> None:
    """``-q/--quiet``, ``--debug`` and ``--json``: accepted before and after COMMAND."""
    g = parser.add_argument_group("output (before or after COMMAND)")
    g.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="no progress or notes on stderr (warnings and errors still shown)")
    g.add_argument("--debug", action="store_true", default=default,
                   help="debug log lines and full tracebacks on stderr")
    g.add_argument("--json", action="store_true", default=default,
                   help="one JSON document on stdout (progress and notes stay on stderr)")


#: the sub-commands' copy: SUPPRESS defaults, so a flag given before COMMAND is not reset by it
_OUTPUT_OPTIONS = argparse.ArgumentParser(add_help=False)
_add_output_options(_OUTPUT_OPTIONS, default=argparse.SUPPRESS)


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
    _add_output_options(parser, default=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        examples = getattr(mod, "EXAMPLES", "")
        p = sub.add_parser(
            mod.NAME,
            help=mod.HELP,
            description=getattr(mod, "DESCRIPTION", mod.HELP),
            epilog=(f"examples:\n{examples}\n\n" if examples else "") + EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[_OUTPUT_OPTIONS],
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

    with progress.cli_output(quiet=args.quiet, debug=args.debug):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args._run(args) or 0)
    except EdgeSEError as e:
        return _fail(args, f"error: {e}", e.exit_code)
    except BrokenPipeError:  # stdout closed early (``edge-se models --json | head``): not an error of ours
        sys.stdout = open(os.devnull, "w")
        return 141
    except KeyboardInterrupt:
        return _fail(args, "interrupted; every artifact is either published whole (with its manifest entry) or "
                     "not at all", 130, trace=False)
    except Exception as e:  # a bug: say so plainly, traceback on --debug
        return _fail(args, f"internal error: {type(e).__name__}: {e} (re-run with --debug for the traceback and "
                     "please report it)", 4)


def _fail(args: argparse.Namespace, message: str, code: int, trace: bool = True) -> int:
    """One error line on stderr (traceback first with --debug); with --json also a JSON error on stdout."""
    if trace and args.debug:
        traceback.print_exc()
    print(f"edge-se {args.command}: {message}", file=sys.stderr)
    if args.json:
        with contextlib.suppress(OSError):
            print(json.dumps({"command": args.command, "ok": False, "exit_code": code, "error": message}))
    return code


if __name__ == "__main__":
    sys.exit(main())
