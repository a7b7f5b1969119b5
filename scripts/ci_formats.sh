#!/usr/bin/env bash
# The slow torch.export formats in CI, in their own venv: AOTInductor packages (a C++ build each),
# the C++ example, and ExecuTorch .pte files (executorch is an optional extra tied to one torch).
#
#   pytest tests/formats -m "slow or executorch" in a venv with edge-se[test,executorch]
#
# Env: FORMATS_VENV (default /tmp/edge-se-formats-venv, reused when present).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${FORMATS_VENV:-/tmp/edge-se-formats-venv}"
cd "$ROOT"
start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test,executorch]"
"$VENV/bin/python" -c "import importlib.metadata as m; print('torch', m.version('torch'), 'executorch', m.version('executorch'))"
PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pytest tests/formats -m "slow or not slow" -q -p no:cacheprovider "$@"
echo "ci_formats: $(( $(date +%s) - start )) s"
