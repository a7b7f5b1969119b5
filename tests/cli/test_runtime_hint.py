"""The runtime's hint for a bundle without an engine names the real command, ``edge-se build``."""

from __future__ import annotations

import argparse

import pytest

from edge_se.cli import build_parser
from edge_se.errors import BundleError


def test_missing_engine_hint_names_edge_se_build(digits_bundle_src, monkeypatch):
    from edge_se.runtime import source

    monkeypatch.setattr(source, "_require", lambda kind: None)  # as if TensorRT were installed
    with pytest.raises(BundleError) as e:
        source.resolve(digits_bundle_src, "tensorrt")
    msg = str(e.value)
    assert "'edge-se build BUNDLE --recipe RECIPE'" in msg and "build-engine" not in msg
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert "build" in sub.choices and "--recipe" in sub.choices["build"]._option_string_actions
