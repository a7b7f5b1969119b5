"""``--labels FILE`` means class names (one per line) on every command; image ground truth is ``--ground-truth``."""

from __future__ import annotations

import argparse

from edge_se.cli import build_parser, main
from edge_se.commands.validate import _ground_truth, is_ground_truth


def _help(parser: argparse.ArgumentParser, cmd: str) -> str:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[cmd]._option_string_actions["--labels"].help


def test_every_labels_option_is_a_class_names_file():
    parser = build_parser()
    for cmd in ("export", "predict", "bench", "validate"):
        text = _help(parser, cmd)
        assert "one" in text and ("label per line" in text or "class names" in text), (cmd, text)
        assert "class_index" not in text and "path" not in text, (cmd, text)


def test_ground_truth_lines_are_told_from_class_names(tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text("path,label\ncats/a.jpg,0\ndogs/b.jpg,1\n")
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    assert is_ground_truth(truth) and not is_ground_truth(names)


def _args(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{"images": None, "labels": None, "ground_truth": None, **kw})


def test_ground_truth_feeds_the_matrix_labels(tmp_path):
    args = _args(images=str(tmp_path), ground_truth="truth.csv")
    _ground_truth(args)
    assert args.labels == "truth.csv"


def test_the_old_labels_spelling_for_ground_truth_still_works_with_one_note(tmp_path, capsys):
    from edge_se import progress

    truth = tmp_path / "truth.csv"
    truth.write_text("a.jpg,0\n")
    args = _args(images=str(tmp_path), labels=str(truth))
    with progress.cli_output():
        _ground_truth(args)
    assert args.labels == str(truth)
    assert capsys.readouterr().err.strip() == f"note: --labels {truth} (image,class-index lines) is deprecated; use --ground-truth FILE"


def test_ground_truth_needs_images_and_excludes_labels(tmp_path, capsys):
    assert main(["validate", str(tmp_path), "--ground-truth", str(tmp_path / "t.csv")]) == 2
    assert "--ground-truth needs --images" in capsys.readouterr().err
    assert main(["validate", str(tmp_path), "--images", str(tmp_path), "--ground-truth", "t.csv",
                 "--labels", "n.txt"]) == 2
    assert "drop --labels" in capsys.readouterr().err


def test_ground_truth_is_a_validate_option():
    args = build_parser().parse_args(["validate", "B", "--images", "d", "--ground-truth", "t.csv"])
    assert args.ground_truth == "t.csv" and args.labels is None
