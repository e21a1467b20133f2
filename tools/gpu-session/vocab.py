"""Token ids of every caption in the first N ToyWorld cache clips (shards of 128), exactly the captions training
will encode: `python tools/gpu-session/vocab.py 30720 .device/ids.json`. Rendering is skipped (captions only)."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

from transformers import AutoTokenizer

import straightline.train as tr
from straightline.text import default_path

n_clips, out = int(sys.argv[1]), Path(sys.argv[2])
tr.render = lambda scene, w, h, fps, num_frames: SimpleNamespace(frames=None, bbox=None)  # captions: no pixels
cfg = tr.TrainConfig(cache_clips=n_clips, shard_clips=128)
buckets = cfg.buckets()
tokenizer = AutoTokenizer.from_pretrained(str(default_path()))
captions = set()
for k in range((n_clips + 127) // 128):
    for _, _, caption, *_ in tr._toyworld_shard(cfg, buckets, k):
        captions.update(v for v in caption.values() if v)
ids = set(tokenizer([""])["input_ids"][0])
for row in tokenizer(sorted(captions), truncation=True, max_length=77)["input_ids"]:
    ids.update(row)
print("captions", len(captions), "token ids", len(ids))
out.write_text(json.dumps(sorted(ids)))
