#!/usr/bin/env bash
# The ExecuTorch tests in CI, in their own venv: executorch is an optional extra tied to one torch.
# The AOTInductor and C++ example tests run in the main suite (they need only torch and g++).
#
#   pytest tests/formats/test_executorch.py + the .pte bundle test, in a venv with edge-se[test,executorch]
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
PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/formats/test_executorch.py \
  tests/formats/test_aoti.py::test_a_bundle_with_pte_runs_on_the_executorch_backend "$@"
echo "ci_formats: $(( $(date +%s) - start )) s"
