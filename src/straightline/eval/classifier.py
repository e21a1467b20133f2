"""A small ToyWorld video classifier whose features define straightline's Fréchet distance (our "FVD").

    features = load_classifier().features(clips)     # [(frames uint8 (T, H, W, 3), fps)] -> (N, FEATURE_DIM)

I3D features (FVD's) were learned on Kinetics and know nothing of ToyWorld; this network is trained on ToyWorld
renders to name what the world varies — the colours, shapes and motions present, the background and the camera —
so its features move when a generator gets those wrong, and barely when two sets of scenes merely differ.

Input (`prepare`): any clip -> 8 frames at 6 fps (t = 0, 1/6, ..., 7/6 s; nearest frame, the last one repeated
for shorter clips) resized to 64 x 64 (stretched: training sees every aspect), in [-1, 1]. A fixed time step
keeps speeds comparable across frame rates.

Model: RGB plus 12 fixed palette channels (closeness of each pixel to each object colour, `palette_channels`), four
3D convolutions (3 x 3 x 3; spatial stride 2 each, temporal stride 2 in the middle two), GroupNorm and GELU,
global average and max pools of their output and of the palette channels, a linear embedding of FEATURE_DIM (the
features, taken before any non-linearity) and five linear heads. About 0.15 GFLOP per clip forward.

Training (`train`, or `python -m straightline.eval.classifier --out DIR`): ToyWorld scenes of every split (the
classifier must know held-out compositions too) rendered at short side 64/96/128, aspects 16:9, 9:16, 1:1, 4:3,
with random blur or noise so generated clips are not out of distribution; multi-label losses for colours,
shapes and motions present, cross-entropy for background and camera. docs/eval.md has the recipe and accuracy
of the shipped weights (src/straightline/weights/classifier/).
"""

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ..world import render, sample_scene, vocab
from ..world.perception import (  # private, but the one definition of the palette in Lab
    _palette_lab,
    _to_lab,
)

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "weights" / "classifier"
FRAMES, CLIP_FPS, SIDE = 8, 6.0, 64
FEATURE_DIM = 64
HEADS = {"colors": list(vocab.COLORS), "shapes": list(vocab.SHAPES), "motions": list(vocab.MOTIONS),
         "background": list(vocab.BACKGROUNDS), "camera": list(vocab.CAMERAS)}
MULTI_LABEL = ("colors", "shapes", "motions")        # sets present in the clip; the others name one word


@dataclass
class ClassifierConfig:
    channels: tuple[int, ...] = (12, 24, 48, 64)
    feature_dim: int = FEATURE_DIM


# --- input ----------------------------------------------------------------------------------------------

def prepare(frames, fps: float) -> torch.Tensor:
    """uint8 (T, H, W, 3) at `fps` -> float (3, FRAMES, SIDE, SIDE) in [-1, 1] (see the module docstring)."""
    frames = torch.as_tensor(frames)
    picks = [min(round(k / CLIP_FPS * fps), len(frames) - 1) for k in range(FRAMES)]
    x = frames[picks].permute(0, 3, 1, 2).float()                                 # (FRAMES, 3, H, W)
    x = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", antialias=True, align_corners=False)
    return x.permute(1, 0, 2, 3).div(127.5).sub(1.0).contiguous()


def labels_of(scene) -> dict[str, torch.Tensor]:
    """The targets of a scene: multi-hot colours, shapes, motions present; background and camera indices."""
    out = {}
    for head, attribute in (("colors", "color"), ("shapes", "shape"), ("motions", "motion")):
        present = {getattr(o, attribute) for o in scene.objects}
        out[head] = torch.tensor([float(w in present) for w in HEADS[head]])
    out["background"] = torch.tensor(HEADS["background"].index(scene.background))
    out["camera"] = torch.tensor(HEADS["camera"].index(scene.camera))
    return out


# --- model ----------------------------------------------------------------------------------------------

PALETTE_WIDTH = 20.0     # Lab: object colours are >= 27 apart, so each channel lights up for one colour


def palette_channels(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, H, W) in [-1, 1] -> (B, 12, T, H, W): closeness of each pixel to each object colour,
    exp(-(Lab distance / PALETTE_WIDTH)^2). A fixed first layer: learned from scratch, colour detectors for a
    few-pixel object took the network thousands of steps (and a CPU budget it did not have); with them, the
    colours present are a max-pool away and the layers above spend their capacity on shapes and motion."""
    rgb = (x.movedim(1, -1) + 1) * 127.5                                          # (B, T, H, W, 3)
    distance = torch.cdist(_to_lab(rgb).reshape(-1, 3), _palette_lab())          # (B·T·H·W, 12)
    close = torch.exp(-(distance / PALETTE_WIDTH) ** 2).reshape(*rgb.shape[:-1], -1)
    return close.movedim(-1, 1)

class VideoClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ClassifierConfig()
        strides = [(1, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2)]
        layers, cin = [], 3 + len(vocab.COLORS)
        for cout, stride in zip(cfg.channels, strides):
            layers += [nn.Conv3d(cin, cout, 3, stride, padding=1), nn.GroupNorm(4, cout), nn.GELU()]
            cin = cout
        self.body = nn.Sequential(*layers)
        self.embed = nn.Linear(2 * cin + 2 * len(vocab.COLORS), cfg.feature_dim)
        self.heads = nn.ModuleDict({name: nn.Linear(cfg.feature_dim, len(words)) for name, words in HEADS.items()})

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, FRAMES, SIDE, SIDE) -> features (B, feature_dim)."""
        palette = palette_channels(x)
        h = self.body(torch.cat([x, palette], dim=1))
        # the mean says what fills the frame (background, camera); the max, what is there at all (a small object).
        # The palette channels' own pools go straight to the embedding: through the convolutions, colour presence
        # was not learned in a CPU budget (a linear layer on these pools learns it in a few hundred steps)
        pooled = [t.mean(dim=(2, 3, 4)) for t in (h, palette)] + [t.amax(dim=(2, 3, 4)) for t in (h, palette)]
        return self.embed(torch.cat(pooled, dim=1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = F.gelu(self.embedding(x))
        return {name: head(h) for name, head in self.heads.items()}

    @torch.inference_mode()
    def features(self, clips, batch: int = 32) -> torch.Tensor:
        """[(frames uint8 (T, H, W, 3), fps)] -> (N, feature_dim) float64."""
        out = []
        for s in range(0, len(clips), batch):
            x = torch.stack([prepare(frames, fps) for frames, fps in clips[s:s + batch]])
            out.append(self.embedding(x.to(next(self.parameters()).device)).double().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.cfg.feature_dim, dtype=torch.float64)

    def save(self, path, meta: dict | None = None) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.half().contiguous() for k, v in self.state_dict().items()},
                  str(path / "classifier.safetensors"))
        (path / "classifier.json").write_text(json.dumps({"config": asdict(self.cfg), **(meta or {})}, indent=2))

    @classmethod
    def load(cls, path=DEFAULT_PATH, device="cpu") -> "VideoClassifier":
        path = Path(path)
        if not (path / "classifier.safetensors").is_file():
            raise FileNotFoundError(f"no classifier in {path}: train one with "
                                    f"`python -m straightline.eval.classifier --out {path}`")
        cfg = json.loads((path / "classifier.json").read_text())["config"]
        model = cls(ClassifierConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}))
        model.load_state_dict({k: v.float() for k, v in load_file(str(path / "classifier.safetensors")).items()})
        return model.to(device).eval()


_LOADED: dict[str, VideoClassifier] = {}


def load_classifier(path=DEFAULT_PATH) -> VideoClassifier:
    """The classifier in `path` (default: the shipped one), loaded once per process, on the CPU."""
    key = str(path)
    if key not in _LOADED:
        _LOADED[key] = VideoClassifier.load(path)
    return _LOADED[key]


# --- data -----------------------------------------------------------------------------------------------

TRAIN_SEED, VAL_SEED = 3 << 36, 5 << 36   # scene seeds far from training streams and from evaluation cases
ASPECTS = (16 / 9, 9 / 16, 1.0, 4 / 3)


def _degrade(x: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """Random blur or noise on a prepared clip (3, T, H, W) in [-1, 1], so blurry or noisy generated clips stay
    in the classifier's training distribution."""
    r = rng.random()
    if r < 0.25:
        sigma = rng.uniform(0.5, 1.5)
        k = torch.arange(-3, 4, dtype=torch.float32)
        g = torch.exp(-k * k / (2 * sigma * sigma))
        g = g / g.sum()
        y = x.permute(1, 0, 2, 3)                                             # (T, 3, H, W)
        y = F.conv2d(F.pad(y, (3, 3, 0, 0), mode="replicate"), g.view(1, 1, 1, 7).expand(3, 1, 1, 7), groups=3)
        y = F.conv2d(F.pad(y, (0, 0, 3, 3), mode="replicate"), g.view(1, 1, 7, 1).expand(3, 1, 7, 1), groups=3)
        return y.permute(1, 0, 2, 3).contiguous()
    if r < 0.45:
        return (x + torch.randn_like(x) * rng.uniform(0.02, 0.08)).clamp(-1, 1)
    return x


def make_example(seed: int, rng: random.Random) -> tuple[torch.Tensor, dict]:
    """One training clip (prepared, uint8-rounded) and its labels, from scene seed `seed`."""
    aspect = rng.choice(ASPECTS)
    short = rng.choice((64, 96, 128))
    width, height = (round(short * aspect), short) if aspect >= 1 else (short, round(short / aspect))
    scene = sample_scene(seed, aspect=aspect, duration=2.0, split=rng.choice(("train", "heldout")))
    frames = render(scene, width, height, fps=CLIP_FPS, num_frames=FRAMES).frames
    return prepare(frames, CLIP_FPS), labels_of(scene)


def _dataset(n: int, seed_base: int, degrade: bool, cache: str | None = None) -> tuple[torch.Tensor, dict]:
    if cache and Path(cache).is_file():
        saved = torch.load(cache)
        return saved["x"].float().div(127.5).sub(1), saved["y"]
    rng = random.Random(seed_base)
    xs, ys = [], []
    for i in range(n):
        x, y = make_example(seed_base + i, rng)
        xs.append(_degrade(x, rng) if degrade else x)
        ys.append(y)
    x, y = torch.stack(xs), {k: torch.stack([y[k] for y in ys]) for k in ys[0]}
    if cache:
        torch.save({"x": x.add(1).mul(127.5).round().to(torch.uint8), "y": y}, cache)
    return x, y


POS_WEIGHT = 4.0      # about absent / present per label: without it the sets present collapse to "none"


def loss_of(logits: dict, labels: dict) -> torch.Tensor:
    total = 0.0
    for name in HEADS:
        if name in MULTI_LABEL:
            weight = torch.tensor(POS_WEIGHT)
            total = total + F.binary_cross_entropy_with_logits(logits[name], labels[name], pos_weight=weight)
        else:
            total = total + F.cross_entropy(logits[name], labels[name])
    return total


@torch.inference_mode()
def accuracy(model: VideoClassifier, x: torch.Tensor, labels: dict, batch: int = 64) -> dict:
    """Per head: top-1 accuracy (background, camera), or for the sets present (colours, shapes, motions) the
    share of clips whose whole set is right (every label thresholded at 0.5) and the per-label accuracy."""
    model.eval()
    logits = [model(x[s:s + batch]) for s in range(0, len(x), batch)]
    logits = {k: torch.cat([lg[k] for lg in logits]) for k in HEADS}
    out = {"n": len(x)}
    for name in HEADS:
        if name in MULTI_LABEL:
            right = (logits[name] > 0) == (labels[name] > 0.5)
            out[f"{name} (exact set)"] = float(right.all(dim=1).float().mean())
            out[f"{name} (per label)"] = float(right.float().mean())
        else:
            out[name] = float((logits[name].argmax(1) == labels[name]).float().mean())
    return out


def train(out, *, n_train: int = 4000, n_val: int = 500, epochs: int = 12, batch: int = 32, lr: float = 3e-3,
          seed: int = 0, cache: str | None = None, log=print) -> dict:
    """Render a fixed ToyWorld training set, train the classifier on the CPU, save it with its accuracy.
    `cache`: a file prefix where the rendered sets are kept between runs."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    x_train, y_train = _dataset(n_train, TRAIN_SEED, degrade=True, cache=cache and f"{cache}-train{n_train}.pt")
    x_val, y_val = _dataset(n_val, VAL_SEED, degrade=False, cache=cache and f"{cache}-val{n_val}.pt")
    log(f"rendered {n_train} + {n_val} clips in {time.perf_counter() - start:.0f} s")
    model = VideoClassifier()
    steps = epochs * math.ceil(n_train / batch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    step = 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n_train)
        total = 0.0
        for s in range(0, n_train, batch):
            idx = order[s:s + batch]
            # no mirroring: it would turn "pan left" into "pan right" and the dusk gradient around
            loss = loss_of(model(x_train[idx]), {k: v[idx] for k, v in y_train.items()})
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            step += 1
            total += loss.item() * len(idx)
        log(f"epoch {epoch + 1}/{epochs}: loss {total / n_train:.4f}, val {accuracy(model, x_val, y_val)} "
            f"({time.perf_counter() - start:.0f} s)")
    model.eval()
    meta = {"trained": {"n_train": n_train, "n_val": n_val, "epochs": epochs, "batch": batch, "lr": lr,
                        "seed": seed, "seconds": round(time.perf_counter() - start),
                        "torch_threads": torch.get_num_threads()},
            "validation": accuracy(model, x_val, y_val),
            "input": {"frames": FRAMES, "fps": CLIP_FPS, "side": SIDE}, "heads": HEADS}
    model.save(out, meta)
    return meta


def main():
    parser = argparse.ArgumentParser(description="Train the ToyWorld video classifier of the Fréchet distance.")
    parser.add_argument("--out", default=str(DEFAULT_PATH))
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--n-val", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", help="file prefix to keep the rendered clips between runs")
    args = parser.parse_args()
    meta = train(args.out, n_train=args.n_train, n_val=args.n_val, epochs=args.epochs, seed=args.seed, cache=args.cache,
                 log=lambda s: print(s, flush=True))
    print(json.dumps(meta["validation"], indent=2))


if __name__ == "__main__":
    main()
