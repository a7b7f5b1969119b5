"""Calibration sets: TOML specs -> preprocessed, sharded, hashed sample sets for INT8 calibration.

The API the quantization stage uses::

    from edge_se.calibration import calibration_from, check_matches
    calib = calibration_from("calibration/digits.toml", out_cache=cache)   # or a built set folder
    check_matches(calib, (1, 1, 32, 32), bundle_preprocessing)           # CalibrationError if not
    for batch in calib.batches(32): ...                                    # float32 N x C x H x W
"""

from edge_se.calibration.build import build_calibration_set, calibration_from
from edge_se.calibration.dataset import CalibrationSet, check_matches, load_calibration_set
from edge_se.calibration.spec import CalibSpec, load_spec, parse_spec

__all__ = [
    "CalibSpec",
    "CalibrationSet",
    "build_calibration_set",
    "calibration_from",
    "check_matches",
    "load_calibration_set",
    "load_spec",
    "parse_spec",
]
