#!/bin/bash
# Issue 9's two nearest goals in one GPU call (README.md, "The next call"), every phase guarded so the command ends
# by T0 + END s:
#   1. a latent cache of ToyWorld clips (the shipped VAE, frozen);
#   2. the shipped 4-step student distilled further from the shipped DiT, each sample one step of the teacher's
#      20-step guided path, half of them from the student's own sampling states (--distill-rollout 0.5);
#   3. a stretch on whole samples against that path (--distill-endpoint 1 at a third of the learning rate), from (2);
#   4. training-step MFU of preset B, compiled, at 8 and 16 clips of 4 s a step, against the card's measured peak.
# Each student's weights reach $OUT in 12 MB parts as soon as its phase ends (fast1.part-*, fast2.part-*); judge
# them on the CPU, paired against the full-step model (README.md). The shipped DiT, the teacher, is unchanged.
# Overrides (also for a CPU dry run): CLIPS SHARD WORKERS TOKENS LR CACHE_END STEP_END FAST_END END DEV CLIPS_MFU
# PRESET_MFU; MFU=0 skips phase 4.
T0=$(date +%s)
CLIPS=${CLIPS:-6144} SHARD=${SHARD:-128} WORKERS=${WORKERS:-15} TOKENS=${TOKENS:-8192} LR=${LR:-1e-4}
CACHE_END=${CACHE_END:-130} STEP_END=${STEP_END:-360} FAST_END=${FAST_END:-450} END=${END:-580} DEV=${DEV:-cuda}
CLIPS_MFU=${CLIPS_MFU:-8,16} PRESET_MFU=${PRESET_MFU:-B}
rm -rf /tmp/cache /tmp/fast1 /tmp/fast2 /tmp/logs && mkdir -p /tmp/logs /tmp/fast1 /tmp/fast2
source tools/gpu-session/setup.sh
meta() { tar czf $OUT/meta.tgz -C /tmp --ignore-failed-read logs fast1/log.jsonl fast1/model.json \
  fast2/log.jsonl fast2/model.json 2>/dev/null; }
# a phase's end: its last progress line and logged losses, its weights to $OUT in parts, the logs so far
returned() { tail -c 400 /tmp/logs/$1.log | tr '\r' '\n' | tail -2; tail -1 /tmp/$1/log.jsonl
  split -b 12M /tmp/$1/dit/dit.safetensors $OUT/$1.part-; sha256sum /tmp/$1/dit/dit.safetensors; meta; }
# the teacher's guided path as the shipped model samples (20 steps, guidance 4 on t in [0, 0.5]); every phase
DISTIL="--init default --distill-steps 4 --distill-cfg 4 --distill-cfg-interval 0,0.5 --distill-substeps 5 \
  --shard-clips $SHARD --token-budget $TOKENS --warmup 20 --sample-every 0 --device $DEV"

at "cache"
timeout $(left $CACHE_END) python3 -m straightline train --out /tmp/cache --init default --shard-clips $SHARD \
  --cache-clips $CLIPS --cache-workers $WORKERS --cache-only --device $DEV 2>&1 | tr '\r' '\n' | tail -2
n=0; while [ -f /tmp/cache/cache/shard-$(printf %05d $n).json ]; do n=$((n+1)); done
[ $n -gt 0 ] || { echo "no complete cache shard"; exit 2; }
ln -s /tmp/cache/cache /tmp/fast1/cache && ln -s /tmp/cache/cache /tmp/fast2/cache

at "cache: $n complete shards; student, one step at a time, for $(left $STEP_END) s"
python3 -m straightline train --out /tmp/fast1 $DISTIL --student-init default --distill-rollout 0.5 --lr $LR \
  --seed 7 --cache-clips $((n * SHARD)) --time-limit $(( $(left $STEP_END) - 10 )) > /tmp/logs/fast1.log 2>&1
returned fast1

at "student on whole samples for $(left $FAST_END) s"
python3 -m straightline train --out /tmp/fast2 $DISTIL --student-init /tmp/fast1/dit --distill-endpoint 1 \
  --lr $(python3 -c "print($LR / 3)") --ema 0.99 --seed 8 --cache-clips $((n * SHARD)) \
  --time-limit $(( $(left $FAST_END) - 10 )) > /tmp/logs/fast2.log 2>&1
returned fast2

[ "${MFU:-1}" = 1 ] && { at "MFU"
timeout $(left $END) python3 benchmarks/bench_gpu.py --presets $PRESET_MFU --clips $CLIPS_MFU --device $DEV 2>&1 \
  | tee $OUT/mfu.md | grep -v "Loading weights"; }
at "done"
