"""``edge-se build``: without TensorRT it fails with one line naming the extra to install."""

from __future__ import annotations

import pytest

from edge_se.cli import main
from edge_se.runtime.backends.probe import installed

# installed(), not find_spec(): under pytest's import mode, find_spec("tensorrt") finds the
# tests/tensorrt folder itself, and these tests never ran
needs_no_tensorrt = pytest.mark.skipif(installed("tensorrt"),
                                       reason="TensorRT is installed here; this checks the message when it is not")


@needs_no_tensorrt
def test_build_without_tensorrt_names_the_extra_on_one_line(tiny_bundle, capsys):
    code = main(["-q", "build", str(tiny_bundle.root), "--recipe", "export/jetson-orin-int8.toml"])
    err = capsys.readouterr().err.strip()
    assert code == 3
    assert err.count("\n") == 0 and "pip install 'edge-se[tensorrt]'" in err


@needs_no_tensorrt
def test_build_without_tensorrt_leaves_the_bundle_unchanged(tiny_bundle):
    before = (tiny_bundle.root / "manifest.json").read_bytes()
    main(["-q", "build", str(tiny_bundle.root), "--recipe", "export/desktop-fp16.toml"])
    assert (tiny_bundle.root / "manifest.json").read_bytes() == before
    assert not list(tiny_bundle.root.glob("*.engine"))


def test_bad_recipe_is_reported_before_anything_else(tiny_bundle, tmp_path, capsys):
    bad = tmp_path / "r.toml"
    bad.write_text('[model]\nspec = "x"\ninput_shape = [1, 3, 8, 8]\n[target]\nname = "desktop"\ntensorrt = ">=10"\n'
                   'dla_core = 0\n[precision]\nmode = "fp16"\n')
    assert main(["build", str(tiny_bundle.root), "--recipe", str(bad)]) == 2
    assert "target desktop has no DLA" in capsys.readouterr().err


def test_missing_calibration_set_option_path_is_refused(tiny_bundle, tmp_path, capsys):
    code = main(["build", str(tiny_bundle.root), "--recipe", "export/jetson-orin-int8.toml",
                 "--calibration-set", str(tmp_path / "none")])
    assert code == 2 and "--calibration-set" in capsys.readouterr().err


def test_compute_capability_without_tensorrt_rtx_is_refused(tiny_bundle, capsys, monkeypatch):
    monkeypatch.delenv("EDGE_SE_TENSORRT", raising=False)
    code = main(["build", str(tiny_bundle.root), "--recipe", "export/desktop-fp16.toml", "--compute-capability", "8.6"])
    assert code == 2 and "TensorRT for RTX only" in capsys.readouterr().err


def test_a_tensorrt_execution_failure_is_exit_4_not_bad_input(tiny_bundle, capsys, monkeypatch):
    """TensorRT failing on a valid input is not the user's input error (exit 2): exit 4, one line."""
    import ast
    import inspect

    from edge_se.errors import ExecutionError
    from edge_se.runtime.backends import tensorrt_runner as runner
    from edge_se.tensorrt import build

    # the runner raises it wherever execute_async_v2/v3 reports failure
    tree = ast.parse(inspect.getsource(runner))
    raised = [n.exc.func.id for n in ast.walk(tree) if isinstance(n, ast.Raise) and isinstance(n.exc, ast.Call)
              and isinstance(n.exc.func, ast.Name) and "execution failed" in ast.unparse(n.exc)]
    assert raised and set(raised) == {"ExecutionError"}

    def fails(*a, **k):
        raise ExecutionError("TensorRT execution failed: [E] an illegal memory access was encountered")

    monkeypatch.setattr(build, "build_bundle_engine", fails)
    capsys.readouterr()
    code = main(["-q", "build", str(tiny_bundle.root), "--recipe", "export/desktop-fp16.toml"])
    err = capsys.readouterr().err.strip()
    assert code == 4 and err.count("\n") == 0 and "internal error" not in err and "execution failed" in err
