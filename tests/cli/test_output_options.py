"""-q/--quiet, --debug and --json: accepted before and after every command; --json gives one document."""

from __future__ import annotations

import argparse
import json

import pytest

from edge_se.cli import build_parser, main

FLAGS = ("--quiet", "--debug", "--json")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_takes_the_output_flags_with_suppressed_defaults():
    subs = _subparsers()
    assert {"validate", "build", "report", "export", "quantize", "clean"} <= set(subs)
    for name, sub in subs.items():
        for flag in FLAGS:
            action = sub._option_string_actions.get(flag)
            assert action is not None, f"{name} lacks {flag}"
            assert action.default is argparse.SUPPRESS, f"{name} {flag} would reset the top-level value"
        assert "-q" in sub._option_string_actions


@pytest.mark.parametrize("argv", [
    ["-q", "--json", "--debug", "models"],
    ["models", "--json", "-q", "--debug"],
    ["-q", "models", "--json", "--debug"],
    ["--debug", "models", "--quiet", "--json"],
])
def test_either_position_sets_the_flags_and_neither_clobbers_the_other(argv):
    args = build_parser().parse_args(argv)
    assert (args.quiet, args.debug, args.json) == (True, True, True)


def test_no_flag_means_all_off():
    args = build_parser().parse_args(["models"])
    assert (args.quiet, args.debug, args.json) == (False, False, False)


def test_models_json_before_and_after_give_the_same_single_document(capsys):
    assert main(["models", "digits", "--json", "-q"]) == 0
    after = capsys.readouterr()
    assert main(["-q", "--json", "models", "digits"]) == 0
    before = capsys.readouterr()
    assert json.loads(after.out) == json.loads(before.out)
    assert {r["name"] for r in json.loads(after.out)} >= {"se_digits"}
    assert after.err == before.err == ""


def test_a_failure_with_json_still_gives_one_json_document_and_one_error_line(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "missing"), "--json"]) == 2
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["ok"] is False and doc["exit_code"] == 2 and doc["command"] == "validate"
    assert err.strip().count("\n") == 0 and err.startswith("edge-se validate: error:")


def test_python_m_edge_se_is_the_same_command_line():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "edge_se", "models", "digits", "--json", "-q"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert any(row["name"] == "se_digits" for row in json.loads(r.stdout))


def test_the_readme_tour_parses_with_todays_options():
    import re
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    tour = readme.split("## A tour", 1)[1].split("```", 2)[1]
    lines = [ln.split("  #", 1)[0].strip() for ln in tour.splitlines() if ln.strip().startswith("edge-se ")]
    assert len(lines) > 10
    parser = build_parser()
    for line in lines:
        argv = shlex.split(re.sub(r"\s+#.*$", "", line))[1:]
        parser.parse_args(argv)  # SystemExit (a usage error) fails the test


def test_no_command_ignores_json():
    """Each command module reads args.json (a cheap guard: a new command must decide what --json prints)."""
    import inspect

    from edge_se.cli import _command_modules

    for mod in _command_modules():
        assert "args.json" in inspect.getsource(mod), f"edge-se {mod.NAME} ignores --json"
