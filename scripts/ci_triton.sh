#!/usr/bin/env bash
# A live Triton server in CI, on loopback, without a GPU: nvidia-pytriton's tritonserver (Python
# backend) serves a repository written by `edge-se export-triton --serve python`.
#
#  1. In the main environment (torch): export se_digits to a bundle (the export stage's own output).
#  2. In a separate venv with nvidia-pytriton + tritonclient[all] (pytriton pins NumPy 1.x) and
#     edge-se's runtime: pytest tests/serving -m triton_server against that bundle.
#
# Env: PYTHON (main interpreter, default python3), TRITON_VENV (default /tmp/edge-se-triton-venv,
# reused when present).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${TRITON_VENV:-/tmp/edge-se-triton-venv}"
WORK="$(mktemp -d /tmp/edge-se-triton-ci.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"
start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check nvidia-pytriton "tritonclient[all]" pytest -e .
"$VENV/bin/python" -c "import importlib.metadata as m; print('nvidia-pytriton', m.version('nvidia-pytriton'), 'tritonclient', m.version('tritonclient'))"
"$PYTHON" -m edge_se.cli -q export se_digits --formats onnx --out "$WORK/se_digits"
EDGE_SE_TRITON_BUNDLE="$WORK/se_digits" "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/serving -m triton_server "$@"
echo "ci_triton: $(( $(date +%s) - start )) s"
