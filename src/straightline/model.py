"""A model folder: everything needed to sample, and nothing else.

    model.json      what the model is: text encoder, generation defaults, what it was trained on
    dit/            the diffusion transformer (dit.json + dit.safetensors)
    vae/            the video autoencoder (vae.json + vae.safetensors, with its latent statistics)

"default" is the model shipped in the package (src/straightline/weights/). A training run's output folder
has the same layout, so `--model runs/dit` works as soon as a run has written its first checkpoint.
"""

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from .dit import DiT
from .errors import InvalidRequest
from .vae import VideoVAE

DEFAULT_PATH = Path(__file__).parent / "weights"

# what a model generates when a request leaves a field out; model.json may override any of them
# "dit": the folder of the diffusion transformer inside the model folder; a preset may name another (the
# shipped model's `fast` preset names a distilled few-step student, weights/dit-fast/)
DEFAULTS = {"fps": 12, "seconds": 2.0, "resolution": 128, "aspect": "16:9", "steps": 20, "cfg": 5.0,
            "cfg_interval": (0.0, 1.0), "sampler": "euler", "max_tokens": 16384, "dit": "dit"}

# named bundles of those defaults (`--preset NAME`); model.json's "presets" add to or replace them.
# fast: 8 steps instead of 20, 2.5x less sampling, for a model without a student of its own; what it costs in
# adherence is measured in docs/benchmarks.md
PRESETS = {"fast": {"steps": 8}}


@dataclass
class ModelInfo:
    text_encoder: str = "default"                 # "default" (all-MiniLM-L6-v2) or a local Hugging Face folder
    defaults: dict = field(default_factory=dict)  # overrides of DEFAULTS
    trained: dict = field(default_factory=dict)   # fps, resolutions, aspects, seconds it saw, the recipe, the
                                                  # steps run; the shipped model's also its student's recipe
    presets: dict = field(default_factory=dict)   # name -> overrides of the defaults, beside model.PRESETS
    text_features: str = "last"                   # what the DiT reads of the encoder (text.FEATURES)

    def default(self, key: str):
        return self.defaults.get(key, DEFAULTS[key])

    def with_preset(self, name: str) -> "ModelInfo":
        """This model with a preset's defaults (a request's own fields still win over them)."""
        presets = PRESETS | self.presets
        if name not in presets:
            raise InvalidRequest("preset", name, "a preset of this model (" + ", ".join(sorted(presets)) +
                                 "), or none for its own defaults")
        return replace(self, defaults={**self.defaults, **presets[name]})


def resolve(path) -> Path:
    return DEFAULT_PATH if str(path) == "default" else Path(path)


def save_model(path, dit: DiT, vae: VideoVAE, info: ModelInfo) -> None:
    path = Path(path)
    dit.save(path / "dit")
    vae.save(path / "vae")
    data = {"text_encoder": info.text_encoder, "defaults": info.defaults, "trained": info.trained}
    if info.text_features != "last":
        data["text_features"] = info.text_features
    (path / "model.json").write_text(json.dumps(data | ({"presets": info.presets} if info.presets else {}),
                                                indent=2))


def load_info(path) -> ModelInfo:
    folder = resolve(path)
    if not (folder / "model.json").is_file():
        shipped = "" if (DEFAULT_PATH / "model.json").is_file() else \
            " (no model is shipped in this checkout: train one with `straightline train --out runs/dit`)"
        raise InvalidRequest("model", str(path), "'default' (the shipped model) or a model folder holding "
                             "model.json, dit/ and vae/" + shipped)
    data = json.loads((folder / "model.json").read_text())
    return ModelInfo(data.get("text_encoder", "default"), data.get("defaults", {}), data.get("trained", {}),
                     data.get("presets", {}), data.get("text_features", "last"))


def load_model(path="default", device="cpu") -> tuple[DiT, VideoVAE, ModelInfo]:
    """(dit, vae, info) from a model folder, on `device`, in eval mode."""
    info = load_info(path)
    folder = resolve(path)
    return DiT.load(folder / "dit", device=device), VideoVAE.load(folder / "vae", device=device), info
