"""Here: pack all-MiniLM-L6-v2 in fp16 with only the word-embedding rows of the ids training uses
(.device/ids.json, from vocab.py) into .device/te."""

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from straightline.text import default_path

src, out = default_path(), Path(".device/te")
out.mkdir(parents=True, exist_ok=True)
ids = torch.tensor(json.loads(Path(".device/ids.json").read_text()))
packed = {}
for name, v in load_file(str(src / "model.safetensors")).items():
    if name.endswith("word_embeddings.weight"):
        packed["__ids__"] = ids
        packed["__rows__." + name] = v[ids].half()
        packed["__shape__." + name] = torch.tensor(list(v.shape))
    else:
        packed[name] = v.half() if v.is_floating_point() else v
save_file(packed, str(out / "packed.safetensors"))
for f in src.iterdir():
    if f.is_file() and f.name != "model.safetensors" and f.suffix != ".md":
        shutil.copy2(f, out / f.name)
if (src / "1_Pooling").is_dir():
    shutil.copytree(src / "1_Pooling", out / "1_Pooling", dirs_exist_ok=True)
print(f"{sum(f.stat().st_size for f in out.rglob('*') if f.is_file()) / 1e6:.1f} MB in {out}")
