"""Training the diffusion transformer (the VAE's loop is train_vae.py).

Reading order:
  1. TrainConfig: every knob, with the defaults that trained the shipped model.
  2. The latent cache: clips (ToyWorld rendered at every bucket shape, or a folder of your videos) are
     encoded once by the frozen VAE into safetensors shards; training reads latents, never pixels.
  3. One step: draw a bucket batch from the cache, caption dropout for classifier-free guidance, a random
     frame-conditioning strategy (text-to-video, first/last frame given, start/end of a clip given), noise
     at logit-normal times shifted by the token count, and the rectified-flow velocity loss.
  4. The loop: AdamW with warm-up, EMA, bf16 autocast on CUDA, optional torch.compile, DDP under torchrun
     (the only place parallelism is wrapped), checkpoints with exact resume, logs and preview videos.

Every random draw of step k comes from a generator seeded by (seed, k, rank), so a resumed run repeats
exactly what an uninterrupted one would have done, on any number of processes.
"""

import copy
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from . import flow
from .data import (
    Bucket,
    VideoFolderDataset,
    batch_size_for,
    make_buckets,
    to_model_input,
)
from .dit import PRESETS, DiT
from .errors import InvalidRequest, MediaError
from .model import ModelInfo, save_model
from .text import load_text_encoder
from .vae import VideoVAE
from .world import render, sample_scene
from .world.captions import captions as scene_captions

log = logging.getLogger("straightline.train")

PREVIEW_PROMPTS = ("a red ball bouncing on a wooden floor",
                   "a small blue star slides left over a sunset sky",
                   "a green square and a yellow triangle collide on a grey background")


# --- 1. configuration ------------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    preset: str = "default"                  # DiT size (dit.PRESETS)
    vae: str = "default"                     # frozen VAE folder ("default": the shipped one)
    text_encoder: str = "default"            # frozen text encoder ("default": all-MiniLM-L6-v2)
    init: str | None = None                  # start from this model folder's DiT (fine-tuning), else scratch
    resolutions: tuple[int, ...] = (128,)    # short sides of the buckets
    aspects: tuple[str, ...] = ("16:9", "9:16", "1:1", "4:3")
    seconds: tuple[float, ...] = (1.0, 2.0)  # clip durations (0 = 1-frame image buckets)
    image_resolutions: tuple[int, ...] = (128, 256)  # short sides of extra 1-frame buckets: images are cheap,
                                                      # and teach the model larger sizes than its clips have
    image_share: float = 0.25                # share of 1-frame clips in the cache (ToyWorld)
    fps: float = 12.0
    cache_clips: int = 2000                  # clips encoded into the latent cache (ToyWorld)
    shard_clips: int = 32                    # clips per cache shard (the unit of resumable cache building)
    token_budget: int = 1024                 # latent tokens per batch (per process)
    steps: int = 100_000
    lr: float = 3e-4
    warmup: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema: float = 0.999
    text_dropout: float = 0.1                # empty caption: the unconditional branch of guidance
    caption_levels: dict = field(default_factory=lambda: {"short": 0.3, "medium": 0.4, "long": 0.3})
    cond_prob: float = 0.3                   # share of steps that condition on given latent frames
    seed: int = 0

    def check(self) -> None:
        if self.preset not in PRESETS:
            raise InvalidRequest("preset", self.preset, "one of " + ", ".join(PRESETS))
        for name in ("text_dropout", "cond_prob", "image_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise InvalidRequest(name, getattr(self, name), "a probability between 0 and 1")
        if self.token_budget < 1 or self.cache_clips < 1 or self.shard_clips < 1:
            raise InvalidRequest("token_budget/cache_clips/shard_clips", None, "positive integers")

    def buckets(self) -> list[Bucket]:
        clips = make_buckets(self.resolutions, self.aspects, self.seconds, fps=self.fps)
        images = make_buckets(self.image_resolutions, self.aspects, (0.0,), fps=self.fps) \
            if self.image_resolutions else []
        return sorted(set(clips) | set(images))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})


# --- 2. the latent cache ---------------------------------------------------------------------------------

def _toyworld_shard(cfg: TrainConfig, buckets: list[Bucket], shard: int):
    """The clips of cache shard `shard`: scene seeds and buckets depend only on (seed, shard)."""
    rng = random.Random(f"cache/{cfg.seed}/{shard}")
    images, clips = [b for b in buckets if b.frames == 1], [b for b in buckets if b.frames > 1]
    for i in range(cfg.shard_clips):
        bucket = rng.choice(images if images and (not clips or rng.random() < cfg.image_share) else clips)
        seed = (cfg.seed << 32) + shard * cfg.shard_clips + i
        duration = max(bucket.frames - 1, 1) / cfg.fps
        scene = sample_scene(seed, aspect=bucket.aspect, duration=duration, split="train")
        clip = render(scene, bucket.width, bucket.height, fps=cfg.fps, num_frames=bucket.frames)
        yield bucket, clip.frames, scene_captions(scene)


def _folder_shard(dataset: VideoFolderDataset, shard: int, size: int):
    """Clips of a video folder; a file that fails to decode is reported by the dataset and skipped."""
    captions_of = {item.path: item.captions for item in dataset.items}
    for index in range(shard * size, min((shard + 1) * size, len(dataset))):
        try:
            sample = dataset[index]
        except MediaError:
            continue
        yield sample["bucket"], sample["video"], captions_of[sample["path"]] or {"caption": ""}


def _render_shard(job):
    """Worker side of a parallel cache build: shard k's ToyWorld clips as plain arrays (cheap to pickle)."""
    cfg, buckets, k = job
    return k, [(b, frames.numpy(), captions) for b, frames, captions in _toyworld_shard(cfg, buckets, k)]


def _one_thread() -> None:
    torch.set_num_threads(1)  # render workers: numpy work; the parent's threads encode


def _rendered_shards(cfg: TrainConfig, buckets: list[Bucket], todo: list[int], workers: int):
    """(k, clips) for each shard in `todo`, in order. With workers > 1, ToyWorld shards render in that many
    processes while the caller encodes; at most 2 × workers shards are in flight, so memory stays bounded."""
    if workers <= 1:
        for k in todo:
            yield k, list(_toyworld_shard(cfg, buckets, k))
        return
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_one_thread) as pool:
        pending, queue = deque(), iter(todo)
        for k in queue:
            pending.append(pool.submit(_render_shard, (cfg, buckets, k)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            k, clips = pending.popleft().result()
            for k_next in queue:
                pending.append(pool.submit(_render_shard, (cfg, buckets, k_next)))
                break
            yield k, [(b, torch.from_numpy(frames), captions) for b, frames, captions in clips]


@torch.no_grad()
def build_cache(cfg: TrainConfig, cache: Path, vae: VideoVAE, *, folder=None, rank: int = 0, world: int = 1,
                workers: int = 1, progress: bool = True) -> int:
    """Encode clips into `cache/shard-NNNNN.safetensors` (+ .json captions); shards already there are kept,
    so an interrupted build resumes. Shard k is built by rank k % world. ToyWorld shards render in `workers`
    processes per rank (the result does not depend on it). Clips of one bucket in a shard are encoded as one
    batch. Returns the number of shards."""
    cache.mkdir(parents=True, exist_ok=True)
    buckets = cfg.buckets()
    if folder is not None:
        dataset = VideoFolderDataset(folder, buckets, fps=cfg.fps, caption_dropout=0.0)
        shards = math.ceil(len(dataset) / cfg.shard_clips)
    else:
        shards = math.ceil(cfg.cache_clips / cfg.shard_clips)
    todo = [k for k in range(rank, shards, world) if not (cache / f"shard-{k:05d}.json").is_file()]
    rendered = ((k, list(_folder_shard(dataset, k, cfg.shard_clips))) for k in todo) if folder is not None \
        else _rendered_shards(cfg, buckets, todo, workers)
    device = next(vae.parameters()).device
    for k, clips in tqdm(rendered, total=len(todo), desc="latent cache", unit="shard",
                         disable=not progress or rank != 0):
        latents = [None] * len(clips)
        for bucket in dict.fromkeys(b for b, _, _ in clips):       # one encode per bucket, in first-seen order
            index = [i for i, (b, _, _) in enumerate(clips) if b == bucket]
            video = to_model_input(torch.stack([clips[i][1] for i in index])).to(device)
            for i, z in zip(index, vae.encode(video)):
                latents[i] = z.to(torch.float16).cpu()
        save_file({f"latents.{i}": z for i, z in enumerate(latents)}, str(cache / f"shard-{k:05d}.safetensors"))
        meta = [{"bucket": [b.frames, b.height, b.width], "captions": c} for b, _, c in clips]
        (cache / f"shard-{k:05d}.json").write_text(json.dumps(meta))  # written last: marks the shard complete
    return shards


class LatentCache:
    """All cached latents in memory, grouped by bucket. `batch(rng, budget)` draws one bucket's batch."""

    def __init__(self, cache: Path):
        self.by_bucket: dict[Bucket, list[tuple[torch.Tensor, dict]]] = {}
        for meta_path in sorted(cache.glob("shard-*.json")):
            tensors = load_file(str(meta_path.with_suffix(".safetensors")))
            for i, item in enumerate(json.loads(meta_path.read_text())):
                self.by_bucket.setdefault(Bucket(*item["bucket"]), []).append((tensors[f"latents.{i}"],
                                                                               item["captions"]))
        if not self.by_bucket:
            raise InvalidRequest("cache", str(cache), "a latent cache with at least one clip")
        self.buckets = sorted(self.by_bucket)

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_bucket.values())

    def batch(self, step_rng: random.Random, rank_rng: random.Random, token_budget: int):
        """The bucket comes from `step_rng` (the same on every rank), the clips from `rank_rng`. Buckets are
        drawn in proportion to their clips, so every cached clip is seen about equally often."""
        bucket = step_rng.choices(self.buckets, [len(self.by_bucket[b]) for b in self.buckets])[0]
        items = self.by_bucket[bucket]
        picked = [items[rank_rng.randrange(len(items))] for _ in range(batch_size_for(bucket, token_budget))]
        return bucket, torch.stack([p[0] for p in picked]).float(), [p[1] for p in picked]


# --- 3. one step -----------------------------------------------------------------------------------------

def pick_caption(captions: dict, rng: random.Random, cfg: TrainConfig) -> str:
    if rng.random() < cfg.text_dropout:
        return ""
    levels = [lvl for lvl in cfg.caption_levels if captions.get(lvl)]
    if not levels:
        return captions.get("caption", "")
    return captions[rng.choices(levels, [cfg.caption_levels[lvl] for lvl in levels])[0]]


def conditioning(latents: torch.Tensor, rng: random.Random, prob: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Known latents + mask (B, C + 1, T, h, w), and the loss weight (B, 1, T, 1, 1) (0 on given frames).

    Strategies, one per sample: none (text-to-video); first frame (image-to-video, extend forward); last
    frame; first and last (connect two images, loops); a start of the clip; an end of the clip (extend
    backward); both ends (connect two clips)."""
    B, T = latents.shape[0], latents.shape[2]
    known = torch.zeros(B, 1, T, 1, 1)
    for b in range(B):
        if T < 2 or rng.random() >= prob:
            continue
        k = rng.randint(1, max(1, T // 2))
        strategy = rng.choice(["first", "last", "first_last", "start", "end", "ends"])
        if strategy in ("first", "first_last"):
            known[b, :, 0] = 1
        if strategy in ("last", "first_last"):
            known[b, :, -1] = 1
        if strategy in ("start", "ends"):
            known[b, :, :k] = 1
        if strategy in ("end", "ends"):
            known[b, :, T - k:] = 1
    mask = known.expand(B, 1, T, *latents.shape[3:])
    return torch.cat([latents * mask, mask], dim=1), 1 - known


def flow_loss(model, latents, text, t, noise, cond, weight):
    """Mean squared velocity error on the frames the model has to make."""
    x_t = flow.interpolate(latents, noise, t)
    v = model(x_t, t, text.tokens, text.mask, text.pooled, cond)
    err = (v.float() - flow.velocity_target(latents, noise)).pow(2).mean(dim=(1, 3, 4), keepdim=True)
    return (err * weight).sum() / weight.sum().clamp(min=1)


# --- checkpoints -----------------------------------------------------------------------------------------

def save_train_state(out: Path, step: int, cfg: TrainConfig, model, ema, opt) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    for i, state in opt.state_dict()["state"].items():
        tensors.update({f"opt.{i}.{k}": torch.as_tensor(v) for k, v in state.items()})
    tmp = out / "train_state.tmp"
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    tmp.replace(out / "train_state.safetensors")  # atomic: a run killed mid-save keeps the last good state
    (out / "train_state.json").write_text(json.dumps({"step": step, "config": asdict(cfg)}, indent=2))


def load_train_state(out: Path, model, ema, opt) -> int:
    tensors = load_file(str(out / "train_state.safetensors"))
    pick = lambda prefix: {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    model.load_state_dict(pick("model"))
    ema.load_state_dict(pick("ema"))
    sd = opt.state_dict()
    for key, v in pick("opt").items():
        i, name = key.split(".", 1)
        sd["state"].setdefault(int(i), {})[name] = v
    opt.load_state_dict(sd)
    return json.loads((out / "train_state.json").read_text())["step"]


# --- 4. the loop -----------------------------------------------------------------------------------------

def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group under torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _should_stop(mine: bool, world: int, device) -> bool:
    """Stop when any rank wants to: ranks that disagreed would wait for each other's gradients for ever."""
    if world == 1:
        return mine
    flag = torch.tensor([float(mine)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def train(cfg: TrainConfig, out, *, folder=None, device=None, time_limit: float | None = None,
          compile: bool = False, log_every: int = 50, sample_every: int = 1000, ckpt_every: int = 250,
          cache_workers: int | None = None, cache_only: bool = False, progress: bool = True) -> dict:
    """Train (or resume, when `out` holds a train state) until cfg.steps or `time_limit` seconds (counted from
    the first step, after the latent cache is built). `cache_workers`: ToyWorld render processes per training
    process (default: the CPUs left over); `cache_only`: build the cache and stop.

    `out` becomes a model folder (model.json, dit/ with the EMA weights, vae/) usable by `generate`, plus
    train_state.*, log.jsonl, cache/ and samples/. Returns the last logged metrics."""
    cfg.check()
    out = Path(out)
    rank, world = _distributed()
    device = torch.device(device or (f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available()
                                     else "cpu"))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    out.mkdir(parents=True, exist_ok=True)

    # frozen parts, and the data they make
    vae = VideoVAE.load(cfg.vae, device=device).requires_grad_(False)
    text_encoder = load_text_encoder(cfg.text_encoder, device=device)
    if cache_workers is None:
        cache_workers = max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")) - 1)
    shards = build_cache(cfg, out / "cache", vae, folder=folder, rank=rank, world=world, workers=cache_workers,
                         progress=progress)
    if world > 1:
        dist.barrier()
    if cache_only:
        return {"cache_shards": shards}
    cache = LatentCache(out / "cache")

    # the model, its EMA and optimizer
    torch.manual_seed(cfg.seed)
    if cfg.init:
        model = DiT.load(Path(cfg.init) / "dit" if cfg.init != "default" else
                         Path(__file__).parent / "weights" / "dit", device=device).train()
    else:
        model = DiT(PRESETS[cfg.preset]).to(device).train()
    if model.cfg.text_dim != text_encoder.dim:
        raise InvalidRequest("text_encoder", cfg.text_encoder,
                             f"an encoder of width {model.cfg.text_dim} for this DiT (it gives {text_encoder.dim})")
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    step = load_train_state(out, model, ema, opt) if (out / "train_state.safetensors").is_file() else 0
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    if compile:
        net = torch.compile(net, dynamic=False)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    # generation defaults: the shape the model was trained on
    defaults = {"fps": cfg.fps, "resolution": cfg.resolutions[0], "aspect": cfg.aspects[0],
                "seconds": max(cfg.seconds, default=0.0)}
    info = ModelInfo(text_encoder=cfg.text_encoder, defaults=defaults, trained={
        "fps": cfg.fps, "resolutions": list(cfg.resolutions), "aspects": list(cfg.aspects),
        "seconds": list(cfg.seconds), "image_resolutions": list(cfg.image_resolutions), "recipe": asdict(cfg)})

    start, metrics, logged = time.perf_counter(), {}, []
    bar = tqdm(total=cfg.steps, initial=step, desc="dit", unit="step", disable=not progress or rank != 0)
    while step < cfg.steps:
        if _should_stop(time_limit is not None and time.perf_counter() - start > time_limit, world, device):
            break
        step_rng = random.Random(f"step/{cfg.seed}/{step}")
        rank_rng = random.Random(f"step/{cfg.seed}/{step}/{rank}")
        gen = torch.Generator().manual_seed((cfg.seed * 1_000_003 + step) * 4096 + rank)
        bucket, latents, captions = cache.batch(step_rng, rank_rng, cfg.token_budget)
        text = text_encoder([pick_caption(c, rank_rng, cfg) for c in captions])
        cond, weight = conditioning(latents, rank_rng, cfg.cond_prob)
        noise = torch.randn(latents.shape, generator=gen)
        t = flow.sample_timesteps(latents.shape[0], flow.shift_for_tokens(bucket.latent_tokens), generator=gen)
        lr = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))
        for group in opt.param_groups:
            group["lr"] = lr
        with autocast:
            loss = flow_loss(net, latents.to(device), text, t.to(device), noise.to(device), cond.to(device),
                             weight.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                e.lerp_(p, 1 - cfg.ema)
        step += 1
        logged.append(loss.item())
        bar.update(1)
        if step % log_every == 0 or step == cfg.steps:
            metrics = {"step": step, "loss": sum(logged) / len(logged), "grad_norm": float(grad_norm), "lr": lr,
                       "bucket": str(bucket), "batch": latents.shape[0],
                       "elapsed_s": round(time.perf_counter() - start, 1)}
            logged = []
            bar.set_postfix(loss=f"{metrics['loss']:.4f}")
            if rank == 0:
                with open(out / "log.jsonl", "a") as f:
                    f.write(json.dumps(metrics) + "\n")
        if rank == 0 and (step % ckpt_every == 0 or step == cfg.steps):
            save_train_state(out, step, cfg, model, ema, opt)
            save_model(out, ema, vae, info)
        if rank == 0 and sample_every and step % sample_every == 0:
            write_previews(out / "samples", step, ema, vae, text_encoder, info)
    bar.close()
    if rank == 0:
        save_train_state(out, step, cfg, model, ema, opt)
        save_model(out, ema, vae, info)
    if world > 1:
        dist.barrier()
    return metrics


def write_previews(folder: Path, step: int, ema, vae, text_encoder, info) -> None:
    """A few fixed prompts sampled with the EMA model, written as mp4 (the same seed every time, so
    previews of successive steps are comparable)."""
    from .pipeline import Pipeline, validate_request
    from .video_io import write_video

    folder.mkdir(parents=True, exist_ok=True)
    pipe = Pipeline(dit=ema, vae=vae, text=text_encoder, info=info, device=next(ema.parameters()).device)
    requests = [validate_request(p, seed=i, info=info) for i, p in enumerate(PREVIEW_PROMPTS)]
    for i, result in enumerate(pipe.generate(requests)):
        write_video(folder / f"step{step:07d}_{i}.mp4", result.frames, fps=result.fps)
