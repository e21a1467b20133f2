"""Video I/O speed: decode of the shared clips (native size, and resized to 256x256), H.264 encode of a synthetic
clip at 256², 512² and 1280x720.

    python benchmarks/bench_video_io.py [--repeats 2] [--encode-frames 48] [--json out.json]

Decode rows read each whole clip with read_video (RGB conversion included; the resized rows crop to
256x256 with antialiased bicubic). Encode rows write an mp4 with write_video (libx264, crf 18, yuv420p,
default preset). Each row is the best of `repeats` runs.
"""

import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import torch

from straightline.video_io import probe, read_video, write_video

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
CLIPS = ("cockatoo.mp4", "bigbuckbunny.mp4", "realshort.mp4", "carphone_pristine.mp4", "newtonscradle.gif")


def best_seconds(run, repeats):
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def synthetic_clip(num_frames, height, width):
    """uint8 (T, H, W, 3): drifting stripes over gradients, textured enough that the encoder does real work."""
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    frames = []
    for t in range(num_frames):
        phase = t / num_frames * 2 * math.pi
        stripes = 0.5 + 0.5 * torch.sin(40 * (x + 0.3 * y) + phase)
        frames.append(torch.stack([x, stripes, (y + t / num_frames) % 1], dim=-1))
    return (torch.stack(frames) * 255).to(torch.uint8)


def row(task, clip, size, frames, seconds):
    return {"task": task, "clip": clip, "size": size, "frames": frames, "seconds": round(seconds, 3),
            "frames_per_s": round(frames / seconds, 1)}  # fmt: skip


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--encode-frames", type=int, default=48)
    ap.add_argument("--json")
    args = ap.parse_args()

    rows = []
    for name in CLIPS:
        path = MEDIA / name
        if not path.exists():
            print(f"skipping {name}: not found in {MEDIA}")
            continue
        info = probe(path)
        frames = read_video(path).num_frames
        native = best_seconds(lambda: read_video(path), args.repeats)
        rows.append(row("decode", name, f"{info['width']}x{info['height']}", frames, native))
        resized = best_seconds(lambda: read_video(path, size=(256, 256)), args.repeats)
        rows.append(row("decode + resize", name, "256x256", frames, resized))

    with tempfile.TemporaryDirectory() as folder:
        for width, height in ((256, 256), (512, 512), (1280, 720)):
            clip = synthetic_clip(args.encode_frames, height, width)
            target = Path(folder) / f"{width}x{height}.mp4"
            seconds = best_seconds(lambda: write_video(target, clip, fps=24), args.repeats)
            rows.append(row("encode H.264", "synthetic", f"{width}x{height}", args.encode_frames, seconds))

    cpu = platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu}")
    print("| task | clip | size | frames | seconds | frames/s |\n|---|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['task']} | {r['clip']} | {r['size']} | {r['frames']} | {r['seconds']} | {r['frames_per_s']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
