#!/bin/sh
# Build aoti_run with g++ against the torch installed in the current Python (no CMake needed).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/aoti_run"}
torch_dir=$(python -c 'import os, torch; print(os.path.dirname(torch.__file__))')
abi=$(python -c 'import torch; print(int(torch.compiled_with_cxx11_abi()))')
exec "${CXX:-g++}" -std=c++20 -O1 -D_GLIBCXX_USE_CXX11_ABI="$abi" "$here/aoti_run.cpp" -o "$out" \
  -I"$torch_dir/include" -I"$torch_dir/include/torch/csrc/api/include" \
  -L"$torch_dir/lib" -Wl,-rpath,"$torch_dir/lib" -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10
