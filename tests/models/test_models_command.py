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


def test_the_static_catalog_matches_the_live_registry_row_by_row():
    """zoo.json is what `edge-se models` reads; regenerate it with `python -m edge_se.models.catalog`."""
    from edge_se.models.catalog import live_rows, rows

    assert rows() == live_rows()


def _modules_after(argv: list[str]) -> dict:
    import subprocess
    import sys

    code = ("import json, sys\nfrom edge_se.cli import main\n"
            f"try:\n    code = main({argv!r})\nexcept SystemExit as e:\n    code = e.code\n"
            "print(json.dumps({'code': code, 'torch': 'torch' in sys.modules, 'onnx': 'onnx' in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_models_and_every_help_answer_without_importing_torch():
    import pkgutil

    import edge_se.commands as pkg

    assert _modules_after(["models", "--json"]) == {"code": 0, "torch": False, "onnx": False}
    names = [m.name.replace("_", "-") for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
    assert len(names) >= 10
    for argv in [["--help"]] + [[n, "--help"] for n in names]:
        got = _modules_after(argv)
        assert got["code"] == 0 and not got["torch"], (argv, got)
