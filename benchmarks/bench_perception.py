"""Accuracy of world/perception.py on sampled ToyWorld scenes, clean and degraded, and of its motion words.

    python benchmarks/bench_perception.py --n 300 --short-side 90

Attributes: each scene (seeds 0..n-1, cycling 16:9, 9:16 and 1:1) is rendered with `frames` frames spread over
its 4 seconds, degraded, perceived, and its tracks matched to ground-truth objects by colour. Attributes are
scored over objects fully visible (>= 99%) in at least 3 frames; a clip's count is right when every such
object is found and no track names a colour the scene lacks. Centre error is over frames where the object
is fully visible.

Motion: static-camera scenes rendered for 2 s at 24 fps (clean); motion_of's word is scored per true motion,
its direction and speed where the motion word is right.

Runs single-threaded: planes this small gain nothing from intra-op threads, and on a shared machine lose ~30x.
Prints Markdown tables.
"""

import argparse
import io
import os
import platform
import time

import av
import numpy as np
import torch
import torch.nn.functional as F

from straightline.world import render, sample_scene, vocab
from straightline.world.perception import motion_of, perceive

ASPECTS = (16 / 9, 9 / 16, 1.0)


def blur(frames: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of uint8 (T, H, W, 3)."""
    half = int(3 * sigma)
    x = torch.arange(-half, half + 1).float()
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = (g / g.sum()).repeat(3, 1)
    img = F.pad(frames.permute(0, 3, 1, 2).float(), (half,) * 4, mode="replicate")
    img = F.conv2d(img, g[:, None, None, :], groups=3)
    img = F.conv2d(img, g[:, None, :, None], groups=3)
    return img.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def noise(frames: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    noisy = frames.float() + torch.randn(frames.shape, generator=gen) * sigma
    return noisy.round().clamp(0, 255).to(torch.uint8)


def h264(frames: torch.Tensor, crf: int) -> torch.Tensor:
    """Encode to H.264 (yuv420p, as a browser plays it) in memory and decode back."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8, options={"crf": str(crf)})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames.numpy():
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer) as container:
        return torch.from_numpy(np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]))


DEGRADATIONS = {
    "clean": lambda f: f,
    "blur 1": lambda f: blur(f, 1.0),
    "blur 2": lambda f: blur(f, 2.0),
    "noise 8": lambda f: noise(f, 8.0),
    "h264 crf 30": lambda f: h264(f, 30),
}


def score(clip, tracks) -> dict:
    """Counts of right attributes over the clip's fully visible objects, count rightness, centre errors."""
    by_color = {t.color: t for t in tracks}
    colors = {o.color for o in clip.scene.objects}
    s = {"objects": 0, "color": 0, "shape": 0, "size": 0, "center_err": [], "errors": []}
    for i, o in enumerate(clip.scene.objects):
        full = clip.visible[i] >= 0.99
        if full.sum() < 3:
            continue
        s["objects"] += 1
        t = by_color.get(o.color)
        if t is None:
            s["errors"].append(f"missed {o.describe()}")
            continue
        s["color"] += 1
        s["shape"] += t.shape == o.shape
        s["size"] += t.size == o.size
        if t.shape != o.shape or t.size != o.size:
            s["errors"].append(f"{o.describe()} ({o.motion}) seen as {t.size} {t.shape}")
        seen = full & t.present
        s["center_err"] += (t.center[seen] - clip.center[i, seen]).norm(dim=-1).tolist()
    spurious = [t.color for t in tracks if t.color not in colors]
    s["errors"] += [f"spurious {c}" for c in spurious]
    s["count"] = int(not spurious and s["color"] == s["objects"])
    return s


def run(n: int, short_side: int, frames: int, verbose: bool = False) -> dict:
    totals = {name: {"objects": 0, "color": 0, "shape": 0, "size": 0, "count": 0, "center_err": [], "seconds": 0.0}
              for name in DEGRADATIONS}
    for seed in range(n):
        aspect = ASPECTS[seed % 3]
        scene = sample_scene(seed, aspect=aspect)
        long_side = round(short_side * max(aspect, 1 / aspect) / 2) * 2
        w, h = (long_side, short_side) if aspect >= 1 else (short_side, long_side)
        clip = render(scene, w, h, fps=(frames - 1) / scene.duration, num_frames=frames)
        for name, degrade in DEGRADATIONS.items():
            video = degrade(clip.frames)
            start = time.perf_counter()
            tracks = perceive(video)
            s = score(clip, tracks)
            tot = totals[name]
            tot["seconds"] += time.perf_counter() - start
            for key in ("objects", "color", "shape", "size", "count"):
                tot[key] += s[key]
            tot["center_err"] += s["center_err"]
            if verbose and s["errors"]:
                print(f"seed {seed} {name} [{scene.background}, {scene.camera}]: " + "; ".join(s["errors"]))
    return totals


def run_motion(n: int, short_side: int) -> dict:
    """Per true motion: [objects, right motion word, right direction, right speed]."""
    totals, seed, done = {}, 0, 0
    while done < n:
        scene = sample_scene(seed, aspect=16 / 9)
        seed += 1
        if scene.camera != "static":
            continue
        done += 1
        clip = render(scene, round(short_side * 16 / 9 / 2) * 2, short_side, fps=24, num_frames=49)
        tracks = {t.color: t for t in perceive(clip.frames)}
        for i, o in enumerate(scene.objects):
            if (clip.visible[i] >= 0.99).sum() < 3 or o.color not in tracks:
                continue
            words = motion_of(tracks[o.color], 24, short_side)
            row = totals.setdefault(o.motion, [0, 0, 0, 0])
            row[0] += 1
            if words["motion"] == o.motion:
                row[1] += 1
                row[2] += words["direction"] == (o.direction if o.motion not in ("fall", "grow", "shrink") else None)
                row[3] += words["speed"] == (o.speed if o.motion not in ("fall", "still") else None)
    return totals


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="scenes")
    parser.add_argument("--short-side", type=int, default=90, help="pixels on the frame's short side")
    parser.add_argument("--frames", type=int, default=17, help="frames per clip, spread over the scene")
    parser.add_argument("--verbose", action="store_true", help="print every error")
    parser.add_argument("--n-motion", type=int, default=100, help="static-camera scenes for the motion table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    perceive(render(sample_scene(0), 64, 64, num_frames=1).frames)   # builds the background colour tables once
    totals = run(args.n, args.short_side, args.frames, args.verbose)
    print(f"Perception accuracy, {args.n} scenes, short side {args.short_side} px, {args.frames} frames per clip; "
          f"{platform.machine()} CPU ({os.cpu_count()} cores, shared), 1 thread, no GPU.\n")
    print("| video | colour | shape | size | count (clips) | centre error px (mean / p95) | s per clip |")
    print("|---|---|---|---|---|---|---|")
    for name, t in totals.items():
        pct = lambda key: f"{100 * t[key] / max(t['objects'], 1):.1f}%"
        err = torch.tensor(t["center_err"] or [float("nan")])
        print(f"| {name} | {pct('color')} | {pct('shape')} | {pct('size')} | {100 * t['count'] / args.n:.1f}% | "
              f"{err.mean():.2f} / {err.quantile(0.95):.2f} | {t['seconds'] / args.n:.3f} |")
    print(f"\n{totals['clean']['objects']} objects scored (fully visible in >= 3 frames).\n")
    if args.n_motion == 0:
        return
    motion = run_motion(args.n_motion, args.short_side)
    print(f"Motion words, {args.n_motion} static-camera scenes, 2 s at 24 fps, short side {args.short_side} px.\n")
    print("| true motion | objects | motion word | direction (if word right) | speed (if word right) |")
    print("|---|---|---|---|---|")
    for name in vocab.MOTIONS:
        n, word, direction, speed = motion.get(name, [0, 0, 0, 0])
        pct = lambda k, of: f"{100 * k / of:.0f}%" if of else "-"
        print(f"| {name} | {n} | {pct(word, n)} | {pct(direction, word)} | {pct(speed, word)} |")


if __name__ == "__main__":
    main()
