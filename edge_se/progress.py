"""Progress and console output for long stages (rich, on stderr so stdout stays parseable)."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterator, Sequence, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

T = TypeVar("T")

console = Console(stderr=True, highlight=False)
_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence stage messages (errors are still printed by the command line)."""
    global _quiet
    _quiet = quiet


def info(message: str) -> None:
    """One informational line on stderr (never wrapped: logs keep it on one line)."""
    if not _quiet:
        console.print(message, soft_wrap=True)


@contextlib.contextmanager
def stage(title: str) -> Iterator[dict]:
    """Show a spinner while a stage runs, then one line with its duration.

    Yields a dict; a stage may set ``"detail"`` to add a note to the closing line.
    """
    state: dict = {}
    t0 = time.perf_counter()
    if _quiet or not console.is_terminal:
        yield state
    else:
        with console.status(f"{title} ..."):
            yield state
    if not _quiet:
        dt = time.perf_counter() - t0
        detail = f" - {state['detail']}" if state.get("detail") else ""
        console.print(f"[green]done[/green] {title} ({dt:.1f} s){detail}")


def track(items: Sequence[T], description: str) -> Iterator[T]:
    """Iterate with a progress bar (count, elapsed) when stderr is a terminal."""
    if _quiet or not console.is_terminal:
        yield from items
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(description, total=len(items))
        for item in items:
            yield item
            progress.advance(task)


def is_interactive() -> bool:
    return sys.stderr.isatty()
