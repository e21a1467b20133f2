"""Train the video autoencoder: `straightline vae train --out runs/vae [--steps N] [--folder videos/]`.

The story of one step: draw a batch (ToyWorld clips, procedural textures and, when given, real videos — all
at a random bucket of sizes, aspects and durations, images included) → encode → sample the posterior →
decode → loss (L1 + edge L1 + small KL, optionally a hinge GAN term) → AdamW step → EMA → log, preview,
checkpoint.

Exact resume: the batch of step s depends only on (seed, s), and the checkpoint holds the weights, the EMA,
the optimiser moments and the RNG state, so a run stopped and resumed equals a run never stopped.
The EMA weights are what `vae.save` ships.
"""

import copy
import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from .data import IMAGE_SUFFIXES, VIDEO_SUFFIXES, Bucket, from_model_output, make_buckets, to_model_input
from .errors import InvalidRequest, MediaError
from .metrics import psnr
from .vae import PRESETS, VideoVAE, compute_latent_stats, grow_decoder, kl_divergence
from .video_io import read_image, read_video, write_video
from .world import render, sample_scene

log = logging.getLogger("straightline.train_vae")


@dataclass
class VAETrainConfig:
    preset: str = "default"
    steps: int = 20_000
    lr: float = 3e-4
    pixel_budget: int = 2 * 9 * 64 * 64     # pixels per batch (frames × height × width, summed over clips)
    crop: int = 64                           # clips are rendered at full size, then a crop×crop window trains
    resolutions: tuple[int, ...] = (96, 128, 192)
    durations: tuple[float, ...] = (0.0, 0.35)  # seconds at fps: images and 9 frames (3 latent frames)
    fps: float = 24.0
    edge_weight: float = 1.0                 # L1 on spatial gradients keeps edges crisp
    temporal_weight: float = 0.0             # L1 on frame-to-frame changes: no flicker a video does not have
    boundary_weight: float = 0.0             # L1 on the changes across latent-frame boundaries, where a causal
                                             # decoder's frames jump (and where every prompting seam falls)
    motion_weight: float = 0.0               # L1 over the pixels that move: small moving objects, not the
                                             # background that fills most of the frame, are what must follow
    outline_weight: float = 0.0              # L1 over the pixels on strong edges: small objects keep their shape
    profile_weight: float = 0.0              # L1 between how much each frame changes in the clip and in the
                                             # reconstruction: no latent frame held and then jumped
    kl_weight: float = 1e-6
    gan_weight: float = 0.0                  # > 0 adds a 3D patch discriminator (hinge loss)
    gan_start: int = 5_000
    texture_ratio: float = 0.25              # share of clips that are procedural textures (real-video proxy)
    folder_ratio: float = 0.25               # share of clips from --folder, when given
    ema: float = 0.999
    seed: int = 0
    init: str | None = None                  # start from this VAE folder ("default": the shipped VAE)
    decoder_only: bool = False               # freeze the encoder and its latent statistics: latents stay the
                                             # same, so a diffusion model trained on them stays valid
    decoder_blocks: int | None = None        # grow the decoder to this many residual blocks per stage; the new
                                             # ones start as the identity, so training starts from init's output


# --- data ------------------------------------------------------------------------------------------------

def texture_clip(rng: random.Random, bucket: Bucket) -> torch.Tensor:
    """A pseudo-natural clip: coloured 1/f noise (the spectrum of natural images) drifting and zooming.
    Real footage is mostly texture, which ToyWorld's flat shapes lack. uint8 (T, H, W, 3)."""
    g = torch.Generator().manual_seed(rng.getrandbits(63))
    size = 2 * max(bucket.height, bucket.width)
    fy = torch.fft.fftfreq(size).view(-1, 1)
    fx = torch.fft.rfftfreq(size).view(1, -1)
    falloff = 1.0 / (fy ** 2 + fx ** 2 + 1e-4) ** (rng.uniform(0.7, 1.2) / 2)
    spectrum = torch.randn(3, size, size // 2 + 1, 2, generator=g)
    field = torch.fft.irfft2(torch.view_as_complex(spectrum) * falloff, s=(size, size))
    mix = torch.randn(3, 3, generator=g) * 0.5 + torch.eye(3)  # correlated colour channels
    field = torch.einsum("ij,jhw->ihw", mix, field)
    field = (field - field.mean()) / (field.std() + 1e-8) * rng.uniform(0.15, 0.35) + rng.uniform(0.3, 0.7)
    vx, vy = rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5)      # pixels per frame
    frames = []
    for t in range(bucket.frames):
        y0, x0 = int(bucket.height / 2 + vy * t), int(bucket.width / 2 + vx * t)
        frames.append(field[:, y0:y0 + bucket.height, x0:x0 + bucket.width])
    video = torch.stack(frames, dim=1).clamp(0, 1)               # (3, T, H, W)
    return (video.permute(1, 2, 3, 0) * 255 + 0.5).to(torch.uint8)


def make_batch(cfg: VAETrainConfig, buckets: list[Bucket], step: int, folder=None) -> torch.Tensor:
    """The batch of `step`: uint8 (B, T, H, W, 3), a function of (cfg.seed, step) alone."""
    rng = random.Random(cfg.seed * 1_000_003 + step)
    bucket = rng.choice(buckets)
    crop_h, crop_w = min(cfg.crop, bucket.height), min(cfg.crop, bucket.width)
    size = max(1, cfg.pixel_budget // (bucket.frames * crop_h * crop_w))
    clips = []
    for i in range(size):
        source = rng.random()
        if folder is not None and source < cfg.folder_ratio:
            clips.append(folder.clip(rng, bucket))
        elif source > 1 - cfg.texture_ratio:
            clips.append(texture_clip(rng, bucket))
        else:
            duration = max(bucket.frames - 1, 1) / cfg.fps
            scene = sample_scene(rng.getrandbits(40), aspect=bucket.aspect, duration=duration)
            clips.append(render(scene, bucket.width, bucket.height, fps=cfg.fps, num_frames=bucket.frames).frames)
        # the convolutional VAE learns from windows: objects keep their full-size scale, steps stay cheap
        y0, x0 = rng.randrange(bucket.height - crop_h + 1), rng.randrange(bucket.width - crop_w + 1)
        clips[-1] = clips[-1][:, y0:y0 + crop_h, x0:x0 + crop_w]
    return torch.stack(clips)


class Batches(torch.utils.data.IterableDataset):
    """The batches of steps start, start + 1, ... in order. Under a DataLoader with n workers, worker k makes
    steps start + k, start + k + n, ...; the loader takes them round-robin, so the order (and every batch, a
    function of (seed, step) alone) is the same with any number of workers."""

    def __init__(self, cfg: VAETrainConfig, buckets: list[Bucket], start: int, folder=None):
        self.cfg, self.buckets, self.start, self.folder = cfg, buckets, start, folder

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        k, n = (info.id, info.num_workers) if info else (0, 1)
        step = self.start + k
        while True:
            yield make_batch(self.cfg, self.buckets, step, self.folder)
            step += n


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)   # render workers: the trainer's threads do the arithmetic


class FolderClips:
    """Random clips from the videos and photos in a folder, at a bucket's shape. A photo becomes a clip under a
    slow camera pan (`photo_clip`): real textures, moving as footage does. Unreadable files are skipped, never
    fatal: each is logged once (as a warning, from whichever process meets it) and kept in `skipped`
    (path -> reason), which the training log reports as `skipped_files` when batches are made in-process."""

    def __init__(self, root, fps: float):
        self.paths = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES + IMAGE_SUFFIXES)
        if not self.paths:
            raise InvalidRequest("folder", str(root),
                                 f"a folder holding videos or photos ({', '.join(VIDEO_SUFFIXES + IMAGE_SUFFIXES)})")
        self.fps, self.skipped = fps, {}

    def clip(self, rng: random.Random, bucket: Bucket) -> torch.Tensor:
        for _ in range(20):
            path = rng.choice(self.paths)
            try:
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    return photo_clip(read_image(path), rng, bucket)
                video = read_video(path, fps=self.fps, max_frames=bucket.frames,
                                   size=(bucket.width, bucket.height), fit="crop")
            except MediaError as err:
                if str(path) not in self.skipped:
                    log.warning("skipping %s: %s", path, err.reason)
                    self.skipped[str(path)] = err.reason
                continue
            if video.frames.shape[0] == bucket.frames:
                return video.frames
        raise MediaError(self.paths[0].parent, f"no readable clip of {bucket.frames} frames in 20 tries")


def photo_clip(image: torch.Tensor, rng: random.Random, bucket: Bucket, speed: float = 2.0) -> torch.Tensor:
    """A photo (uint8 (H, W, 3)) as a clip at a bucket's shape: scaled to cover the frame, zoomed in 1–2×, and
    panned in a straight line at up to `speed` pixels a frame (sub-pixel steps, as a camera moves), mirrored
    at random. uint8 (T, h, w, 3)."""
    h, w, frames = bucket.height, bucket.width, bucket.frames
    photo = image.permute(2, 0, 1)[None].float() / 255
    if rng.random() < 0.5:
        photo = photo.flip(-1)
    scale = max(h / photo.shape[2], w / photo.shape[3]) * rng.uniform(1.0, 2.0)
    size = (max(h, round(photo.shape[2] * scale)), max(w, round(photo.shape[3] * scale)))
    photo = F.interpolate(photo, size=size, mode="bilinear", antialias=True, align_corners=False)
    room_y, room_x = size[0] - h, size[1] - w
    steps = max(frames - 1, 1)
    vy = rng.uniform(-1, 1) * min(speed, room_y / steps)
    vx = rng.uniform(-1, 1) * min(speed, room_x / steps)
    y0 = rng.uniform(max(0.0, -vy * steps), room_y - max(0.0, vy * steps))
    x0 = rng.uniform(max(0.0, -vx * steps), room_x - max(0.0, vx * steps))
    t = torch.arange(frames, dtype=torch.float32).view(-1, 1, 1)
    ys = (y0 + vy * t + torch.arange(h).view(1, -1, 1) + 0.5) / size[0] * 2 - 1     # sample at pixel centres
    xs = (x0 + vx * t + torch.arange(w).view(1, 1, -1) + 0.5) / size[1] * 2 - 1
    grid = torch.stack(torch.broadcast_tensors(xs, ys), dim=-1)                      # (T, h, w, 2): x, y
    video = F.grid_sample(photo.expand(frames, -1, -1, -1), grid, mode="bilinear", align_corners=False)
    return (video.permute(0, 2, 3, 1).clamp(0, 1) * 255 + 0.5).to(torch.uint8)


# --- losses ----------------------------------------------------------------------------------------------

def temporal_l1(pred, target, every: int = 1):
    """L1 between frame-to-frame changes (B, C, T, H, W): penalises flicker and motion that is not in the
    target, which a per-frame loss leaves free; 0 for images. every=k: only the changes from frame jk to
    jk + 1 (with k the VAE's temporal factor, the steps across latent-frame boundaries)."""
    if pred.shape[2] < 2:
        return pred.new_zeros(())
    dt = lambda v: (v[:, :, 1:] - v[:, :, :-1])[:, :, ::every]
    return (dt(pred) - dt(target)).abs().mean()


MOVED = 4 / 127.5   # a pixel moved when a channel changed by more than 4 grey levels since the frame before


def motion_l1(pred, target):
    """Mean L1 over the pixels that move in the target (B, C, T, H, W): changed since the frame before, grown
    by one pixel so edges count. A moving object is a few hundred of a frame's pixels, so in the whole-frame
    mean its error is noise; an encoder can leave it where it was in the first frame and lose little. Here
    the moving pixels are the whole mean. 0 for images and still clips."""
    if target.shape[2] < 2:
        return pred.new_zeros(())
    moved = (target[:, :, 1:] - target[:, :, :-1]).abs().amax(dim=1, keepdim=True) > MOVED
    moved = F.max_pool3d(moved.float(), (1, 3, 3), stride=1, padding=(0, 1, 1))
    error = (pred[:, :, 1:] - target[:, :, 1:]).abs() * moved
    return error.sum() / (moved.sum() * pred.shape[1]).clamp(min=1)


EDGE = 32 / 127.5   # an outline: a channel differs by more than 32 grey levels from the next pixel across


def outline_l1(pred, target):
    """Mean L1 over the pixels on strong edges in the target (B, C, T, H, W), grown by one pixel: the outlines
    of objects. A small star and a small ring differ in a few dozen pixels of their outlines; in the
    whole-frame mean that difference is noise, and both come back as the same blob. Here the outlines are the
    whole mean."""
    dy = (target[..., 1:, :] - target[..., :-1, :]).abs().amax(dim=1, keepdim=True) > EDGE
    dx = (target[..., :, 1:] - target[..., :, :-1]).abs().amax(dim=1, keepdim=True) > EDGE
    edge = F.pad(dy, (0, 0, 0, 1)) | F.pad(dy, (0, 0, 1, 0)) | F.pad(dx, (0, 1)) | F.pad(dx, (1, 0))
    edge = F.max_pool3d(edge.float(), (1, 3, 3), stride=1, padding=(0, 1, 1))
    return ((pred - target).abs() * edge).sum() / (edge.sum() * pred.shape[1]).clamp(min=1)


def change_profile_l1(pred, target):
    """L1 between the change profiles of (B, C, T, H, W) clips: the mean absolute change from each frame to
    the next, per clip. A decoder that shows each latent frame's first picture for a while and then jumps
    (a 3-Hz stutter at 12 fps) has a profile far from the clip's even one, though each of its frames is near
    the truth; motion that is late but smooth has the clip's profile. 0 for images."""
    if target.shape[2] < 2:
        return pred.new_zeros(())
    profile = lambda v: (v[:, :, 1:] - v[:, :, :-1]).abs().mean(dim=(1, 3, 4))      # (B, T - 1)
    return (profile(pred) - profile(target)).abs().mean()


def edge_l1(pred, target):
    """L1 between spatial finite differences: penalises blurred edges more than plain L1 does."""
    dx = lambda v: v[..., :, 1:] - v[..., :, :-1]
    dy = lambda v: v[..., 1:, :] - v[..., :-1, :]
    return (dx(pred) - dx(target)).abs().mean() + (dy(pred) - dy(target)).abs().mean()


def loss_terms(recon, video, mean, logvar, temporal_factor: int, names) -> dict:
    """The named loss terms of a reconstruction (B, C, T, H, W) of `video` and its posterior (mean, logvar)."""
    term = {"l1": lambda: (recon - video).abs().mean(), "edge": lambda: edge_l1(recon, video),
            "temporal": lambda: temporal_l1(recon, video), "motion": lambda: motion_l1(recon, video),
            "outline": lambda: outline_l1(recon, video),
            "boundary": lambda: temporal_l1(recon, video, every=temporal_factor),
            "profile": lambda: change_profile_l1(recon, video),
            "kl": lambda: kl_divergence(mean.float(), logvar.float())}
    return {name: term[name]() for name in names}


class PatchDiscriminator(nn.Module):
    """A small 3D patch discriminator (hinge loss) for the optional adversarial term."""

    def __init__(self, channels: int = 32):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv3d(3, c, (3, 4, 4), (1, 2, 2), (1, 1, 1)), nn.LeakyReLU(0.2),
            nn.Conv3d(c, 2 * c, (3, 4, 4), (1, 2, 2), (1, 1, 1)), nn.GroupNorm(8, 2 * c), nn.LeakyReLU(0.2),
            nn.Conv3d(2 * c, 4 * c, (3, 4, 4), (1, 2, 2), (1, 1, 1)), nn.GroupNorm(8, 4 * c), nn.LeakyReLU(0.2),
            nn.Conv3d(4 * c, 1, 3, 1, 1))

    def forward(self, video):
        return self.net(video)


# --- checkpoints -----------------------------------------------------------------------------------------

def save_state(out: Path, step: int, cfg, vae, ema, opt, disc=None, disc_opt=None) -> None:
    tensors = {f"model.{k}": v for k, v in vae.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    for prefix, o in (("opt", opt), ("disc_opt", disc_opt)):
        if o is None:
            continue
        for i, state in o.state_dict()["state"].items():
            tensors.update({f"{prefix}.{i}.{k}": torch.as_tensor(v) for k, v in state.items()})
    if disc is not None:
        tensors.update({f"disc.{k}": v for k, v in disc.state_dict().items()})
    tensors["rng"] = torch.get_rng_state()
    tmp = out / "train_state.tmp"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    tmp.replace(out / "train_state.safetensors")  # atomic: a run killed mid-save keeps the last good state
    (out / "train_state.json").write_text(json.dumps({"step": step, "config": asdict(cfg)}, indent=2))
    ema.save(out)


def load_state(out: Path, vae, ema, opt, disc=None, disc_opt=None) -> int:
    tensors = load_file(str(out / "train_state.safetensors"))
    pick = lambda prefix: {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    vae.load_state_dict(pick("model"))
    ema.load_state_dict(pick("ema"))
    for prefix, o in (("opt", opt), ("disc_opt", disc_opt)):
        if o is None:
            continue
        sd = o.state_dict()
        flat = pick(prefix)
        for key, v in flat.items():
            i, name = key.split(".", 1)
            sd["state"].setdefault(int(i), {})[name] = v
        o.load_state_dict(sd)
    if disc is not None:
        disc.load_state_dict(pick("disc"))
    torch.set_rng_state(tensors["rng"])
    return json.loads((out / "train_state.json").read_text())["step"]


def run_config(folder) -> VAETrainConfig:
    """The config of the training run in `folder` (its train_state.json), or the defaults where there is none
    (a shipped checkpoint): the buckets the latent statistics are measured on."""
    state = Path(folder) / "train_state.json"
    if not state.is_file():
        return VAETrainConfig()
    saved = json.loads(state.read_text())["config"]
    return VAETrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})


def record_latent_stats(vae: VideoVAE, cfg: VAETrainConfig, batches: int = 32) -> None:
    """Store per-channel latent mean/std (measured on fresh batches) in the model, so `encode` gives the
    diffusion model unit-variance latents."""
    buckets = make_buckets(resolutions=cfg.resolutions, aspects=("16:9", "9:16", "1:1", "4:3"),
                           durations=cfg.durations, fps=cfg.fps)
    device = next(vae.parameters()).device
    videos = (to_model_input(make_batch(cfg, buckets, 10 ** 9 + i)).to(device) for i in range(batches))
    compute_latent_stats(vae, videos)


# --- the loop --------------------------------------------------------------------------------------------

def train(cfg: VAETrainConfig, out, *, folder=None, device="cpu", time_limit: float | None = None,
          log_every: int = 50, preview_every: int = 1000, ckpt_every: int = 500, workers: int = 0,
          progress: bool = True) -> dict:
    """Train (or resume, when `out` holds a train state) until cfg.steps or `time_limit` seconds. `workers`:
    processes rendering batches ahead (0: the training process renders them; the batches are the same).
    `preview_every`: write an original | reconstruction video every N steps (0: never). Returns the last logged
    metrics."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    device = torch.device(device)
    vae = (VideoVAE.load(cfg.init, device=device) if cfg.init else VideoVAE(PRESETS[cfg.preset]).to(device)).train()
    if cfg.decoder_blocks is not None:
        vae = grow_decoder(vae, cfg.decoder_blocks)
    if cfg.decoder_only:
        vae.encoder.requires_grad_(False)
    ema = copy.deepcopy(vae).eval().requires_grad_(False)
    opt = torch.optim.AdamW([p for p in vae.parameters() if p.requires_grad], lr=cfg.lr, betas=(0.9, 0.99),
                            weight_decay=0.0)
    disc = PatchDiscriminator().to(device) if cfg.gan_weight > 0 else None
    disc_opt = torch.optim.AdamW(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9)) if disc else None
    step = load_state(out, vae, ema, opt, disc, disc_opt) if (out / "train_state.safetensors").exists() else 0
    buckets = make_buckets(resolutions=cfg.resolutions, aspects=("16:9", "9:16", "1:1", "4:3"),
                           durations=cfg.durations, fps=cfg.fps)
    folder = FolderClips(folder, cfg.fps) if folder else None
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    log_file = (out / "log.jsonl").open("a")
    # with its own generator: a DataLoader would otherwise draw a seed from the global RNG, which the
    # posterior samples use, and resuming would no longer be exact
    batches = Batches(cfg, buckets, step, folder)
    if workers:
        batches = torch.utils.data.DataLoader(batches, batch_size=None, num_workers=workers, prefetch_factor=4,
                                              worker_init_fn=_one_thread, generator=torch.Generator())
    batches = iter(batches)
    start, metrics = time.time(), {}
    weights = {"l1": 1.0, "edge": cfg.edge_weight, "temporal": cfg.temporal_weight, "motion": cfg.motion_weight,
               "outline": cfg.outline_weight, "boundary": cfg.boundary_weight, "profile": cfg.profile_weight,
               "kl": cfg.kl_weight}
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="vae", unit="step")
    while step < cfg.steps and (time_limit is None or time.time() - start < time_limit):
        video = to_model_input(next(batches)).to(device)
        with autocast:   # a decoder trained alone decodes the posterior mean, which is what diffusion makes
            recon, mean, logvar = vae(video, sample=not cfg.decoder_only)
        recon = recon.float()
        # only the weighted terms are computed (and back-propagated) every step; the others just for the log
        weighted = {name: w for name, w in weights.items() if w}
        terms = loss_terms(recon, video, mean, logvar, vae.cfg.temporal_factor, weighted)
        loss = sum(w * terms[name] for name, w in weighted.items())
        use_gan = disc is not None and step >= cfg.gan_start
        if use_gan:
            with autocast:
                loss = loss - cfg.gan_weight * disc(recon).float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if use_gan:
            with autocast:
                d_loss = F.relu(1 - disc(video)).mean() + F.relu(1 + disc(recon.detach())).mean()
            disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            disc_opt.step()
        with torch.no_grad():
            decay = min(cfg.ema, (1 + step) / (10 + step))  # warm-up: early EMA follows the model
            for e, p in zip(ema.parameters(), vae.parameters()):
                e.lerp_(p, 1 - decay)
        step += 1
        bar.update(1)
        if step % log_every == 0 or step == cfg.steps:
            with torch.no_grad():
                terms |= loss_terms(recon, video, mean, logvar, vae.cfg.temporal_factor, weights.keys() - terms.keys())
            metrics = {"step": step, "loss": loss.item()} | {name: terms[name].item() for name in weights} | {
                       "psnr": psnr(recon.detach().clamp(-1, 1), video, peak=2.0), "grad_norm": grad_norm.item(),
                       "shape": list(video.shape), "elapsed_s": round(time.time() - start, 1)}
            if folder is not None and not workers:
                metrics["skipped_files"] = len(folder.skipped)
            log_file.write(json.dumps(metrics) + "\n")
            log_file.flush()
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", psnr=f"{metrics['psnr']:.1f}")
        if preview_every and step % preview_every == 0:
            with torch.no_grad():
                preview = torch.cat([video[:1], recon[:1].clamp(-1, 1)], dim=-1)  # original | reconstruction
            frames = from_model_output(preview)[0].cpu()
            write_video(out / f"preview_{step:07d}.mp4", frames, cfg.fps)
        if step % ckpt_every == 0:
            save_state(out, step, cfg, vae, ema, opt, disc, disc_opt)
    if step >= cfg.steps and not cfg.decoder_only:
        record_latent_stats(ema, cfg)
    save_state(out, step, cfg, vae, ema, opt, disc, disc_opt)
    bar.close()
    log_file.close()
    return metrics
