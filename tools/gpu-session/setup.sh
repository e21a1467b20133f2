# Sourced by the GPU scripts (run.sh, run_motion.sh, bench.sh) after they set T0: the environment, the text encoder
# rebuilt under /tmp/site from .device, a PyAV stub (the device image has none, and nothing there writes video),
# diffusers under /tmp/wan when .whl is carried, and what the machine is.
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD/src TOKENIZERS_PARALLELISM=false
left() { echo $(( T0 + $1 - $(date +%s) )); }     # seconds until T0 + $1
at() { echo "== $1 at $(( $(date +%s) - T0 )) s"; }
rm -rf /tmp/site /tmp/wan && mkdir -p /tmp/site/av && : > /tmp/site/av/__init__.py
python3 tools/gpu-session/unpack_te.py /tmp/site || exit 1
ls .whl/*.whl >/dev/null 2>&1 && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --target /tmp/wan .whl/*.whl
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null; nproc
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
