#!/bin/bash
# Speed on one GPU in one call (issue 9), each benchmark printing its rows as it goes, all ending by T0 + END s:
#   1. the GPU tests (CUDA graphs and compile make the eager video), when the machine has pytest;
#   2. the shipped model end to end in each mode: eager, CUDA graphs, compiled blocks under graphs;
#   3. one sampling step against diffusers' Wan transformer in each mode (diffusers carried as wheels in .whl);
#   4. training-step MFU of preset B against the card's measured bf16 peak, and the memory of a 512x512 8-s clip.
# Carry .device (the text encoder) and .whl; delete weights/dit-fast from the working tree to fit (git checkout).
T0=$(date +%s); END=${END:-300} DEV=${DEV:-cuda}
source tools/gpu-session/setup.sh
python3 -c "import pytest" 2>/dev/null && timeout $(left 60) python3 -m pytest -q -p no:cacheprovider \
  tests/test_pipeline.py -k "cuda" 2>&1 | tail -3
at generate
timeout $(left 110) python3 benchmarks/bench_generate.py --model default --device $DEV --skip adherence framing \
  --repeats 3 --modes eager,graphs,compile 2>&1 | grep -v "Loading weights"
at wan
PYTHONPATH=/tmp/wan:$PYTHONPATH timeout $(left 200) python3 benchmarks/bench_vs_wan.py --presets default,B \
  --device $DEV --repeats 10 --modes eager,graphs,compile
at mfu
timeout $(left $END) python3 benchmarks/bench_gpu.py --presets B --device $DEV
at done
