"""Close to the hardware: training-step model FLOP utilisation against the card's measured bf16 matmul peak,
and peak memory of a long, large generation.

    python benchmarks/bench_gpu.py                       # on a GPU: every row
    python benchmarks/bench_gpu.py --presets tiny --device cpu --quick    # a smoke run on a CPU

MFU: one training step (forward, backward, AdamW) of a DiT preset in bf16 autocast on a batch of one bucket,
FLOPs counted by torch.utils.flop_counter (matmuls and attention) over that step, divided by the median step
time and by the peak measured in the same run (a square bf16 matmul, the best a kernel reaches on this card).
Memory: the shipped model generating a 512x512, 8-second clip (chained passes), peak GPU memory allocated.
Prints Markdown tables.
"""

import argparse
import datetime
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from straightline import flow
from straightline.dit import PRESETS, DiT


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats: int, warmup: int = 3) -> float:
    """Median seconds of fn() over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(device, n: int, repeats: int) -> float:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    return 2 * n ** 3 / timed(lambda: a @ b, device, repeats)


def train_step_row(preset: str, device, frames: int, height: int, width: int, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = DiT(PRESETS[preset]).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    cfg = model.cfg
    x = torch.randn(batch, 16, frames, height // 8, width // 8, device=device)
    text = torch.randn(batch, 24, cfg.text_dim, device=device)
    mask = torch.ones(batch, 24, dtype=torch.bool, device=device)
    pooled = torch.randn(batch, cfg.text_dim, device=device)
    cond = torch.zeros(batch, 17, *x.shape[2:], device=device)
    t = torch.rand(batch, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step():
        with autocast:
            noise = torch.randn_like(x)
            v = model(flow.interpolate(x, noise, t), t, text, mask, pooled, cond)
            loss = (v.float() - flow.velocity_target(x, noise)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    with FlopCounterMode(display=False) as counter:
        step()
    seconds = timed(step, device, repeats)
    tokens = batch * frames * (height // 8 // cfg.patch[1]) * (width // 8 // cfg.patch[2])
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return {"preset": preset, "params_m": params, "tokens": tokens, "flops": counter.get_total_flops(),
            "step_s": seconds}


def generation_memory(device, seconds: float, resolution: int) -> dict:
    from straightline.pipeline import Pipeline
    pipe = Pipeline("default", device)
    request = pipe.validate("a red ball bouncing on a wooden floor", seconds=seconds, resolution=resolution,
                            aspect="1:1", steps=4, seed=0)
    torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    result = pipe.generate(request)[0]
    sync(device)
    return {"size": f"{request.width}x{request.height}", "frames": tuple(result.frames.shape)[0],
            "peak_gb": torch.cuda.max_memory_allocated(device) / 2 ** 30, "seconds": time.perf_counter() - start}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--presets", default="default,B", help="comma-separated DiT presets (default default,B)")
    parser.add_argument("--quick", action="store_true", help="small shapes and few repeats (a smoke run)")
    args = parser.parse_args()
    device = torch.device(args.device)
    repeats = 3 if args.quick else 10
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"# Hardware benchmark\n\n{datetime.date.today()}; {name}; torch {torch.__version__}.\n")

    peak = matmul_peak(device, 1024 if args.quick else 8192, repeats)
    print(f"Measured peak: {peak / 1e12:.1f} TFLOP/s ({'bf16' if device.type == 'cuda' else 'fp32'} square matmul, "
          f"{1024 if args.quick else 8192}³, median of {repeats}).\n")
    # a 2-second 256-px 16:9 clip at 12 fps: 7 latent frames of 32x56 latents
    frames, height, width, batch = (2, 64, 64, 1) if args.quick else (7, 256, 448, 3)
    print("| preset | params | tokens per step | step (fwd+bwd+AdamW) | TFLOP per step | TFLOP/s | MFU |")
    print("|---|---|---|---|---|---|---|")
    for preset in args.presets.split(","):
        r = train_step_row(preset, device, frames, height, width, batch, repeats)
        rate = r["flops"] / r["step_s"]
        print(f"| {preset} | {r['params_m']:.1f}M | {r['tokens']} | {r['step_s'] * 1000:.1f} ms | "
              f"{r['flops'] / 1e12:.3f} | {rate / 1e12:.1f} | {100 * rate / peak:.1f}% |")
    if device.type == "cuda" and not args.quick:
        m = generation_memory(device, 8.0, 512)
        print(f"\nShipped model, {m['size']}, 8 s ({m['frames']} frames, chained passes), 4 steps: peak GPU memory "
              f"{m['peak_gb']:.2f} GiB, {m['seconds']:.1f} s.")


if __name__ == "__main__":
    main()
