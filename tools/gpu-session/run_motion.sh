#!/bin/bash
# The motion-VAE route in one GPU call; it made the model shipped since session 8 (README.md). It trains the
# package's default model further (in session 8 the working tree carried the candidate of commit aa2eb05 there, with
# weights/dit-fast left out to fit the 64 MB a call carries):
#   1. the VAE's decoder alone (the encoder, its latents and the DiT trained on them stay valid; DECODER=0 skips it),
#      while 2. the latent cache is built with the same frozen encoder;
#   3. the DiT trained on (2); 4. a 4-step student distilled from (3);
#   5. speed on the GPU: end-to-end generation, and one step against diffusers' Wan transformer (.whl carried).
# Every phase is guarded so the command ends by T0 + END s. Overrides (also for a CPU dry run): CLIPS SHARD WORKERS
# VAE_WORKERS PIXELS TOKENS FAST_TOKENS LR WARMUP EMA CACHE_END DIT_END FAST_END END DEV PRESETS; DECODER=0, STUDENT=0
# and BENCH=0 skip phases 1, 4 and 5.
T0=$(date +%s)
CLIPS=${CLIPS:-24000} SHARD=${SHARD:-128} WORKERS=${WORKERS:-10} VAE_WORKERS=${VAE_WORKERS:-4}
PIXELS=${PIXELS:-589824} TOKENS=${TOKENS:-16384} FAST_TOKENS=${FAST_TOKENS:-8192} LR=${LR:-6e-4} WARMUP=${WARMUP:-200} EMA=${EMA:-0.999}
CACHE_END=${CACHE_END:-190} DIT_END=${DIT_END:-420} FAST_END=${FAST_END:-505} END=${END:-580}
DEV=${DEV:-cuda} PRESETS=${PRESETS:-default,S,B}
rm -rf /tmp/run /tmp/vae /tmp/fast /tmp/logs && mkdir -p /tmp/logs
source tools/gpu-session/setup.sh
meta() { tar czf $OUT/meta.tgz -C /tmp --ignore-failed-read logs vae/vae.json vae/vae.safetensors vae/log.jsonl \
  run/log.jsonl run/model.json run/dit/dit.json fast/log.jsonl fast/model.json fast/dit/dit.json 2>/dev/null; }

at "decoder and cache"
[ "${DECODER:-1}" = 1 ] && timeout $(left $CACHE_END) python3 -m straightline vae train --out /tmp/vae --init default --decoder-only --lr 2e-4 \
  --pixel-budget $PIXELS --fps 12 --durations 0.7 1.4 --motion-weight 3 --temporal-weight 2 --profile-weight 20 \
  --workers $VAE_WORKERS --preview-every 0 --device $DEV --time-limit $(( $(left $CACHE_END) - 20 )) \
  > /tmp/logs/vae.log 2>&1 &
vae_pid=$!
ARGS="--out /tmp/run --init default --shard-clips $SHARD --token-budget $TOKENS --lr $LR --warmup $WARMUP --ema $EMA --sample-every 0"
timeout $(left $CACHE_END) python3 -m straightline train $ARGS --cache-clips $CLIPS --cache-workers $WORKERS \
  --cache-only 2>&1 | tr '\r' '\n' | tail -2
wait $vae_pid; [ "${DECODER:-1}" = 1 ] && tail -c 400 /tmp/logs/vae.log | tr '\r' '\n' | tail -2 && tail -1 /tmp/vae/log.jsonl
n=0; while [ -f /tmp/run/cache/shard-$(printf %05d $n).json ]; do n=$((n+1)); done
at "cache: $n complete shards in a row ($(ls /tmp/run/cache/*.json | wc -l) in all); DiT for $(left $DIT_END) s"
python3 -m straightline train $ARGS --cache-clips $((n * SHARD)) --time-limit $(( $(left $DIT_END) - 10 )) \
  > /tmp/logs/dit.log 2>&1
tail -c 400 /tmp/logs/dit.log | tr '\r' '\n' | tail -2; tail -1 /tmp/run/log.jsonl
split -b 12M /tmp/run/dit/dit.safetensors $OUT/dit.part-; sha256sum /tmp/run/dit/dit.safetensors; meta

[ "${STUDENT:-1}" = 1 ] && { at "student for $(left $FAST_END) s"
mkdir -p /tmp/fast && ln -s /tmp/run/cache /tmp/fast/cache
python3 -m straightline train --out /tmp/fast --init /tmp/run --distill-steps 4 --distill-cfg 5 --distill-substeps 5 \
  --shard-clips $SHARD --cache-clips $((n * SHARD)) --token-budget $FAST_TOKENS --lr 2e-4 --warmup 20 \
  --sample-every 0 --time-limit $(( $(left $FAST_END) - 10 )) > /tmp/logs/fast.log 2>&1
tail -c 400 /tmp/logs/fast.log | tr '\r' '\n' | tail -2; tail -1 /tmp/fast/log.jsonl
split -b 12M /tmp/fast/dit/dit.safetensors $OUT/fast.part-; sha256sum /tmp/fast/dit/dit.safetensors; meta; }

[ "${BENCH:-1}" = 1 ] && { at "bench"
timeout $(left $((END - 35))) python3 benchmarks/bench_generate.py --model /tmp/run --device $DEV \
  --skip adherence framing --repeats 3 > $OUT/bench.md 2>&1
PYTHONPATH=/tmp/wan:$PYTHONPATH timeout $(left $END) python3 benchmarks/bench_vs_wan.py --presets $PRESETS \
  --device $DEV --repeats 10 >> $OUT/bench.md 2>&1
grep -v "Loading weights" $OUT/bench.md | tail -30; meta; }
at "done"
