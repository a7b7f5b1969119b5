"""Library code reports through ``logging.getLogger("edge_se")``; only the CLI installs a (rich, stderr) handler."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from edge_se import progress
from edge_se.cli import main


@pytest.fixture
def unsilenced(monkeypatch):
    """Undo the suite's ``progress.set_quiet(True)`` and any logging set-up, as in a fresh interpreter."""
    logger = logging.getLogger("edge_se")
    monkeypatch.setattr(progress, "_silenced", False)
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "level", logging.NOTSET)
    monkeypatch.setattr(logger, "propagate", True)
    monkeypatch.setattr(logging.getLogger(), "level", logging.WARNING)
    logger.manager._clear_cache()
    yield logger
    logger.manager._clear_cache()


def _npy_calibration(tmp_path):
    """A cheap library call that logs a note (calibrating on a .npy of preprocessed tensors)."""
    from edge_se.calibration.build import calibration_from
    from edge_se.preprocess import PreprocessSpec

    spec = PreprocessSpec.from_dict({"crop": [32, 32], "resize": None, "color": "GRAY", "mean": [0.5], "std": [0.5]})
    np.save(tmp_path / "x.npy", np.zeros((4, 1, 32, 32), np.float32))
    return calibration_from(tmp_path / "x.npy", tmp_path, preprocessing=spec)


def test_a_library_call_prints_nothing_unless_logging_is_configured(unsilenced, tmp_path, capfd):
    # INFO notes stay below Python's last-resort handler (WARNING), so nothing reaches either stream
    with progress.stage("a library stage"):
        progress.info("[yellow]note[/yellow]: something")
    assert _npy_calibration(tmp_path).count == 4
    assert capfd.readouterr() == ("", "")


def test_notes_are_plain_text_records_of_the_edge_se_logger(unsilenced, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="edge_se"):
        _npy_calibration(tmp_path)
        progress.info("[yellow]note[/yellow]: kept [green]x[/green]")
    messages = [r.getMessage() for r in caplog.records if r.name == "edge_se"]
    assert any(m.startswith("calibrating on the 4 preprocessed tensors") for m in messages)
    assert "note: kept x" in messages  # markup is for the CLI's console only


def test_the_cli_handler_respects_quiet_and_debug_and_is_removed_afterwards(unsilenced, capsys):
    with progress.cli_output():
        progress.info("[yellow]note[/yellow]: shown")
        unsilenced.debug("hidden debug")
    assert capsys.readouterr().err == "note: shown\n"
    with progress.cli_output(quiet=True):
        progress.info("hidden note")
        unsilenced.warning("a warning")
    assert capsys.readouterr().err == "warning: a warning\n"
    with progress.cli_output(debug=True):
        unsilenced.debug("a [debug] line")
    assert capsys.readouterr().err == "a [debug] line\n"
    assert unsilenced.handlers == [] and unsilenced.level == logging.NOTSET and unsilenced.propagate
    progress.info("after the CLI")
    assert capsys.readouterr() == ("", "")


def test_the_cli_shows_stage_lines_on_stderr_and_quiet_hides_them(unsilenced, small_calib_spec, tmp_path, capsys):
    assert main(["calibrate", str(small_calib_spec), "--out", str(tmp_path / "a"), "--count", "4"]) == 0
    out, err = capsys.readouterr()
    assert "done calibration set" in err and "calibration set" in out
    assert main(["calibrate", str(small_calib_spec), "--out", str(tmp_path / "b"), "--count", "4", "-q"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "calibration set" in out


def test_a_stage_inside_a_stage_on_a_terminal_logs_instead_of_a_second_spinner(unsilenced, monkeypatch):
    # rich draws one live display at a time (a second raises LiveError); the matrix runs the
    # quantize stage, with its own stages, inside its "Preparing the artifacts" stage
    import io

    from rich.console import Console

    out = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=out, force_terminal=True, width=200))
    with progress.cli_output():
        with progress.stage("outer"):
            with progress.stage("inner"):
                for _ in progress.track([1, 2], "bar inside"):
                    pass
    from rich.text import Text

    text = Text.from_ansi(out.getvalue()).plain
    assert "done inner" in text and "done outer" in text
    assert progress._live == 0
