"""Training data: ToyWorld rendered on the fly, folders of real videos and images, and the buckets that let
one model train on mixed resolutions, aspect ratios and durations.

A Bucket is one clip shape (frames, height, width). A batch never mixes buckets, so it stacks without
padding, and its batch size is chosen so that every batch holds about the same number of latent tokens:
step time and memory stay flat whichever bucket a step draws.

Datasets yield `video` uint8 (T, H, W, 3); batches carry uint8 (B, T, H, W, 3); `to_model_input` makes
the model's float (B, C, T, H, W) in [-1, 1]. Bad media files are skipped, logged once and counted, never
fatal (DESIGN.md, errors).
"""

import bisect
import itertools
import json
import logging
import math
import os
import random
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import torch
from torch.utils.data import Dataset, IterableDataset, Sampler, get_worker_info
from tqdm import tqdm

from .errors import InvalidRequest, MediaError
from .request import frames_for, parse_aspect, size_for
from .video_io import probe, read_video, write_video
from .world import render, sample_scene
from .world.captions import captions as scene_captions

log = logging.getLogger("straightline.data")

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
INDEX_NAME = ".straightline-index.json"
DEFAULT_LEVELS = {"short": 0.2, "medium": 0.4, "long": 0.4}


# --- buckets ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Bucket:
    """One clip shape: `frames` (1 + 4k; 1 is an image) × `height` × `width` pixels (multiples of 16)."""
    frames: int
    height: int
    width: int

    def __post_init__(self):
        if self.frames < 1 or (self.frames - 1) % 4:
            raise InvalidRequest("frames", self.frames, "1 + 4k frames (1, 5, 9, ...)")
        for name in ("height", "width"):
            if getattr(self, name) < 16 or getattr(self, name) % 16:
                raise InvalidRequest(name, getattr(self, name), "a positive multiple of 16 pixels")

    @property
    def latent_tokens(self) -> int:
        """DiT tokens: the VAE compresses 4×8×8 (the first frame alone), then patches are 1×2×2."""
        return (1 + (self.frames - 1) // 4) * (self.height // 16) * (self.width // 16)

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def __str__(self) -> str:
        return f"{self.frames}f {self.width}x{self.height}"


def make_buckets(resolutions=(128, 256), aspects=("16:9", "9:16", "1:1", "4:3", "3:4"),
                 durations=(0.0, 1.0, 2.0, 4.0), fps: float = 24.0) -> list[Bucket]:
    """Every (duration, resolution, aspect) combination as a Bucket, sorted, without duplicates.

    Args:
        resolutions: short sides in pixels (rounded to multiples of 16).
        aspects: width:height, as "16:9" or a number.
        durations: seconds; 0 makes 1-frame (image) buckets, others the 1 + 4k frames spanning them at fps.
        fps: the rate durations are counted at (the datasets' fps).
    """
    shapes = set()
    for seconds, resolution, aspect in itertools.product(durations, resolutions, aspects):
        width, height = size_for(parse_aspect(aspect), resolution)
        shapes.add(Bucket(frames_for(seconds, fps), height, width))
    return sorted(shapes)


def batch_size_for(bucket: Bucket, token_budget: int) -> int:
    """Clips of `bucket` that fit in `token_budget` latent tokens (at least 1)."""
    return max(1, token_budget // bucket.latent_tokens)


# Rounding sides to multiples of 16 moves a nominal aspect by a few percent (4:3 is 176x128 but 336x256), so
# buckets within this log-distance of the best aspect count as the same aspect.
_ASPECT_TOLERANCE = math.log(1.1)


def nearest_bucket(frames: int, height: int, width: int, buckets) -> Bucket | None:
    """The bucket for a real clip of `frames` (counted at the buckets' fps) × `height` × `width`.

    Aspect ratio first, because a centre crop to another aspect cuts content; then the longest, largest
    bucket that needs no upscaling (or, if every one does, the least upscaled). None when the clip is
    shorter than every bucket.
    """
    fitting = [b for b in buckets if b.frames <= frames]
    if not fitting:
        return None
    distance = {b: abs(math.log(b.aspect * height / width)) for b in fitting}
    best = min(distance.values())
    same_aspect = [b for b in fitting if distance[b] <= best + _ASPECT_TOLERANCE]
    no_upscale = [b for b in same_aspect if b.height <= height and b.width <= width]
    if no_upscale:
        return max(no_upscale, key=lambda b: (b.frames, b.height * b.width))
    return max(same_aspect, key=lambda b: (b.frames, -b.height * b.width))


def collate(samples: list[dict]) -> dict:
    """Samples of one bucket -> a batch: `video` uint8 (B, T, H, W, 3), `bucket` the shared Bucket, every
    other key a list. For DataLoader(collate_fn=collate)."""
    buckets = {s["bucket"] for s in samples}
    if len(buckets) != 1:
        raise ValueError(f"a batch mixes buckets {sorted(map(str, buckets))}; use BucketBatchSampler")
    batch = {key: [s[key] for s in samples] for key in samples[0]}
    batch["video"], batch["bucket"] = torch.stack(batch["video"]), buckets.pop()
    return batch


def to_model_input(video: torch.Tensor) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float32 (B, C, T, H, W) in [-1, 1], the model's layout (DESIGN.md)."""
    if video.dtype != torch.uint8 or video.ndim != 5 or video.shape[-1] != 3:
        raise ValueError(f"expected uint8 (B, T, H, W, 3), got {video.dtype} {tuple(video.shape)}")
    # contiguous: the permute alone leaves channels-last strides, which reshapes in the VAE would copy anyway
    return video.permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0).contiguous()


def from_model_output(video: torch.Tensor) -> torch.Tensor:
    """float (B, C, T, H, W) in [-1, 1] -> uint8 (B, T, H, W, 3): the inverse of to_model_input (clamped)."""
    return ((video.permute(0, 2, 3, 4, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


# --- captions --------------------------------------------------------------------------------------------

def _check_captioning(dropout: float, levels: dict) -> None:
    if not 0.0 <= dropout <= 1.0:
        raise InvalidRequest("caption_dropout", dropout, "a probability between 0 and 1")
    if not levels or set(levels) - set(DEFAULT_LEVELS) or min(levels.values()) < 0 or sum(levels.values()) <= 0:
        raise InvalidRequest("caption_levels", levels, "weights >= 0 for short/medium/long, not all 0")


def _pick_caption(captions: dict[str, str], rng: random.Random, dropout: float, levels: dict) -> str:
    """"" with probability `dropout` (the unconditional branch of classifier-free guidance), else a level
    drawn by `levels` among the weighted levels present, else the plain caption, else any text there is."""
    if rng.random() < dropout:
        return ""
    present = [level for level, weight in levels.items() if weight > 0 and captions.get(level)]
    if not present:
        return captions.get("caption") or next(iter(captions.values()), "")
    return captions[rng.choices(present, weights=[levels[level] for level in present])[0]]


# --- ToyWorld on the fly ---------------------------------------------------------------------------------

def _worker() -> tuple[int, int]:
    info = get_worker_info()
    return (info.id, info.num_workers) if info else (0, 1)


class ToyWorldDataset(IterableDataset):
    """Endless ToyWorld clips rendered on the fly; each sample draws its bucket by `weights`.

    Args:
        buckets: the shapes to render; weights: relative frequency of each (default uniform).
        fps: frame rate of the clips (motion is continuous, so any rate shows the same scene).
        split: "train" never contains a held-out (colour, shape, motion) triple; "heldout" or "any".
        caption_dropout: probability of the empty caption (classifier-free guidance).
        caption_levels: weights of the short / medium / long captions.
        seed, rank, world_size: scene seeds derive from (seed, rank, DataLoader worker, counter) and never
            collide across ranks and workers.

    Yields:
        {"video": uint8 (T, H, W, 3), "caption": str, "bucket": Bucket, "seed": int (the scene's seed),
         "scene": the scene as JSON}. Batch with ToyWorldBatches, or DataLoader(collate_fn=collate).
    """

    def __init__(self, buckets, weights=None, *, fps: float = 24.0, split: str = "train",
                 caption_dropout: float = 0.1, caption_levels: dict = DEFAULT_LEVELS, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.buckets = list(buckets)
        if not self.buckets:
            raise InvalidRequest("buckets", self.buckets, "at least one Bucket")
        self.weights = list(weights) if weights is not None else [1.0] * len(self.buckets)
        if len(self.weights) != len(self.buckets) or min(self.weights) < 0 or sum(self.weights) <= 0:
            raise InvalidRequest("weights", weights, f"{len(self.buckets)} weights >= 0, not all 0")
        if split not in ("train", "heldout", "any"):
            raise InvalidRequest("split", split, "one of train, heldout, any")
        _check_captioning(caption_dropout, caption_levels)
        _check_rank(rank, world_size)
        self.fps, self.split, self.seed, self.rank, self.world_size = fps, split, seed, rank, world_size
        self.caption_dropout, self.caption_levels = caption_dropout, dict(caption_levels)

    def _stream(self):
        """(rng, iterator of scene seeds) for the calling process: one stream per rank × DataLoader worker."""
        worker, workers = _worker()
        stream, num_streams = self.rank * workers + worker, self.world_size * workers
        # Streams interleave, so no two ever render the same scene; the base seed is shifted past any
        # realistic sample count, so runs with different seeds draw different scenes.
        seeds = ((self.seed << 40) + counter * num_streams + stream for counter in itertools.count())
        return random.Random(f"toyworld/{self.seed}/{stream}/{num_streams}"), seeds

    def sample(self, scene_seed: int, bucket: Bucket, rng: random.Random) -> dict:
        """Render scene `scene_seed` as one sample of `bucket`; `rng` draws the caption."""
        duration = max(bucket.frames - 1, 1) / self.fps  # the span the frames cover (an image still needs > 0)
        scene = sample_scene(scene_seed, aspect=bucket.aspect, duration=duration, split=self.split)
        clip = render(scene, bucket.width, bucket.height, fps=self.fps, num_frames=bucket.frames)
        caption = _pick_caption(scene_captions(scene), rng, self.caption_dropout, self.caption_levels)
        return {"video": clip.frames, "caption": caption, "bucket": bucket, "seed": scene_seed,
                "scene": scene.to_json()}

    def __iter__(self):
        rng, seeds = self._stream()
        for scene_seed in seeds:
            yield self.sample(scene_seed, rng.choices(self.buckets, self.weights)[0], rng)


class ToyWorldBatches(IterableDataset):
    """Endless single-bucket batches of `dataset`: use with DataLoader(batch_size=None).

    Batch k's bucket is drawn by `dataset.weights` from an rng of (seed, k) alone, so every rank trains the
    same bucket at step k (DDP steps stay in step) while scenes differ. DataLoader worker w builds batches
    w, w + num_workers, ... and the loader returns them in order, so this holds with workers too (give
    every rank the same num_workers). Uniform weights spend equal compute on every bucket, since each batch
    holds about `token_budget` tokens.

    Yields:
        {"video": uint8 (B, T, H, W, 3), "caption": list[str], "bucket": Bucket, "seed": list[int],
         "scene": list[str]} with B = batch_size_for(bucket, token_budget).
    """

    def __init__(self, dataset: ToyWorldDataset, token_budget: int):
        self.dataset, self.token_budget = dataset, token_budget

    def __iter__(self):
        ds = self.dataset
        rng, seeds = ds._stream()
        for step in itertools.count(*_worker()):
            bucket = random.Random(f"toyworld-bucket/{ds.seed}/{step}").choices(ds.buckets, ds.weights)[0]
            size = batch_size_for(bucket, self.token_budget)
            yield collate([ds.sample(next(seeds), bucket, rng) for _ in range(size)])


# --- sampler ---------------------------------------------------------------------------------------------

def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1:
        raise InvalidRequest("world_size", world_size, "at least 1")
    if not 0 <= rank < world_size:
        raise InvalidRequest("rank", rank, f"0 to {world_size - 1}")


class BucketBatchSampler(Sampler):
    """Batches of indices where every batch comes from one bucket; for DataLoader(batch_sampler=...).

    Each epoch shuffles every bucket's indices and the order of batches with an rng of (seed, epoch), the
    same on every rank. A global batch of world_size × batch_size_for(bucket) indices is cut into one
    disjoint share per rank, so all ranks yield the same number of batches, and batch k has the same
    bucket on every rank. With drop_last=False a bucket's last global batch is filled up by repeating its
    first indices (as DistributedSampler pads), so every share is a full batch.

    Args:
        bucket_of: the bucket of each dataset index (VideoFolderDataset.bucket_of).
        batch_size_for: bucket -> per-rank batch size, e.g. lambda b: batch_size_for(b, 8192).
    """

    def __init__(self, bucket_of, batch_size_for, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = True, shuffle: bool = True):
        _check_rank(rank, world_size)
        self.members: dict[Bucket, list[int]] = defaultdict(list)
        for index, bucket in enumerate(bucket_of):
            self.members[bucket].append(index)
        self.batch_size = batch_size_for
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.drop_last, self.shuffle, self.epoch = drop_last, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _global_batches(self) -> list[list[int]]:
        rng = random.Random(f"buckets/{self.seed}/{self.epoch}")
        batches = []
        for bucket in sorted(self.members):
            indices = list(self.members[bucket])
            if self.shuffle:
                rng.shuffle(indices)
            size = self.batch_size(bucket) * self.world_size
            for start in range(0, len(indices), size):
                batch = indices[start:start + size]
                if len(batch) < size:
                    if self.drop_last:
                        break
                    batch += itertools.islice(itertools.cycle(indices), size - len(batch))
                batches.append(batch)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self):
        for batch in self._global_batches():
            share = len(batch) // self.world_size
            yield batch[self.rank * share:(self.rank + 1) * share]

    def __len__(self) -> int:
        return len(self._global_batches())


# --- folders of real videos and images -------------------------------------------------------------------

@dataclass
class _Item:
    path: str                  # relative to the folder, POSIX
    bucket: Bucket
    captions: dict[str, str]   # short/medium/long and/or "caption"; empty when none was found


class VideoFolderDataset(Dataset):
    """Videos (mp4, mov, webm, mkv, avi, gif) and images (png, jpg, webp; 1-frame videos) under `root`.

    Captions come from `root/captions.jsonl` (one object per line: a path key "file" | "video" | "path"
    relative to root; "caption" | "text", and/or "captions": {"short", "medium", "long"}) or a sidecar
    NAME.txt beside each file; files without one train with "" (a warning gives the count). Each file goes
    to its nearest bucket by its probe(), which is cached in `index_path` (default root/INDEX_NAME) and
    redone when a file's size or mtime changes. Files that cannot be probed, or are shorter than every
    bucket, are listed in `skipped` (relative path -> reason) and logged once.

    Args:
        buckets: candidate shapes (make_buckets); fps: the rate clips are resampled to.
        caption_dropout, caption_levels: as in ToyWorldDataset; the draw depends on (seed, epoch, index).

    Attributes:
        bucket_of: the Bucket of each index, for BucketBatchSampler.
        skipped: files left out, with the reason. Decode failures inside DataLoader worker processes are
            counted in those processes' copies.
    """

    def __init__(self, root, buckets, *, fps: float = 24.0, caption_dropout: float = 0.0,
                 caption_levels: dict = DEFAULT_LEVELS, seed: int = 0, index_path=None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise MediaError(self.root, "is not a folder")
        _check_captioning(caption_dropout, caption_levels)
        self.fps, self.seed, self.epoch = fps, seed, 0
        self.caption_dropout, self.caption_levels = caption_dropout, dict(caption_levels)
        self.skipped: dict[str, str] = {}
        table = _read_caption_table(self.root)
        self.items: list[_Item] = []
        for path, entry in _probe_all(self.root, index_path or self.root / INDEX_NAME).items():
            if "error" in entry:
                self._skip(path, entry["error"])
                continue
            info = entry["probe"]
            frames = _frames_at(info, fps)
            bucket = nearest_bucket(frames, info["height"], info["width"], buckets)
            if bucket is None:
                self._skip(path, f"{frames} frames at {fps:g} fps: shorter than every bucket")
                continue
            self.items.append(_Item(path, bucket, table.get(path) or _sidecar_caption(self.root / path)))
        self.missing_captions = sum(not item.captions for item in self.items)
        if self.missing_captions:
            log.warning("%d of %d files in %s have no caption; they train with the empty caption",
                        self.missing_captions, len(self.items), self.root)
        self.bucket_of = [item.bucket for item in self.items]
        self._members: dict[Bucket, list[int]] = defaultdict(list)  # ascending indices of each bucket
        for index, item in enumerate(self.items):
            self._members[item.bucket].append(index)

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Redraw caption levels and dropout (reaches DataLoader workers started after the call)."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict:
        """Sample `index`, or, if its file fails to decode, the next readable sample of the same bucket.

        Returns:
            {"video": uint8 (T, H, W, 3) of the bucket's shape, "caption": str, "bucket": Bucket,
             "path": str relative to root}.
        Raises:
            MediaError only when no file of the bucket decodes.
        """
        members = self._members[self.items[index].bucket]
        at = bisect.bisect_left(members, index)
        for i in (members[(at + k) % len(members)] for k in range(len(members))):
            item = self.items[i]
            if item.path in self.skipped:
                continue
            try:
                video = self.decode(item)
            except MediaError as err:
                self._skip(item.path, err.reason)
                continue
            rng = random.Random(f"folder/{self.seed}/{self.epoch}/{i}")
            caption = _pick_caption(item.captions, rng, self.caption_dropout, self.caption_levels)
            return {"video": video, "caption": caption, "bucket": item.bucket, "path": item.path}
        raise MediaError(self.root, f"no file of bucket {self.items[index].bucket} decodes (see skipped)")

    def decode(self, item: _Item) -> torch.Tensor:
        """uint8 (T, H, W, 3) in the item's bucket shape; MediaError when fewer frames decode than it needs."""
        b = item.bucket
        video = read_video(self.root / item.path, fps=self.fps, max_frames=b.frames, size=(b.width, b.height),
                           fit="crop")
        if video.num_frames < b.frames:  # a truncated file whose index survived: frames stop early
            issues = "".join(f"; {issue}" for issue in video.issues)
            raise MediaError(self.root / item.path, f"decoded {video.num_frames} of {b.frames} frames{issues}")
        return video.frames

    def _skip(self, path: str, reason: str) -> None:
        if path not in self.skipped:
            log.warning("skipping %s: %s", path, reason)
            self.skipped[path] = reason


def _frames_at(info: dict, fps: float) -> int:
    """Frames read_video gives at `fps` from the start of a probed file (a still image gives 1)."""
    if info["fps"] is None:
        return 1
    seconds = info["seconds"] or (info["num_frames"] or 1) / info["fps"]
    # read_video shows times k / fps before the stream's end, less its 1 ms tolerance for rounded timestamps
    return max(1, math.ceil((seconds - 1e-3) * fps))


def _media_files(root: Path) -> list[str]:
    suffixes = VIDEO_SUFFIXES + IMAGE_SUFFIXES
    paths = (p.relative_to(root) for p in root.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
    return sorted(p.as_posix() for p in paths if not any(part.startswith(".") for part in p.parts))


def _probe_all(root: Path, index_path) -> dict[str, dict]:
    """{path: {"stat", "probe"} or {"stat", "error"}} for every media file, reusing the cached index.

    Failures are cached too, so reopening a big folder with a few bad files probes nothing."""
    index_path = Path(index_path)
    try:
        cached = json.loads(index_path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        cached = {}  # no index yet, or an unreadable one: probe everything again
    entries = {}
    for path in _media_files(root):
        stat = (root / path).stat()
        key = [stat.st_size, stat.st_mtime_ns]
        entry = cached.get(path)
        if not isinstance(entry, dict) or entry.get("stat") != key:
            try:
                entry = {"stat": key, "probe": probe(root / path)}
            except MediaError as err:
                entry = {"stat": key, "error": err.reason}
        entries[path] = entry
    if entries != cached:
        try:
            partial = index_path.with_name(index_path.name + ".partial")
            partial.write_text(json.dumps({"files": entries}))
            os.replace(partial, index_path)  # readers never see half an index
        except OSError as err:
            log.info("cannot cache probes in %s (%s); the folder will be probed again next time", index_path, err)
    return entries


def _read_caption_table(root: Path) -> dict[str, dict[str, str]]:
    """captions.jsonl as {relative path: {level or "caption": text}}; MediaError names a malformed line."""
    table, path = {}, root / "captions.jsonl"
    if not path.is_file():
        return table
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        keys = ("file", "video", "path")
        file = next((entry[k] for k in keys if k in entry), None) if isinstance(entry, dict) else None
        if not isinstance(file, str):
            raise MediaError(path, f"line {number} is not a JSON object with a file, video or path key")
        levels = entry["captions"] if isinstance(entry.get("captions"), dict) else {}
        texts = {k: v for k, v in levels.items() if isinstance(v, str) and v}
        plain = entry.get("caption", entry.get("text"))
        if isinstance(plain, str) and plain:
            texts["caption"] = plain
        table[Path(file).as_posix()] = texts
    return table


def _sidecar_caption(media: Path) -> dict[str, str]:
    sidecar = media.with_suffix(".txt")
    text = sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else ""
    return {"caption": text} if text else {}


# --- export and inspection -------------------------------------------------------------------------------

def _export_clip(out_dir: Path, index: int, scene_seed: int, aspect, resolution: int, num_frames: int,
                 fps: float, split: str) -> dict:
    width, height = size_for(parse_aspect(aspect), resolution)
    scene = sample_scene(scene_seed, aspect=width / height, duration=max(num_frames - 1, 1) / fps, split=split)
    clip = render(scene, width, height, fps=fps, num_frames=num_frames)
    name = f"{index:06d}"
    write_video(out_dir / "videos" / f"{name}.mp4", clip.frames, fps)
    (out_dir / "ground_truth" / f"{name}.json").write_text(json.dumps(clip.ground_truth()))
    texts = scene_captions(scene)
    return {"file": f"videos/{name}.mp4", "caption": texts["medium"], "captions": texts, "seed": scene_seed,
            "aspect": aspect, "size": f"{width}x{height}"}


def export_toyworld(out_dir, n: int, *, resolution: int = 128, aspects=("16:9", "9:16", "1:1"),
                    seconds: float = 2.0, fps: float = 24.0, split: str = "train", seed: int = 0,
                    workers: int = 1, progress: bool = True) -> dict:
    """Render `n` ToyWorld clips into a folder that VideoFolderDataset reads.

    Writes out_dir/videos/000000.mp4, ..., out_dir/ground_truth/000000.json (Clip.ground_truth()) and
    out_dir/captions.jsonl ({"file", "caption" (the medium level), "captions" (all levels), "seed", "aspect",
    "size"} per line). Clip i is scene seed + i (as `straightline world render --seed`) framed for
    aspects[i % len(aspects)], so the output does not depend on `workers`.

    Args:
        resolution: short side in pixels; seconds: each clip's length (1 + 4k frames at fps).
        workers: processes rendering in parallel.

    Returns:
        JSON-ready summary: {"out_dir", "clips", "frames", "fps", "sizes": {"WxH": count}, "split", "seed"}.
    """
    out_dir, num_frames = Path(out_dir), frames_for(seconds, fps)
    for sub in ("videos", "ground_truth"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    jobs = [(out_dir, i, seed + i, aspects[i % len(aspects)], resolution, num_frames, fps, split) for i in range(n)]
    bar = dict(total=n, disable=not progress, desc="export", unit="clip")
    if workers <= 1:
        records = [_export_clip(*job) for job in tqdm(jobs, **bar)]
    else:
        # spawn, not fork: a forked copy of torch's thread pool can deadlock; one thread each avoids oversubscription
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=torch.set_num_threads,
                                 initargs=(1,)) as pool:
            records = list(tqdm(pool.map(_export_clip, *zip(*jobs)), **bar))
    with open(out_dir / "captions.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(record) + "\n" for record in records)
    return {"out_dir": str(out_dir), "clips": n, "frames": num_frames, "fps": fps,
            "sizes": dict(Counter(r["size"] for r in records)), "split": split, "seed": seed}


def inspect_folder(path, buckets=None, *, fps: float = 24.0, decode: bool = False, index_path=None) -> dict:
    """What VideoFolderDataset makes of a folder.

    Args:
        buckets: default make_buckets(fps=fps). decode: also decode every usable file (slow; finds files
            whose header is intact but whose frames are not). index_path: as in VideoFolderDataset.

    Returns:
        {"root", "files" (media files found), "usable", "buckets": {str(bucket): count} most first,
         "skipped": {relative path: reason} (unreadable or shorter than every bucket),
         "missing_captions": usable files without a caption}.
    """
    dataset = VideoFolderDataset(path, buckets or make_buckets(fps=fps), fps=fps, index_path=index_path)
    if decode:
        for item in dataset.items:
            try:
                dataset.decode(item)
            except MediaError as err:
                dataset._skip(item.path, err.reason)
    usable = [item for item in dataset.items if item.path not in dataset.skipped]
    counts = Counter(str(item.bucket) for item in usable)
    files = {item.path for item in dataset.items} | set(dataset.skipped)
    return {"root": str(dataset.root), "files": len(files),
            "usable": len(usable), "buckets": dict(counts.most_common()), "skipped": dict(dataset.skipped),
            "missing_captions": sum(not item.captions for item in usable)}


def format_inspection(report: dict) -> str:
    """inspect_folder's report as a plain-text table."""
    lines = [f"{report['root']}: {report['files']} media files, {report['usable']} usable, "
             f"{len(report['skipped'])} skipped, {report['missing_captions']} without a caption", "",
             f"{'bucket (frames, WxH)':<24}{'clips':>8}"]
    lines += [f"{bucket:<24}{count:>8}" for bucket, count in report["buckets"].items()]
    if report["skipped"]:
        width = max(map(len, report["skipped"])) + 2
        lines += ["", "skipped:"] + [f"  {p:<{width}}{reason}" for p, reason in report["skipped"].items()]
    return "\n".join(lines)
