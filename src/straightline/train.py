"""Training the diffusion transformer (the VAE's loop is train_vae.py).

Reading order:
  1. TrainConfig: every knob, with the defaults that trained the shipped model.
  2. The latent cache: clips (ToyWorld rendered at every bucket shape, or a folder of your videos) are
     encoded once by the frozen VAE into safetensors shards; training reads latents, never pixels.
  3. One step: draw a bucket batch from the cache, caption dropout for classifier-free guidance, a random
     frame-conditioning strategy (text-to-video, first/last frame given, start/end of a clip given), noise
     at logit-normal times shifted by the token count, and the rectified-flow velocity loss.
  4. Parallelism (the only place it is applied): activation checkpointing of the blocks, torch.compile, and
     under torchrun DDP (every rank holds the whole model) or FSDP2 (parameters, gradients, optimizer moments
     and the EMA sharded across ranks).
  5. The loop: the next batch read in a thread, AdamW with warm-up, EMA, bf16 on CUDA, checkpoints with exact
     resume, logs and preview videos.

Every random draw of step k comes from a generator seeded by (seed, k, rank), so a resumed run repeats
exactly what an uninterrupted one would have done with the same number of processes. The train state is
always written whole (gathered to rank 0, keyed by parameter name), so it resumes on any number of processes,
under DDP or FSDP.
"""

import copy
import json
import logging
import math
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
    checkpoint_wrapper,
)
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor
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
from .model import ModelInfo, load_info, save_model
from .pipeline import keep_known_on_path, known_on_path
from .request import parse_interval
from .sampling import classifier_free_guidance, euler
from .text import FEATURES, TextEmbedding, load_text_encoder
from .vae import VideoVAE
from .world import render, sample_scene
from .world.physics import reshaped_scene, reversed_scene
from .world.scene import SCENARIOS
from .world.captions import captions as scene_captions

log = logging.getLogger("straightline.train")

# generation defaults a fine-tune takes from its `init` model (its own sizes come from its buckets)
INHERITED_DEFAULTS = ("steps", "cfg", "cfg_interval", "sampler")

PREVIEW_PROMPTS = ("a red ball bouncing on a wooden floor",
                   "a small blue star slides left over a sunset sky",
                   "a green square and a yellow triangle collide on a grey background")


# --- 1. configuration ------------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    preset: str = "default"                  # DiT size (dit.PRESETS)
    vae: str = "default"                     # frozen VAE folder ("default": the shipped one)
    text_encoder: str = "default"            # frozen text encoder ("default": all-MiniLM-L6-v2)
    text_features: str = "last"              # what the DiT reads of it (text.FEATURES); "last+embeddings" on an
                                             # `init` trained on "last" widens its text projections (DiT.widen_text)
    init: str | None = None                  # start from this model folder's DiT (fine-tuning), else scratch
    position_freqs: int = 0                  # > 0: the DiT reads its tokens' absolute place in frame and clip
                                             # (dit.DiTConfig.position_freqs); an `init` without it gains it at zero
    resolutions: tuple[int, ...] = (128,)    # short sides of the buckets
    aspects: tuple[str, ...] = ("16:9", "9:16", "1:1", "4:3")
    seconds: tuple[float, ...] = (1.0, 2.0)  # clip durations (0 = 1-frame image buckets)
    image_resolutions: tuple[int, ...] = (128, 256)  # short sides of extra 1-frame buckets: images are cheap,
                                                      # and teach the model larger sizes than its clips have
    image_share: float = 0.25                # share of 1-frame clips in the cache (ToyWorld)
    scenarios: tuple[str, ...] = ()          # ToyWorld scenarios to draw scenes from (world.scene.SCENARIOS);
                                             # () draws each as sample_scene weighs them
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
    object_weight: float = 1.0               # loss weight of latent cells an object covers (ToyWorld ground truth),
                                             # relative to the background's 1 (object_mask; flow_loss)
    reverse_pairs: float = 0.0               # share of steps that train on ToyWorld clips beside their time reversal
                                             # (world.physics.reversed_scene), each pair with one noise, time and
                                             # caption level: only the direction words tell the two apart. > 0
                                             # also caches each reversible clip's reversal next to it
    shape_pairs: float = 0.0                 # share of steps that train on ToyWorld clips beside their reshaped
                                             # twin (world.physics.reshaped_scene: every object another shape, the
                                             # same motion), likewise: only the shape words tell them apart. > 0
                                             # also caches each clip's twin next to it
    pair_weight: float = 0.0                 # on pair steps, extra loss on the pair's difference: how the two
                                             # predictions differ against how the two targets do (flow_loss)
    time_shift: float = 1.0                  # training times shifted this much further towards noise (flow.shift_time),
                                             # beyond the shift for the clip's size: more steps where layout and
                                             # motion are decided, which is where a word must move them
    time_shift_share: float = 1.0            # share of samples drawn with time_shift; the rest keep the clip size's
                                             # shift, so steps near the data (colour, detail) are not starved
    seed: int = 0
    distill_steps: int = 0                   # > 0: distil `init` (the teacher) into a student that samples in
                                             # this many Euler steps without guidance (distill_loss)
    distill_cfg: float = 5.0                 # the teacher's guidance scale, which the student absorbs
    distill_substeps: int = 5                # teacher Euler steps per student step
    distill_cfg_interval: tuple[float, float] = (0.0, 1.0)   # the teacher's guided times (1 outside)
    distill_rollout: float = 0.0             # share of samples whose student step starts where the student's own
                                             # steps from the noise reach, as when it samples (the rest start from
                                             # the data noised to that time)
    distill_endpoint: float = 0.0            # share of the loss on the student's whole sample: its steps from
                                             # the noise against the teacher's guided path from the same noise
                                             # (the rest: the one step each sample trains)
    student_init: str = ""                   # start the student from this DiT folder (dit.json + safetensors;
                                             # 'default': the shipped student, weights/dit-fast) to distil further

    def check(self) -> None:
        if self.preset not in PRESETS:
            raise InvalidRequest("preset", self.preset, "one of " + ", ".join(PRESETS))
        if not 0 < self.object_weight <= 100:
            raise InvalidRequest("object_weight", self.object_weight,
                                 "a loss weight in (0, 100]; 1 weighs every cell alike")
        for name in ("text_dropout", "cond_prob", "image_share", "reverse_pairs", "shape_pairs", "distill_rollout",
                     "distill_endpoint"):
            if not 0 <= getattr(self, name) <= 1:
                raise InvalidRequest(name, getattr(self, name), "a probability between 0 and 1")
        if self.reverse_pairs + self.shape_pairs > 1:
            raise InvalidRequest("reverse_pairs + shape_pairs", self.reverse_pairs + self.shape_pairs,
                                 "shares of steps that add up to at most 1")
        if not 0 <= self.pair_weight <= 100:
            raise InvalidRequest("pair_weight", self.pair_weight, "a loss weight in [0, 100]; 0: no difference loss")
        if not 0.1 <= self.time_shift <= 100:
            raise InvalidRequest("time_shift", self.time_shift, "a factor in [0.1, 100]; 1 keeps the shift for the "
                                 "clip's size, above 1 trains more at high noise")
        if not 0 <= self.position_freqs <= 16:
            raise InvalidRequest("position_freqs", self.position_freqs, "0 (RoPE alone) to 16 frequencies")
        if self.token_budget < 1 or self.cache_clips < 1 or self.shard_clips < 1:
            raise InvalidRequest("token_budget/cache_clips/shard_clips", None, "positive integers")
        if self.distill_steps and not self.init:
            raise InvalidRequest("init", None, "the teacher to distil (a model folder or 'default') with distill_steps")
        if not 0 < self.time_shift_share <= 1:
            raise InvalidRequest("time_shift_share", self.time_shift_share, "a share in (0, 1] of the samples that "
                                 "take time_shift")
        if self.time_shift_share != 1 and self.time_shift == 1:
            raise InvalidRequest("time_shift_share", self.time_shift_share, "1 unless time_shift is set: the share "
                                 "says how many samples take the time shift")
        if self.time_shift != 1 and self.distill_steps:
            raise InvalidRequest("time_shift", self.time_shift, "1 with distill_steps: a student trains at its own "
                                 "sampler's times, which the time shift does not move")
        if self.student_init and not self.distill_steps:
            raise InvalidRequest("student_init", self.student_init,
                                 "a student to distil further: only with distill_steps")
        if self.distill_steps < 0 or self.distill_substeps < 1:
            raise InvalidRequest("distill_steps/distill_substeps", None, "distill_steps ≥ 0 and distill_substeps ≥ 1")
        parse_interval(self.distill_cfg_interval, "distill_cfg_interval")
        for scenario in self.scenarios:
            if scenario not in SCENARIOS:
                raise InvalidRequest("scenarios", scenario, "ToyWorld scenarios among " + ", ".join(SCENARIOS))
        if self.text_features not in FEATURES:
            raise InvalidRequest("text_features", self.text_features, " or ".join(FEATURES))

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
        scenario = rng.choice(cfg.scenarios) if cfg.scenarios else None
        scene = sample_scene(seed, aspect=bucket.aspect, duration=duration, split="train", scenario=scenario)
        clip = render(scene, bucket.width, bucket.height, fps=cfg.fps, num_frames=bucket.frames)
        yield bucket, clip.frames, scene_captions(scene), clip.bbox, None
        moves = any(o.direction for o in scene.objects)       # a scene of still objects is its own reversal
        twins = {"reverses": reversed_scene(scene) if cfg.reverse_pairs and bucket.frames > 1 and moves else None,
                 "reshapes": reshaped_scene(scene, random.Random(f"reshape/{seed}")) if cfg.shape_pairs else None}
        for kind, twin in twins.items():   # the same frames backwards, or other outlines; captioned to match
            if twin is not None:
                clip = render(twin, bucket.width, bucket.height, fps=cfg.fps, num_frames=bucket.frames)
                yield bucket, clip.frames, scene_captions(twin), clip.bbox, kind


def object_mask(bbox: torch.Tensor, height: int, width: int, spatial: int, temporal: int) -> torch.Tensor:
    """uint8 (T', height / spatial, width / spatial): 1 on the latent cells that an object's drawn box touches in
    any frame the latent frame encodes (the first frame alone, then `temporal` frames each, as the VAE groups
    them), else 0. bbox: (N, T, 4) x0, y0, x1, y1 pixels, NaN where an object is not drawn (render.Clip.bbox);
    spatial, temporal: the VAE's factors."""
    N, T, _ = bbox.shape
    frames = torch.zeros(T, height // spatial, width // spatial, dtype=torch.bool)
    for t, i in zip(*torch.nonzero(~bbox[..., 0].isnan().T, as_tuple=True)):   # every drawn (frame, object)
        x0, y0, x1, y1 = bbox[i, t].tolist()
        frames[t, int(y0 // spatial):math.ceil(y1 / spatial), int(x0 // spatial):math.ceil(x1 / spatial)] = True
    groups = [frames[:1]] + [frames[1 + k:1 + k + temporal] for k in range(0, T - 1, temporal)]
    return torch.stack([g.any(0) for g in groups]).to(torch.uint8)


def _folder_shard(dataset: VideoFolderDataset, shard: int, size: int):
    """Clips of a video folder; a file that fails to decode is reported by the dataset and skipped."""
    captions_of = {item.path: item.captions for item in dataset.items}
    for index in range(shard * size, min((shard + 1) * size, len(dataset))):
        try:
            sample = dataset[index]
        except MediaError:
            continue
        yield sample["bucket"], sample["video"], captions_of[sample["path"]] or {"caption": ""}, None, None


def _render_shard(job):
    """Worker side of a parallel cache build: shard k's ToyWorld clips as plain arrays (cheap to pickle)."""
    cfg, buckets, k = job
    return k, [(b, frames.numpy(), *rest) for b, frames, *rest in _toyworld_shard(cfg, buckets, k)]


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

    # one thread each: rendering is numpy work, and the parent's threads encode
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=torch.set_num_threads,
                             initargs=(1,)) as pool:
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
            yield k, [(b, torch.from_numpy(frames), *rest) for b, frames, *rest in clips]


@torch.no_grad()
def build_cache(cfg: TrainConfig, cache: Path, vae: VideoVAE, *, folder=None, rank: int = 0, world: int = 1,
                workers: int = 1, progress: bool = True) -> int:
    """Encode clips into `cache/shard-NNNNN.safetensors` (+ .json captions); shards already there are kept,
    so an interrupted build resumes. Shard k is built by rank k % world. ToyWorld shards render in `workers`
    processes per rank (the result does not depend on it). Clips of one bucket in a shard are encoded as one
    batch. With cfg.reverse_pairs, a clip's time reversal follows it, marked "reverses"; with cfg.shape_pairs, its
    reshaped twin, marked "reshapes". Returns the number of shards."""
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
        for bucket in dict.fromkeys(clip[0] for clip in clips):   # one encode per bucket, in first-seen order
            index = [i for i, clip in enumerate(clips) if clip[0] == bucket]
            video = to_model_input(torch.stack([clips[i][1] for i in index])).to(device)
            for i, z in zip(index, vae.encode(video)):
                latents[i] = z.to(torch.float16).cpu()
        tensors = {f"latents.{i}": z for i, z in enumerate(latents)}
        factors = vae.cfg.spatial_factor, vae.cfg.temporal_factor
        tensors |= {f"objects.{i}": object_mask(bbox, b.height, b.width, *factors)   # ToyWorld's ground truth
                    for i, (b, _, _, bbox, _) in enumerate(clips) if bbox is not None}
        save_file(tensors, str(cache / f"shard-{k:05d}.safetensors"))
        meta = [{"bucket": [b.frames, b.height, b.width], "captions": c, "objects": bbox is not None}
                | ({twin: True} if twin else {}) for b, _, c, bbox, twin in clips]
        (cache / f"shard-{k:05d}.json").write_text(json.dumps(meta))  # written last: marks the shard complete
    return shards


PAIRS = {"reverses": "reverse_pairs", "reshapes": "shape_pairs"}   # kind of twin in a cache -> TrainConfig option


class LatentCache:
    """The clips of a latent cache, grouped by bucket, as (shard file, index, captions, has an object mask), and
    its pairs of each kind (PAIRS: a clip and its time reversal or its reshaped twin), grouped the same way. A
    batch reads only the latents it draws, memory-mapped from the shards: a process holds its batch, not the
    cache, and the processes of one machine share one copy of it in the page cache."""

    def __init__(self, cache: Path):
        self.by_bucket: dict[Bucket, list[tuple[str, int, dict, bool]]] = {}
        self.pairs_by_kind: dict[str, dict[Bucket, list[tuple[tuple, tuple]]]] = {kind: {} for kind in PAIRS}
        self._open = {}
        for meta_path in sorted(cache.glob("shard-*.json")):
            shard = str(meta_path.with_suffix(".safetensors"))
            original = None
            for i, item in enumerate(json.loads(meta_path.read_text())):
                bucket = Bucket(*item["bucket"])
                entry = (shard, i, item["captions"], item.get("objects", False))   # caches before masks: none
                self.by_bucket.setdefault(bucket, []).append(entry)
                kind = next((kind for kind in PAIRS if item.get(kind)), None)
                if kind:                                                  # a twin follows its clip (and its other twin)
                    self.pairs_by_kind[kind].setdefault(bucket, []).append((original, entry))
                else:
                    original = entry
        if not self.by_bucket:
            raise InvalidRequest("cache", str(cache), "a latent cache with at least one clip")

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_bucket.values())

    @property
    def masked(self) -> int:
        """Clips with an object mask (ToyWorld clips cached since object masks were added)."""
        return sum(item[3] for items in self.by_bucket.values() for item in items)

    def _tensor(self, shard: str, name: str) -> torch.Tensor:
        if shard not in self._open:          # shards stay open once read (a memory map each)
            self._open[shard] = safe_open(shard, framework="pt")
        return self._open[shard].get_tensor(name)

    def latents(self, item) -> torch.Tensor:
        """One clip's latents (C, T, H, W), fp16 as cached."""
        return self._tensor(item[0], f"latents.{item[1]}")

    def pairs(self, kind: str) -> int:
        """Pairs of one kind (PAIRS): ToyWorld caches built with reverse_pairs or shape_pairs."""
        return sum(len(v) for v in self.pairs_by_kind[kind].values())

    def batch(self, step_rng: random.Random, rank_rng: random.Random, token_budget: int, objects: bool = False,
              pairs: str | None = None):
        """(bucket, latents (B, C, T, H, W), captions, object masks (B, 1, T, H, W) as float, all 0 for clips
        without one; None unless `objects`). The bucket comes from `step_rng` (the same on every rank), the clips
        from `rank_rng`. Buckets are drawn in proportion to their clips, so every cached clip is seen about equally
        often. `pairs` (a kind of PAIRS): the batch is pairs, each twin right after its clip."""
        by_bucket = self.pairs_by_kind[pairs] if pairs else self.by_bucket
        buckets = sorted(by_bucket)
        if not buckets:
            option = PAIRS[pairs]
            raise InvalidRequest(option, "> 0", f"a cache built with {option} (ToyWorld; delete the cache's shards "
                                 "to rebuild it with each clip's twin)")
        bucket = step_rng.choices(buckets, [len(by_bucket[b]) for b in buckets])[0]
        items, size = by_bucket[bucket], batch_size_for(bucket, token_budget)
        picked = [items[rank_rng.randrange(len(items))] for _ in range(max(1, size // 2) if pairs else size)]
        picked = [clip for pair in picked for clip in pair] if pairs else picked
        latents = torch.stack([self.latents(p) for p in picked]).float()
        masks = None
        if objects:
            masks = torch.zeros(latents.shape[0], 1, *latents.shape[2:])
            for b, p in enumerate(picked):
                if p[3]:
                    masks[b, 0] = self._tensor(p[0], f"objects.{p[1]}").float()
        return bucket, latents, [p[2] for p in picked], masks


# --- 3. one step -----------------------------------------------------------------------------------------

def pick_caption(captions: dict, rng: random.Random, cfg: TrainConfig) -> str:
    if rng.random() < cfg.text_dropout:
        return ""
    levels = [lvl for lvl in cfg.caption_levels if captions.get(lvl)]
    if not levels:
        return captions.get("caption", "")
    return captions[rng.choices(levels, [cfg.caption_levels[lvl] for lvl in levels])[0]]


def pick_pair_captions(captions: list[dict], rng: random.Random, cfg: TrainConfig) -> list[str]:
    """pick_caption for pairs (a clip and its twin): both clips of a pair get the same level, or both none."""
    prompts = []
    for first, second in zip(captions[0::2], captions[1::2]):
        state = rng.getstate()
        prompts.append(pick_caption(first, rng, cfg))
        rng.setstate(state)                 # the same draws again: a reversal has the same caption levels
        prompts.append(pick_caption(second, rng, cfg))
    return prompts


def conditioning(latents: torch.Tensor, rng: random.Random, prob: float,
                 pairs: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Known latents + mask (B, C + 1, T, h, w), and the loss weight (B, 1, T, 1, 1) (0 on given frames).

    Strategies, one per sample (with `pairs`, one per pair of consecutive samples: a clip and its twin): none
    (text-to-video); first frame (image-to-video, extend forward); last frame; first and last (connect two
    images, loops); a start of the clip; an end of the clip (extend backward); both ends (connect two clips)."""
    B, T = latents.shape[0], latents.shape[2]
    known = torch.zeros(B // 2 if pairs else B, 1, T, 1, 1)
    for b in range(known.shape[0]):
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
    known = known.repeat_interleave(2, dim=0) if pairs else known
    mask = known.expand(B, 1, T, *latents.shape[3:])
    return torch.cat([latents * mask, mask], dim=1), 1 - known


def draw_batch(cache: LatentCache, cfg: TrainConfig, at: int, rank: int = 0) -> dict:
    """Everything step `at` draws on the CPU, from generators seeded by the step (and rank) alone, so a resumed
    run draws what the straight run did: {"bucket", "prompts", "latents", "cond", "weight", "noise", "t"}, and
    for distillation "times" and "segment", and "paired", the kind of pairs (PAIRS) or None. A step of pairs (a
    clip and its time reversal, cfg.reverse_pairs, or its reshaped twin, cfg.shape_pairs) gives both clips of a
    pair one noise, one time, one caption level and the same given frames, and "contrast" (B / 2,) bool marks
    the pairs whose captions differ."""
    step_rng = random.Random(f"step/{cfg.seed}/{at}")
    rank_rng = random.Random(f"step/{cfg.seed}/{at}/{rank}")
    gen = torch.Generator().manual_seed((cfg.seed * 1_000_003 + at) * 4096 + rank)
    weigh_objects = cfg.object_weight != 1
    paired = None
    if (cfg.reverse_pairs or cfg.shape_pairs) and not cfg.distill_steps:
        draw = step_rng.random()
        paired = "reverses" if draw < cfg.reverse_pairs else \
            "reshapes" if draw < cfg.reverse_pairs + cfg.shape_pairs else None
    bucket, latents, captions, objects = cache.batch(step_rng, rank_rng, cfg.token_budget, objects=weigh_objects,
                                                     pairs=paired)
    B = latents.shape[0]
    noise = torch.randn((B // 2 if paired else B, *latents.shape[1:]), generator=gen)
    shift = cfg.time_shift
    if cfg.time_shift_share < 1:                # per sample: the time shift, or the clip size's shift alone
        shift = torch.where(torch.rand(noise.shape[0], generator=gen) < cfg.time_shift_share, shift, 1.0)
    t = flow.sample_timesteps(noise.shape[0], shift * flow.shift_for_tokens(bucket.latent_tokens), generator=gen)
    if paired:
        prompts = pick_pair_captions(captions, rank_rng, cfg)
        noise, t = noise.repeat_interleave(2, dim=0), t.repeat_interleave(2, dim=0)
        contrast = torch.tensor([a != b for a, b in zip(prompts[0::2], prompts[1::2])])   # flow_loss's pair term
    else:
        prompts = [pick_caption(c, rank_rng, cfg) for c in captions]
    cond, weight = conditioning(latents, rank_rng, cfg.cond_prob, pairs=bool(paired))
    if weigh_objects:
        weight = loss_weight(weight, objects, cfg.object_weight)
    drawn = {"bucket": bucket, "prompts": prompts, "latents": latents, "cond": cond, "weight": weight,
             "noise": noise, "t": t, "paired": paired} | ({"contrast": contrast} if paired else {})
    if cfg.distill_steps:
        drawn["times"] = flow.sampling_times(cfg.distill_steps, flow.shift_for_tokens(bucket.latent_tokens))
        drawn["segment"] = torch.randint(cfg.distill_steps, (B,), generator=gen)
        if cfg.distill_rollout:
            drawn["rollout"] = torch.rand(B, generator=gen) < cfg.distill_rollout
    return drawn


def flow_loss(model, latents, text, t, noise, cond, weight, pair_weight: float = 0.0, contrast=None):
    """Weighted mean squared velocity error. weight: (B, 1, T, 1, 1) per frame (0 on given frames), or
    (B, 1, T, H, W) per latent cell (loss_weight: objects weighed more).

    Pairs (a clip and its twin at each even index and the next, on one noise and time): `pair_weight` > 0 adds
    that many times the same error on each pair's difference, (v_a - v_b) against (target_a - target_b), for the
    pairs whose `contrast` (B / 2,) bool is set (their captions differ: with the same words the difference cannot
    be told). The plain loss holds that difference at half weight already, among everything else; since the
    inputs of a pair differ little at early times, it is what only the words can explain."""
    x_t = flow.interpolate(latents, noise, t)
    v = model(x_t, t, text.tokens, text.mask, text.pooled, cond)
    delta = v.float() - flow.velocity_target(latents, noise)
    err = delta.pow(2).mean(dim=1, keepdim=True)
    w = weight.expand_as(err)
    loss = (err * w).sum() / w.sum().clamp(min=1)
    if pair_weight and contrast is not None and contrast.any():
        pair_err = (delta[0::2] - delta[1::2])[contrast].pow(2).mean(dim=1, keepdim=True)
        pair_w = torch.maximum(weight[0::2], weight[1::2])[contrast].expand_as(pair_err)   # both clips' objects
        loss = loss + pair_weight * (pair_err * pair_w).sum() / pair_w.sum().clamp(min=1)
    return loss


def loss_weight(frame_weight: torch.Tensor, objects: torch.Tensor, object_weight: float) -> torch.Tensor:
    """Per-cell loss weights (B, 1, T, H, W): the frame's weight (0 on given frames), times `object_weight` on
    cells an object covers (objects: (B, 1, T, H, W) masks). The loss divides by the weights' sum, so a larger
    object weight shifts the loss's attention to objects (their colour, shape and motion: a few percent of the
    cells) without scaling it."""
    return frame_weight * (1 + (object_weight - 1) * objects)


def distill_loss(student, teacher, latents, text, empty, noise, cond, weight, times, segment, scale: float,
                 substeps: int, interval: tuple[float, float] = (0.0, 1.0), rollout=None, endpoint: float = 0.0):
    """Few-step distillation. The student's sampler takes the steps `times` (K + 1 times); each sample trains
    one of them, `segment` (B,): from x at its start, the teacher's guided Euler substeps reach x_b at t_b, and
    the student learns, without guidance, the one velocity that makes the same move: (x_b - x_a) / (t_b - t_a).
    x at the start is the data noised to t_a, or, where `rollout` (B,) bool is set, where the student's own steps
    from `noise` reach: the states it meets when it samples, which the teacher's guided path makes unlike the
    noised data. Given frames stay on their path from the noise in both (pipeline.keep_known_on_path).
    `empty`: the unconditional text of the teacher's guidance, which applies at substep times within `interval`
    (as sampling.classifier_free_guidance's). `weight` as flow_loss's: per frame, or per cell (an object weight
    makes the student match its teacher most closely on objects).

    `endpoint` in [0, 1]: that share of the loss compares whole samples instead (endpoint_loss): a step's error
    is corrected where it shows, in what the later steps make of it."""
    whole = endpoint_loss(student, teacher, text, empty, noise, cond, weight, times, scale, substeps, interval) \
        if endpoint > 0 else 0.0
    if endpoint == 1:
        return whole
    t_a, t_b = times[segment], times[segment + 1]                            # (B,)
    x_a = flow.interpolate(latents, noise, t_a)
    if rollout is not None and bool(rollout.any()):
        x_a = torch.where(rollout.view(-1, 1, 1, 1, 1), _rollout(student, text, noise, cond, times, segment), x_a)
    pair = TextEmbedding.cat([text, empty])
    with torch.no_grad():      # guided substeps by hand: each sample has its own times, which
        x = x_a                # sampling.classifier_free_guidance (one time per call) does not take
        for k in range(substeps):
            s, s_next = (t_a + (t_b - t_a) * j / substeps for j in (k, k + 1))
            v_c, v_u = teacher(torch.cat([x, x]), torch.cat([s, s]), pair.tokens, pair.mask, pair.pooled,
                               torch.cat([cond, cond])).float().chunk(2)
            g = torch.where((s >= interval[0]) & (s <= interval[1]), scale, 1.0).view(-1, 1, 1, 1, 1)
            x = x + (s_next - s).view(-1, 1, 1, 1, 1) * (v_u + g * (v_c - v_u))
        target = (x - x_a) / (t_b - t_a).view(-1, 1, 1, 1, 1)
    v = student(x_a, t_a, text.tokens, text.mask, text.pooled, cond)
    return endpoint * whole + (1 - endpoint) * _weighted_mse(v, target, weight)


def endpoint_loss(student, teacher, text, empty, noise, cond, weight, times, scale: float, substeps: int,
                  interval: tuple[float, float] = (0.0, 1.0)):
    """The student's whole sample against its teacher's: from the same `noise`, the student's Euler steps at
    `times` without guidance (differentiated through all of them) and the teacher sampling as the pipeline does
    (guided Euler, `substeps` per student step), both with given frames kept on their path. The per-step loss of
    distill_loss trains each step alone, from states the teacher then corrects; here an early step that starts a
    stray object pays for it in the final sample, where the teacher's path from the same noise has none. `times`
    are one sampler's, shared by the batch; given frames weigh 0, so the samples' own given frames do not count."""
    def model(net):
        return lambda x, t: net(x, t, text.tokens, text.mask, text.pooled, cond).float()
    pair = TextEmbedding.cat([text, empty])
    both = torch.cat([cond, cond])

    def teacher_pair(x, t):
        return teacher(torch.cat([x, x]), torch.cat([t, t]), pair.tokens, pair.mask, pair.pooled, both).float().chunk(2)
    with torch.no_grad():
        guided = classifier_free_guidance(teacher_pair, scale, model(teacher), interval)
        target = euler(keep_known_on_path(guided, cond, noise), noise, _substep_times(times, substeps))
    sample = euler(keep_known_on_path(model(student), cond, noise), noise, times)
    return _weighted_mse(sample, target, weight)


def _substep_times(times: torch.Tensor, substeps: int) -> torch.Tensor:
    """`times` with each step cut into `substeps` equal ones (K * substeps + 1 times)."""
    frac = torch.arange(substeps, device=times.device, dtype=times.dtype) / substeps
    inner = times[:-1, None] + (times[1:] - times[:-1])[:, None] * frac
    return torch.cat([inner.reshape(-1), times[-1:]])


def _weighted_mse(a, b, weight):
    """Squared error averaged over channels, then weighted per frame or cell and divided by the weights' sum."""
    err = (a.float() - b).pow(2).mean(dim=1, keepdim=True)
    w = weight.expand_as(err)
    return (err * w).sum() / w.sum().clamp(min=1)


@torch.no_grad()
def _rollout(student, text, noise, cond, times, segment):
    """x where the student's own sampler (Euler, given frames kept on their path) reaches at times[segment] (B,)
    from `noise`, with the given frames on their path there too."""
    velocity = keep_known_on_path(lambda x, t: student(x, t, text.tokens, text.mask, text.pooled, cond).float(),
                                  cond, noise)
    states = [noise]
    euler(velocity, noise, times[:int(segment.max()) + 1], on_step=lambda i, n, x: states.append(x))
    return known_on_path(torch.stack(states)[segment, torch.arange(len(noise))], cond, noise, times[segment])


# --- checkpoints -----------------------------------------------------------------------------------------
# One file, the same whatever the parallelism: model.NAME, ema.NAME and opt.NAME.MOMENT, full (unsharded)
# tensors keyed by parameter name. Under FSDP gathering them is a collective: every rank calls
# gather_train_state, rank 0 gets the tensors and writes them.

WHOLE = StateDictOptions(full_state_dict=True, cpu_offload=True)


def gather_train_state(model, ema, opt) -> dict[str, torch.Tensor]:
    """The full train state on CPU, on rank 0 (an empty dict on the other ranks under FSDP)."""
    tensors = {f"model.{k}": v for k, v in get_model_state_dict(model, options=WHOLE).items()}
    tensors.update({f"ema.{k}": v for k, v in get_model_state_dict(ema, options=WHOLE).items()})
    for name, state in get_optimizer_state_dict(model, opt, options=WHOLE).get("state", {}).items():
        tensors.update({f"opt.{name}.{k}": torch.as_tensor(v) for k, v in state.items()})
    return tensors


def save_train_state(out: Path, step: int, cfg: TrainConfig, tensors: dict[str, torch.Tensor]) -> None:
    tmp = out / "train_state.tmp"
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    tmp.replace(out / "train_state.safetensors")  # atomic: a run killed mid-save keeps the last good state
    (out / "train_state.json").write_text(json.dumps({"step": step, "config": asdict(cfg)}, indent=2))


def load_train_state(out: Path, model, ema, opt, *, rank: int = 0, world: int = 1) -> int:
    """Load a train state written with any number of processes into `model`, `ema` and `opt` as they are now
    (plain, DDP's inner module, or FSDP-sharded). Every rank calls this; with several, rank 0 reads the file and
    the tensors are broadcast, each rank keeping its shard."""
    names = [n for n, _ in ema.named_parameters()]   # the EMA is never wrapped: its names are the plain ones
    tensors = load_file(str(out / "train_state.safetensors")) if rank == 0 else {}
    pick = lambda prefix: {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    moments = {}
    for key, v in pick("opt").items():
        name, moment = key.rsplit(".", 1)
        if name.isdigit():                 # train states written before FSDP: moments keyed by parameter index
            name = names[int(name)]
        moments.setdefault(name, {})[moment] = v
    hyper = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    optim_state = {"state": moments, "param_groups": [{**hyper, "params": names}]} if rank == 0 else {}
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=world > 1)
    set_model_state_dict(model, pick("model"), options=options)
    set_model_state_dict(ema, pick("ema"), options=options)
    set_optimizer_state_dict(model, opt, optim_state, options=options)
    return _from_rank0(json.loads((out / "train_state.json").read_text())["step"] if rank == 0 else None, world)


def full_dit(ema, sharded: bool, tensors: dict | None = None) -> DiT | None:
    """The EMA as a plain DiT with all its weights, on rank 0 (None elsewhere): under FSDP its shards are
    gathered (a collective; `tensors` from gather_train_state saves gathering twice)."""
    if not sharded:
        return ema
    weights = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")} if tensors is not None \
        else get_model_state_dict(ema, options=WHOLE)
    if not weights:
        return None
    with torch.device("meta"):                # no memory, no init: every weight comes from `weights`
        dit = DiT(ema.cfg)
    dit.load_state_dict(weights, assign=True)
    device = next(ema.parameters()).device
    return dit.to(device).eval().requires_grad_(False)


# --- 4. parallelism --------------------------------------------------------------------------------------

PARALLEL = ("auto", "ddp", "fsdp")


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


def _from_rank0(value, world: int):
    """Rank 0's value on every rank: what is on rank 0's disk decides for all (other nodes may not see it)."""
    if world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def parallel_mode(requested: str, model: DiT, world: int) -> str:
    """'none' in one process; 'auto' shards models as wide as preset S or wider (FSDP) and replicates the
    smaller ones (DDP), whose all-gathers would cost more than the memory they save."""
    if requested not in PARALLEL:
        raise InvalidRequest("parallel", requested, "one of " + ", ".join(PARALLEL))
    if world == 1:
        return "none"
    if requested == "auto":
        return "fsdp" if model.cfg.dim >= PRESETS["S"].dim else "ddp"
    return requested


def parallelize(model: DiT, ema: DiT, mode: str, *, checkpoint_activations: bool, compile: bool, bf16: bool):
    """Wrap `model` in place for training and return the network to call. `ema` is sharded like the model
    under FSDP (each parameter split along dim 0 over the ranks, so the EMA update stays local)."""
    if compile:   # block by block, before any wrapping (DDP, FSDP): the whole model as one graph compiles for minutes
        model.compile_blocks()
    if checkpoint_activations:
        # keep only each block's input and recompute its insides in backward: memory per block falls from
        # all attention/MLP activations to one (B, L, D) tensor, for about a third more compute
        for i, block in enumerate(model.blocks):
            model.blocks[i] = checkpoint_wrapper(block)
    if mode == "fsdp":
        mesh = init_device_mesh(next(model.parameters()).device.type, (dist.get_world_size(),))
        # bf16: all-gather bf16 weights (half the traffic), reduce gradients in fp32; autocast still keeps norms
        # and softmax in fp32, and inputs are not cast (diffusion time and RoPE angles need fp32)
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16 else None, reduce_dtype=torch.float32,
                                  cast_forward_inputs=False)
        for block in model.blocks:       # one all-gather per block, freed after use: peak is one block's weights
            fully_shard(block, mesh=mesh, mp_policy=mp)
        fully_shard(model, mesh=mesh, mp_policy=mp)
        fully_shard(ema, mesh=mesh)
        return model
    return torch.nn.parallel.DistributedDataParallel(model) if mode == "ddp" else model


def _local(p: torch.Tensor) -> torch.Tensor:
    return p.to_local() if isinstance(p, DTensor) else p


# --- 5. the loop -----------------------------------------------------------------------------------------

def train(cfg: TrainConfig, out, *, folder=None, device=None, time_limit: float | None = None,
          compile: bool = False, log_every: int = 50, sample_every: int = 1000, ckpt_every: int = 250,
          cache_workers: int | None = None, cache_only: bool = False, progress: bool = True,
          parallel: str = "auto", checkpoint_activations: bool = False) -> dict:
    """Train (or resume, when `out` holds a train state) until cfg.steps or `time_limit` seconds (counted from
    the first step, after the latent cache is built). `cache_workers`: ToyWorld render processes per training
    process (default: the CPUs left over); `cache_only`: build the cache and stop. Under torchrun, `parallel`
    is "ddp", "fsdp" or "auto" (parallel_mode); `checkpoint_activations` trades compute for memory. Neither
    changes what is computed, so a run may resume with other choices and another number of processes.

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
    text_encoder = load_text_encoder(cfg.text_encoder, device=device, features=cfg.text_features)
    if cache_workers is None:
        cache_workers = max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")) - 1)
    shards = build_cache(cfg, out / "cache", vae, folder=folder, rank=rank, world=world, workers=cache_workers,
                         progress=progress)
    if world > 1:
        dist.barrier()
    if cache_only:
        return {"cache_shards": shards}
    cache = LatentCache(out / "cache")
    if cfg.object_weight != 1 and rank == 0 and cache.masked < len(cache):
        log.warning("object_weight %g: %d of %d cached clips have no object mask (video files, or a cache built "
                    "before masks were cached: delete its shards to rebuild) and weigh every cell alike",
                    cfg.object_weight, len(cache) - cache.masked, len(cache))

    # the model, its EMA and optimizer
    torch.manual_seed(cfg.seed)
    if cfg.init:
        model = DiT.load(Path(cfg.init) / "dit" if cfg.init != "default" else
                         Path(__file__).parent / "weights" / "dit", device=device).train()
    else:
        model = DiT(replace(PRESETS[cfg.preset], text_dim=text_encoder.dim,
                            position_freqs=cfg.position_freqs)).to(device).train()
    if cfg.position_freqs and not model.cfg.position_freqs:
        model.add_position(cfg.position_freqs)  # an init without it: its layer starts at zero
    elif cfg.position_freqs not in (0, model.cfg.position_freqs):
        raise InvalidRequest("position_freqs", cfg.position_freqs, f"{model.cfg.position_freqs}, as the --init "
                             "model reads the frame position (or 0 to keep it)")
    if cfg.text_features == "last+embeddings" and 2 * model.cfg.text_dim == text_encoder.dim:
        model.widen_text(text_encoder.dim)      # an init trained on "last": the new columns start at zero
    if model.cfg.text_dim != text_encoder.dim:
        raise InvalidRequest("text_encoder", cfg.text_encoder,
                             f"an encoder of width {model.cfg.text_dim} for this DiT (it gives {text_encoder.dim})")
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    teacher = copy.deepcopy(model).eval().requires_grad_(False) if cfg.distill_steps else None
    if cfg.student_init:   # the student goes on from an earlier distillation; the teacher stays `init`
        student = DiT.load(Path(__file__).parent / "weights" / "dit-fast" if cfg.student_init == "default" else
                           Path(cfg.student_init), device=device)
        if model.cfg.position_freqs and not student.cfg.position_freqs:
            student.add_position(model.cfg.position_freqs)   # a student from before its teacher gained it
        if student.cfg != model.cfg:
            raise InvalidRequest("student_init", cfg.student_init, f"a DiT of the teacher's shape ({model.cfg})")
        model.load_state_dict(student.state_dict())
        ema.load_state_dict(student.state_dict())
    mode = parallel_mode(parallel, model, world)
    net = parallelize(model, ema, mode, checkpoint_activations=checkpoint_activations, compile=compile,
                      bf16=device.type == "cuda")
    sharded = mode == "fsdp"
    if rank == 0:
        log.info("%d process(es), parallel: %s, activation checkpointing: %s", world, mode, checkpoint_activations)
    # built on the parameters as wrapped: under FSDP, the moments are sharded like the parameters
    # fused: one kernel for the whole update on a GPU (not for sharded parameters)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay,
                            fused=device.type == "cuda" and not sharded)
    resume = _from_rank0((out / "train_state.safetensors").is_file(), world)
    step = load_train_state(out, model, ema, opt, rank=rank, world=world) if resume else 0
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    # generation defaults: the shape the model was trained on
    defaults = {"fps": cfg.fps, "resolution": cfg.resolutions[0], "aspect": cfg.aspects[0],
                "seconds": max(cfg.seconds, default=0.0)}
    if cfg.init:                    # a fine-tune samples as the model it started from was tuned to sample
        defaults |= {k: v for k, v in load_info(cfg.init).defaults.items() if k in INHERITED_DEFAULTS}
    if cfg.distill_steps:           # a student samples in its own steps, without guidance
        defaults |= {"steps": cfg.distill_steps, "cfg": 1.0}
    info = ModelInfo(text_encoder=cfg.text_encoder, text_features=cfg.text_features, defaults=defaults, trained={
        "fps": cfg.fps, "resolutions": list(cfg.resolutions), "aspects": list(cfg.aspects),
        "seconds": list(cfg.seconds), "image_resolutions": list(cfg.image_resolutions), "recipe": asdict(cfg)})

    def inputs(at: int) -> dict:
        """Step `at`'s batch, made in a thread while the step before runs on the device, so reading the cache
        overlaps the GPU's work."""
        drawn = draw_batch(cache, cfg, at, rank)
        pin = device.type == "cuda"
        return {k: v.pin_memory() if pin and isinstance(v, torch.Tensor) else v for k, v in drawn.items()}

    prefetch = ThreadPoolExecutor(1, thread_name_prefix="straightline-batch")
    upcoming = prefetch.submit(inputs, step)
    start, metrics, logged, saved = time.perf_counter(), {}, [], None
    bar = tqdm(total=cfg.steps, initial=step, desc="dit", unit="step", disable=not progress or rank != 0)
    while step < cfg.steps:
        if _should_stop(time_limit is not None and time.perf_counter() - start > time_limit, world, device):
            break
        drawn = upcoming.result()
        upcoming = prefetch.submit(inputs, step + 1)
        bucket, on = drawn["bucket"], {k: v.to(device, non_blocking=True) for k, v in drawn.items()
                                       if isinstance(v, torch.Tensor)}
        text = text_encoder(drawn["prompts"])
        if compile:
            text = text.padded(32)     # one compiled shape per bucket, not per bucket and longest caption
        lr = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))
        for group in opt.param_groups:
            group["lr"] = lr
        with autocast:
            if teacher is None:
                loss = flow_loss(net, on["latents"], text, on["t"], on["noise"], on["cond"], on["weight"],
                                 cfg.pair_weight, on.get("contrast"))
            else:
                loss = distill_loss(net, teacher, on["latents"], text, text_encoder([""] * len(drawn["prompts"])),
                                    on["noise"], on["cond"], on["weight"], on["times"], on["segment"],
                                    cfg.distill_cfg, cfg.distill_substeps, cfg.distill_cfg_interval,
                                    on.get("rollout"), cfg.distill_endpoint)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)  # FSDP: all-reduces norms
        opt.step()
        with torch.no_grad():                                      # FSDP: this rank's shards of both
            torch._foreach_lerp_([_local(e) for e in ema.parameters()], [_local(p) for p in model.parameters()],
                                 1 - cfg.ema)
        step += 1
        logged.append(loss.detach())                               # read at logging: no wait for the GPU per step
        bar.update(1)
        if step % log_every == 0 or step == cfg.steps:
            metrics = {"step": step, "loss": torch.stack(logged).mean().item(), "grad_norm": float(grad_norm),
                       "lr": lr, "bucket": str(bucket), "batch": drawn["latents"].shape[0],
                       "elapsed_s": round(time.perf_counter() - start, 1)}
            logged = []
            bar.set_postfix(loss=f"{metrics['loss']:.4f}")
            if rank == 0:
                with open(out / "log.jsonl", "a") as f:
                    f.write(json.dumps(metrics) + "\n")
        if step % ckpt_every == 0 or step == cfg.steps:
            checkpoint(out, step, cfg, model, ema, opt, vae, info, rank=rank, sharded=sharded)
            saved = step
        if sample_every and step % sample_every == 0:
            previews = full_dit(ema, sharded)                       # every rank: FSDP gathers the EMA
            if rank == 0:
                write_previews(out / "samples", step, previews, vae, text_encoder, info)
    prefetch.shutdown(cancel_futures=True)
    bar.close()
    if saved != step:
        checkpoint(out, step, cfg, model, ema, opt, vae, info, rank=rank, sharded=sharded)
    if world > 1:
        dist.barrier()
    return metrics


def checkpoint(out: Path, step: int, cfg: TrainConfig, model, ema, opt, vae, info, *, rank: int,
               sharded: bool) -> None:
    """The train state and the model folder (EMA weights), written by rank 0; every rank calls this."""
    tensors = gather_train_state(model, ema, opt)
    dit = full_dit(ema, sharded, tensors)
    if rank == 0:
        save_train_state(out, step, cfg, tensors)
        # the recipe's "steps" is where the run was told to stop; "steps_run" is how far this checkpoint got
        save_model(out, dit, vae, replace(info, trained=info.trained | {"steps_run": step}))


def write_previews(folder: Path, step: int, ema, vae, text_encoder, info) -> None:
    """A few fixed prompts sampled with the EMA model, written as mp4 (the same seed every time, so
    previews of successive steps are comparable)."""
    from .pipeline import Pipeline, validate_request
    from .video_io import write_video

    folder.mkdir(parents=True, exist_ok=True)
    pipe = Pipeline(dit=ema, vae=vae, text=text_encoder, info=info, device=next(ema.parameters()).device,
                    cuda_graphs=False)   # a few clips: capturing graphs would cost more than it saves
    requests = [validate_request(p, seed=i, info=info) for i, p in enumerate(PREVIEW_PROMPTS)]
    for i, result in enumerate(pipe.generate(requests)):
        write_video(folder / f"step{step:07d}_{i}.mp4", result.frames, fps=result.fps)
