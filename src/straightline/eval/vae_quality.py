"""Reconstruction quality of a video autoencoder: PSNR and SSIM on held-out ToyWorld clips and on real clips,
and its temporal error (flicker).

    rows = quality(vae, n_toy=12)        # one row per clip: set, clip, size, frames, psnr, ssim, temporal
    rows = through(vae, n=50)            # adherence rows of ToyWorld's own renders, as they are and round-tripped

`temporal`: the mean absolute difference (0-255) between the reconstruction's frame-to-frame changes and the
clip's own: 0 when every change is reproduced, however blurred the frames; flicker and lost motion raise it.

ToyWorld clips are fresh scenes (seeds 10^9 + i, which training never draws) at 16:9, 9:16 and 1:1; real clips
are the files in ../shared/media at their native aspect ratio (short side `real_short`, or native when smaller).
benchmarks/bench_vae.py and the evaluation report both call this.
"""

from pathlib import Path

from ..data import from_model_output, to_model_input
from ..metrics import psnr, ssim
from ..request import size_for
from ..video_io import probe, read_video
from ..world import render, sample_scene

MEDIA = Path(__file__).resolve().parents[3].parent / "shared" / "media"
MEDIA_SUFFIXES = (".mp4", ".gif")


def reconstruct(vae, frames, device="cpu"):
    """uint8 (T, H, W, 3) -> the VAE's reconstruction, uint8 (T, H, W, 3)."""
    return from_model_output(vae.decode(vae.encode(to_model_input(frames[None]).to(device))).cpu())[0]


def temporal_error(rec, clip) -> float:
    """Mean |Δrec - Δclip| over consecutive frames of uint8 (T, H, W, 3) videos, in grey levels (0 for T = 1)."""
    if len(clip) < 2:
        return 0.0
    change = lambda v: v[1:].float() - v[:-1].float()
    return float((change(rec) - change(clip)).abs().mean())


def through(vae, n: int = 50, *, device="cpu", resolution: int = 128, seconds: float = 1.0, fps: float = 12,
            aspect: str = "16:9") -> list[dict]:
    """What a generator can show through this VAE: the adherence benchmark's cases (eval/adherence.py, both
    splits, n each, the sizes and rate of its default run), each scene rendered and scored by perception as
    it is ("render") and after encode → decode ("vae"). A diffusion model makes latents, so the "vae" rows
    bound its adherence; the gap to "render" is what the VAE loses (moving objects left behind, blurred
    shapes).

    Returns accuracy_table rows with a "source" key ("render" or "vae"): the splits "train" and "heldout", and
    "small objects", "medium objects" and "large objects" (both splits' objects by size; no count or background)."""
    # imported here: the quality rows need neither. validate_request gives the clip size and frame count
    from ..pipeline import validate_request
    from .adherence import accuracy_table, prompt_set, score, split_of

    scored = {"render": [], "vae": []}
    for split in ("train", "heldout"):
        for prompt, scene in prompt_set(n, split, aspect=aspect, seconds=seconds):
            r = validate_request(prompt, aspect=aspect, resolution=resolution, seconds=seconds, fps=fps)
            clip = render(scene, r.width, r.height, fps=fps, num_frames=r.frames).frames
            for source, frames in (("render", clip), ("vae", reconstruct(vae, clip, device))):
                s = score(frames, fps, scene)
                scored[source].append((split_of(scene), s))
                for o in s["objects"]:   # both splits' objects again by size: small ones are where shape is lost
                    size = f"{scene.objects[o['object']].size} objects"
                    scored[source].append((size, {"objects": [o], "count": None, "background": None}))
    return [{"source": source, **row} for source, rows in scored.items() for row in accuracy_table(rows) if row["n"]]


def toyworld_rows(vae, n: int, *, device="cpu", short: int = 144, frames: int = 33, fps: float = 24) -> list[dict]:
    rows = []
    aspects = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0}
    for i in range(n):
        name = list(aspects)[i % 3]
        w, h = size_for(aspects[name], short if name != "1:1" else short * 4 // 3)
        scene = sample_scene(10 ** 9 + i, aspect=aspects[name], duration=(frames - 1) / fps)
        clip = render(scene, w, h, fps=fps, num_frames=frames).frames
        rec = reconstruct(vae, clip, device)
        rows.append({"set": "toyworld", "clip": f"seed {10 ** 9 + i} ({scene.background})", "size": f"{w}x{h}",
                     "frames": frames, "psnr": psnr(rec, clip), "ssim": ssim(rec, clip),
                     "temporal": temporal_error(rec, clip)})
    return rows


def real_rows(vae, *, device="cpu", short: int = 256, max_frames: int = 33, media: Path = MEDIA,
              limit: int | None = None) -> list[dict]:
    """Rows for the real clips in `media` (none when the folder is absent)."""
    rows = []
    paths = sorted(p for p in media.glob("*") if p.suffix.lower() in MEDIA_SUFFIXES) if media.is_dir() else []
    for path in paths[:limit]:
        info = probe(path)
        aspect = info["width"] / info["height"]
        side = min(short, info["height"], info["width"]) // 8 * 8      # never upscale a small clip
        w, h = size_for(aspect, side, multiple=8)
        frames = read_video(path, max_frames=max_frames, size=(w, h), fit="crop").frames
        frames = frames[: 1 + 4 * ((frames.shape[0] - 1) // 4)]
        rec = reconstruct(vae, frames, device)
        rows.append({"set": "real", "clip": path.name, "size": f"{w}x{h} (from {info['width']}x{info['height']})",
                     "frames": frames.shape[0], "psnr": psnr(rec, frames), "ssim": ssim(rec, frames),
                     "temporal": temporal_error(rec, frames)})
    return rows


def quality(vae, n_toy: int = 12, *, device="cpu", toy_short: int = 144, real_short: int = 256,
            frames: int = 33, real_limit: int | None = None) -> list[dict]:
    """PSNR/SSIM rows for n_toy ToyWorld clips and the real clips (see the module docstring)."""
    return (toyworld_rows(vae, n_toy, device=device, short=toy_short, frames=frames)
            + real_rows(vae, device=device, short=real_short, max_frames=frames, limit=real_limit))
