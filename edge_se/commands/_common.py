"""Option types shared by the sub-commands (one spelling for each kind of value)."""

from __future__ import annotations

import argparse


def trt_version_arg(text: str) -> str:
    """argparse type of a TensorRT version option: dotted (``10.3``, ``8.6.1``); the legacy header
    number (``8601``) is accepted and normalized to ``8.6.1``. Returns the dotted text."""
    from edge_se.errors import InputError
    from edge_se.tensorrt.versions import format_version, parse_version_option

    try:
        return format_version(parse_version_option(text))
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
