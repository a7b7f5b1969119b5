#!/usr/bin/env bash
# Real TensorRT builds in CI, without a GPU: every zoo model's FP32 ONNX and INT8 Q/DQ ONNX must
# parse and build through edge-se's strongly typed path with TensorRT for RTX.
#
#  1. In the main environment (torch, onnxruntime): export the zoo at a small resolution
#     (scripts/make_trt_test_models.py).
#  2. In a separate venv with tensorrt-rtx-cu12 (+ numpy, onnx, pillow, rich, pytest; no torch):
#     pytest tests/tensorrt -m trt_rtx against those files, with edge_se from this checkout.
#
# Env: PYTHON (main interpreter, default python3), TRT_RTX_VENV (default /tmp/edge-se-trt-rtx-venv,
# reused when present), EDGE_SE_TRT_MODELS (default: a fresh temp folder), TRT_TEST_SIZE (default 64).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${TRT_RTX_VENV:-/tmp/edge-se-trt-rtx-venv}"
if [ -n "${EDGE_SE_TRT_MODELS:-}" ]; then
  MODELS="$EDGE_SE_TRT_MODELS"
else  # a temp folder of ~2 GB of exported models: removed on exit
  MODELS="$(mktemp -d /tmp/edge-se-trt-models.XXXXXX)"
  trap 'rm -rf "$MODELS"' EXIT
fi
cd "$ROOT"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check tensorrt-rtx-cu12 "polygraphy>=0.53" numpy onnx pillow rich pytest "tritonclient[grpc]"
"$VENV/bin/python" -c "import tensorrt_rtx as t; print('TensorRT for RTX', t.__version__)"

if [ ! -f "$MODELS/models.json" ]; then
  "$PYTHON" scripts/make_trt_test_models.py "$MODELS" --size "${TRT_TEST_SIZE:-64}"
fi

EDGE_SE_TRT_MODELS="$MODELS" PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
  "$VENV/bin/python" -m pytest tests/tensorrt -m trt_rtx -q -p no:cacheprovider "$@"
