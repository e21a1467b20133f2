"""Video autoencoder: reconstruction quality and speed.

    python benchmarks/bench_vae.py [--model default] [--quality] [--through] [--speed] [--memory] [--json out.json]

quality: PSNR/SSIM per clip on held-out ToyWorld clips (fresh seeds, never drawn in training, at 16:9, 9:16
         and 1:1) and on the real clips in ../shared/media at their native aspect ratio (short side 256, or native
         when smaller); and the temporal error: mean |change between frames of the reconstruction - the same
         change in the clip| in grey levels (flicker; eval/vae_quality.py).
speed:   encode and decode frames/s at 256² and 512², 17 frames, on CPU (and CUDA when available).
through: ToyWorld perception of the adherence benchmark's scenes, rendered and after a round trip through
         the VAE: the ceiling of a generator's adherence with this VAE (eval/vae_quality.through).
memory:  peak resident memory of decoding a 10-second 512² clip (8 fps, 81 frames) in chunks vs whole,
         each in a fresh process.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from straightline.eval.vae_quality import quality as eval_vae_quality
from straightline.eval.vae_quality import through
from straightline.vae import VideoVAE


def quality(vae, device, n_toy: int):
    return eval_vae_quality(vae, n_toy, device=device)


def speed(vae, device):
    rows = []
    for side in (256, 512):
        x = torch.rand(1, 3, 17, side, side, device=device) * 2 - 1
        z = vae.encode(x)
        for name, fn in (("encode", lambda x=x: vae.encode(x)), ("decode", lambda z=z: vae.decode(z))):
            best = float("inf")
            for _ in range(2):
                if device == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                fn()
                if device == "cuda":
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t)
            rows.append({"device": device, "op": name, "size": f"{side}x{side}", "frames": 17,
                         "frames_per_s": 17 / best})
    return rows


def decode_peak_memory(model: str, chunked: bool) -> dict:
    """Run in a fresh process: decode 81 frames (10 s at 8 fps) at 512², report peak RSS."""
    vae = VideoVAE.load(model)
    z = torch.randn(1, 16, 21, 64, 64)
    t = time.perf_counter()
    vae.decode(z, chunk_frames=2 if chunked else 1000, tile=1000)
    return {"chunked": chunked, "seconds": time.perf_counter() - t,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--quality", action="store_true")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--through", action="store_true", help="adherence of renders vs their VAE round trips")
    ap.add_argument("--n-through", type=int, default=50, help="scenes per split for --through")
    ap.add_argument("--through-resolution", type=int, default=128, help="short side of --through's clips (default "
                    "128, the adherence benchmark's)")
    ap.add_argument("--through-seconds", type=float, default=1.0, help="length of --through's clips at 12 fps "
                    "(default 1; 0.0833 gives 1-frame images)")
    ap.add_argument("--n-toy", type=int, default=12)
    ap.add_argument("--json")
    ap.add_argument("--_memory-child", choices=["chunked", "whole"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._memory_child:
        print(json.dumps(decode_peak_memory(args.model, args._memory_child == "chunked")))
        return
    if not (args.quality or args.speed or args.memory or args.through):
        args.quality = args.speed = args.memory = args.through = True
    device = "cuda" if torch.cuda.is_available() else "cpu"
    vae = VideoVAE.load(args.model, device=device)
    print(f"model {args.model}: {sum(p.numel() for p in vae.parameters()) / 1e6:.2f}M parameters; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads"
          + (f", {torch.cuda.get_device_name()}" if device == "cuda" else ""))
    report = {}
    if args.quality:
        rows = report["quality"] = quality(vae, device, args.n_toy)
        print("\n| set | clip | size | frames | PSNR dB | SSIM | temporal error |\n|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['set']} | {r['clip']} | {r['size']} | {r['frames']} | {r['psnr']:.2f} | {r['ssim']:.4f} "
                  f"| {r['temporal']:.3f} |")
        for s in ("toyworld", "real"):
            sel = [r for r in rows if r["set"] == s]
            if sel:
                mean = lambda key, sel=sel: sum(r[key] for r in sel) / len(sel)
                print(f"| **{s} mean** | {len(sel)} clips | | | **{mean('psnr'):.2f}** | **{mean('ssim'):.4f}** "
                      f"| **{mean('temporal'):.3f}** |")
    if args.through:
        rows = report["through"] = through(vae, args.n_through, device=device, resolution=args.through_resolution,
                                           seconds=args.through_seconds)
        print(f"\nThrough the VAE: 16:9 at short side {args.through_resolution} px, {args.through_seconds:g} s at "
              "12 fps.")
        attributes = ("color", "shape", "motion", "direction", "count", "background")
        print(f"\n| source | split | {' | '.join(attributes)} |\n|---|---|" + "---|" * len(attributes))
        for source in ("render", "vae"):
            for split in ("train", "heldout", "small objects", "medium objects", "large objects"):
                cell = {r["attribute"]: r for r in rows if r["source"] == source and r["split"] == split}
                print(f"| {source} | {split} | " + " | ".join(
                    f"{100 * cell[a]['accuracy']:.1f}% (n={cell[a]['n']})" if a in cell and cell[a]["n"] else "-"
                    for a in attributes) + " |")
    if args.speed:
        rows = report["speed"] = speed(vae, device)
        print("\n| device | op | size | frames | frames/s |\n|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['device']} | {r['op']} | {r['size']} | {r['frames']} | {r['frames_per_s']:.1f} |")
    if args.memory:
        rows = report["memory"] = []
        for mode in ("chunked", "whole"):
            out = subprocess.run([sys.executable, __file__, "--model", args.model, "--_memory-child", mode],
                                 check=False, capture_output=True, text=True)
            rows.append(json.loads(out.stdout) if out.returncode == 0
                        else {"chunked": mode == "chunked", "error": out.stderr[-300:]})
        print("\n| decode 81 frames 512² | seconds | peak RSS GB |\n|---|---|---|")
        for r in rows:
            print(f"| {'chunked (2 latent frames)' if r['chunked'] else 'whole clip'} "
                  f"| {r.get('seconds', float('nan')):.1f} "
                  f"| {r.get('peak_rss_gb', float('nan')):.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
