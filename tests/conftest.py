"""Shared test helpers."""

import torch

from straightline import dit as dit_module
from straightline import vae as vae_module
from straightline.model import ModelInfo, save_model


def tiny_model_folder(path, defaults: dict):
    """A tiny model folder at `path` with these generation defaults. The DiT is untrained but nudged off its zero
    init (adaLN-zero and the zero output layer would make the velocity exactly 0, so text, seeds, guidance and
    batching could not change anything). Seeded: every call gives the same weights."""
    torch.manual_seed(0)
    dit = dit_module.DiT(dit_module.PRESETS["tiny"])
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_model(path, dit, vae_module.VideoVAE(vae_module.PRESETS["tiny"]), ModelInfo(defaults=defaults))
    return path
