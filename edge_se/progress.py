"""Progress and notes of long stages, reported through the ``edge_se`` logger.

Library code calls :func:`info`, :func:`stage` and :func:`track`. They log to
``logging.getLogger("edge_se")`` and show nothing unless logging is configured (Python's
last-resort handler shows WARNING and above only, and notes are INFO). The command line installs
:class:`ConsoleHandler` (rich, on stderr, so stdout stays parseable) with :func:`cli_output`;
spinners and progress bars are drawn only then, on a terminal.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Iterator, Sequence, TypeVar

from rich.console import Console
from rich.errors import MarkupError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

T = TypeVar("T")

logger = logging.getLogger("edge_se")
#: where the command line's handler writes; follows ``sys.stderr`` (pytest and notebooks swap it)
console = Console(stderr=True, highlight=False)
_silenced = False
_cli_active = False
_live = 0  # spinners/bars drawn now: rich draws one at a time, so an inner stage only logs


class ConsoleHandler(logging.Handler):
    """One unwrapped rich line on stderr per record (a note's markup kept; warnings marked)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = getattr(record, "markup", None)
            if text is None:
                text = escape(self.format(record))
                if record.levelno >= logging.WARNING:
                    text = f"[yellow]{record.levelname.lower()}[/yellow]: {text}"
            console.print(text, soft_wrap=True)
        except Exception:  # never let output break a stage
            self.handleError(record)


@contextlib.contextmanager
def cli_output(quiet: bool = False, debug: bool = False) -> Iterator[ConsoleHandler]:
    """The command line's output for the duration: a :class:`ConsoleHandler` on the ``edge_se``
    logger at INFO (WARNING with ``quiet``, DEBUG with ``debug``); restored afterwards."""
    global _silenced, _cli_active
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler = ConsoleHandler(level)
    saved = (logger.level, logger.propagate, _silenced, _cli_active)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # the console is the output; a root handler would print it twice
    _silenced, _cli_active = False, True
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.level, logger.propagate, _silenced, _cli_active = saved


def set_quiet(quiet: bool) -> None:
    """Silence notes and stage lines whatever the logging configuration (tests, batch jobs)."""
    global _silenced
    _silenced = quiet


def enabled() -> bool:
    """True when a note would reach a handler (not silenced, the logger enabled for INFO)."""
    return not _silenced and logger.isEnabledFor(logging.INFO)


def info(message: str) -> None:
    """One note line (rich markup allowed), logged at INFO as plain text; the CLI shows the markup."""
    if not enabled():
        return
    try:
        plain = Text.from_markup(message).plain
    except MarkupError:
        plain = message
    logger.info(plain, extra={"markup": message})


def _animate() -> bool:
    return _cli_active and enabled() and console.is_terminal and _live == 0


@contextlib.contextmanager
def _drawing() -> Iterator[None]:
    global _live
    _live += 1
    try:
        yield
    finally:
        _live -= 1


@contextlib.contextmanager
def stage(title: str) -> Iterator[dict]:
    """Show a spinner while a stage runs (command line, terminal), then log one line with its duration.

    Yields a dict; a stage may set ``"detail"`` to add a note to the closing line.
    """
    state: dict = {}
    t0 = time.perf_counter()
    if _animate():
        with _drawing(), console.status(f"{title} ..."):
            yield state
    else:
        yield state
    detail = f" - {state['detail']}" if state.get("detail") else ""
    info(f"[green]done[/green] {title} ({time.perf_counter() - t0:.1f} s){detail}")


def track(items: Sequence[T], description: str) -> Iterator[T]:
    """Iterate with a progress bar (count, elapsed) on the command line's terminal."""
    if not _animate():
        yield from items
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with _drawing(), Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(description, total=len(items))
        for item in items:
            yield item
            progress.advance(task)


def is_interactive() -> bool:
    return sys.stderr.isatty()
