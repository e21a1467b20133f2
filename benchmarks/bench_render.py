"""ToyWorld render speed: frames per second at 128², 256², 512² (CPU, and CUDA where available).

    python benchmarks/bench_render.py [--frames 49] [--repeats 3] [--json out.json]

Each row renders the same scenes (a 1-object scene on a solid background, and a 4-object scene on a
textured one) and reports the best of `repeats` runs, physics and ground truth included.
"""

import argparse
import json
import platform
import time

import torch

from straightline.world import Scene, WorldObject, render, sample_scene


def scenes():
    single = Scene([WorldObject("ball", "red", "medium", "bounce", x=0.5, y=0.8, direction="right", speed="medium")],
                   background="night", aspect=1.0)
    busy = sample_scene(3, aspect=1.0, scenario="multi", num_objects=4)
    busy.background = "checkerboard"
    return {"1 object, solid": single, "4 objects, checker": busy}


def bench(scene, size, frames, device, repeats):
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        render(scene, size, size, fps=24, num_frames=frames, device=device, chunk=16 if device == "cuda" else 8)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return frames / best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=49)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for name, scene in scenes().items():
            for size in (128, 256, 512):
                fps = bench(scene, size, args.frames, device, args.repeats)
                rows.append({"device": device, "scene": name, "size": f"{size}x{size}", "frames_per_s": round(fps, 1)})
    cpu = platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu}"
          + (f", {torch.cuda.get_device_name()}" if "cuda" in devices else ""))
    print("| device | scene | size | frames/s |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['device']} | {r['scene']} | {r['size']} | {r['frames_per_s']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
