#!/bin/bash
# Speed on one GPU in one call (issue 9), each benchmark printing its rows as it goes, all ending by T0 + END s:
#   1. the GPU tests (CUDA graphs and compile make the eager video), when the machine has pytest;
#   2. the shipped model end to end in each mode: eager, CUDA graphs, compiled blocks under graphs;
#   3. one sampling step against diffusers' Wan transformer in each mode (diffusers carried as wheels in .whl);
#   4. training-step MFU of preset B against the card's measured bf16 peak, and the memory of a 512x512 8-s clip.
# Carry .device (the text encoder) and .whl; delete weights/dit-fast from the working tree to fit (git checkout).
T0=$(date +%s); END=${END:-300}
left() { echo $(( T0 + $1 - $(date +%s) )); }
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:/tmp/wan:$PWD/src TOKENIZERS_PARALLELISM=false
rm -rf /tmp/site /tmp/wan && mkdir -p /tmp/site/av && : > /tmp/site/av/__init__.py   # no PyAV there; nothing writes video
python3 tools/gpu-session/unpack_te.py /tmp/site || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/wan .whl/*.whl
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
python3 -c "import torch; print('torch', torch.__version__)"
python3 -c "import pytest" 2>/dev/null && timeout $(left 60) python3 -m pytest -q -p no:cacheprovider \
  tests/test_pipeline.py -k "cuda" 2>&1 | tail -3
echo "== generate at $(( $(date +%s) - T0 )) s"
timeout $(left 110) python3 benchmarks/bench_generate.py --model default --device cuda --skip adherence framing \
  --repeats 3 --modes eager,graphs,compile 2>&1 | grep -v "Loading weights"
echo "== wan at $(( $(date +%s) - T0 )) s"
timeout $(left 200) python3 benchmarks/bench_vs_wan.py --presets default,B --device cuda --repeats 10 \
  --modes eager,graphs,compile
echo "== mfu at $(( $(date +%s) - T0 )) s"
timeout $(left $END) python3 benchmarks/bench_gpu.py --presets B
echo "== done at $(( $(date +%s) - T0 )) s"
