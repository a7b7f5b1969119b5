"""``edge-se models``: the zoo listing on the command line."""

from __future__ import annotations

import json

from edge_se.cli import main


def test_models_json_lists_matching_models_with_params(capsys):
    assert main(["models", "se_resnet1*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["se_resnet18", "se_resnet101", "se_resnet152"]
    first = rows[0]
    assert first["attention_type"] == "se" and first["default_input_shape"] == [1, 3, 224, 224]
    assert 11_000_000 < first["params"] < 12_000_000


def test_models_table_shows_name_attention_shape_and_millions(capsys):
    assert main(["models", "digits"]) == 0
    out = capsys.readouterr().out
    assert "se_digits" in out and "1x1x32x32" in out and "0.07" in out


def test_models_with_no_match_says_so_and_succeeds(capsys):
    assert main(["models", "no_such_model"]) == 0
    assert "no zoo model matches 'no_such_model'" in capsys.readouterr().out
