"""What a job costs: an estimated FLOP count (known before it runs), measured device seconds, and a price.

    price = per_video + per_pflop · FLOPs / 1e15 + per_device_second[device] · device seconds

A quote uses the FLOP count and device seconds estimated as FLOPs / flops_per_second[device]; a finished job
is charged the same formula with the device seconds it measured. FLOPs count the diffusion transformer's
sampling passes (DiT.flops_per_token over every forward pass: steps, two per step for Heun, twice the batch
with guidance); the text encoder and the autoencoder are left out: they are a small, fixed part of a job.
"""

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from ..errors import InvalidRequest
from ..model import resolve
from ..pipeline import dit_forwards


@dataclass
class PriceTable:
    currency: str = "USD"
    per_video: float = 0.0
    per_pflop: float = 0.02
    per_device_second: dict = field(default_factory=lambda: {"cpu": 0.0001, "cuda": 0.0006})
    # for quotes: the sustained FLOP/s a device reaches on this model (a 2-core CPU does ~1.3e11 fp32 at
    # best, and small models reach a fraction of it; see DESIGN.md)
    flops_per_second: dict = field(default_factory=lambda: {"cpu": 3e10, "cuda": 5e13})

    @classmethod
    def load(cls, path) -> "PriceTable":
        """From a JSON file with any of the fields above."""
        try:
            data = json.loads(Path(path).read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError) as err:
            raise InvalidRequest("prices", str(path), f"a JSON file with the fields {list(asdict(cls()))} "
                                 f"({err})") from None

    def device_kind(self, device: str) -> str:
        return str(device).split(":")[0]

    def price(self, flops: float, device_s: float, device: str) -> float:
        rate = self.per_device_second.get(self.device_kind(device), 0.0)
        return round(self.per_video + self.per_pflop * flops / 1e15 + rate * device_s, 8)

    def estimate_device_s(self, flops: float, device: str) -> float:
        return flops / self.flops_per_second.get(self.device_kind(device), 1e11)


@lru_cache(maxsize=8)
def flops_per_token(model: str):
    """DiT.flops_per_token of a model folder, from its config alone (the DiT is built on the meta device:
    no memory, no weights read)."""
    from ..dit import DiT, DiTConfig
    cfg = json.loads((resolve(model) / "dit" / "dit.json").read_text())
    cfg = DiTConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})
    with torch.device("meta"):
        dit = DiT(cfg)
    return dit.flops_per_token


def estimate_flops(request, model: str) -> float:
    """Forward FLOPs of a validated pipeline.Request's sampling on `model` (a model folder or "default")."""
    per_token = flops_per_token(str(model))
    return float(sum(forwards * tokens * per_token(tokens) for tokens, forwards in dit_forwards(request)))
