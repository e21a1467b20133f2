"""Close to the hardware: training-step model FLOP utilisation against the card's measured bf16 matmul peak,
and peak memory of a long, large generation.

    python benchmarks/bench_gpu.py                       # on a GPU: every row
    python benchmarks/bench_gpu.py --presets B --clips 8,16    # only the compiled rows of 4-s clips, 8 and 16 a step
    python benchmarks/bench_gpu.py --presets tiny --device cpu --quick    # a smoke run on a CPU

MFU: one training step (forward, backward, AdamW) of a DiT preset in bf16 autocast on a batch of one bucket,
eager, or with every block fused by torch.compile and a fused AdamW (and optionally cuDNN's attention first),
FLOPs counted by torch.utils.flop_counter (matmuls and attention) over that step, divided by the median step
time and by the peak measured in the same run (a square bf16 matmul, the best a kernel reaches on this card).
Memory: the shipped model generating a 512x512, 8-second clip (chained passes), peak GPU memory allocated.
Prints Markdown tables.
"""

import argparse
import contextlib
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


def train_step_row(preset: str, device, batch: int, frames: int, height: int, width: int, repeats: int,
                   compile: bool, sdpa: str = "default") -> dict:
    """One training step's FLOPs (counted on the eager model) and median time, eager or with each block fused by
    torch.compile and a fused AdamW; `sdpa` "cudnn" puts cuDNN's attention kernel first."""
    torch.manual_seed(0)
    model = DiT(PRESETS[preset]).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=compile and device.type == "cuda")
    cfg = model.cfg
    x = torch.randn(batch, 16, frames, height // 8, width // 8, device=device)
    text = torch.randn(batch, 24, cfg.text_dim, device=device)
    mask = torch.ones(batch, 24, dtype=torch.bool, device=device)
    pooled = torch.randn(batch, cfg.text_dim, device=device)
    cond = torch.zeros(batch, 17, *x.shape[2:], device=device)
    t = torch.rand(batch, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    attention = contextlib.nullcontext
    if sdpa == "cudnn":
        from torch.nn.attention import SDPBackend, sdpa_kernel
        order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                 SDPBackend.MATH]
        attention = lambda: sdpa_kernel(order, set_priority=True)

    def step():
        with autocast, attention():
            noise = torch.randn_like(x)
            v = model(flow.interpolate(x, noise, t), t, text, mask, pooled, cond)
            loss = (v.float() - flow.velocity_target(x, noise)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    with FlopCounterMode(display=False) as counter:
        step()
    if compile:
        model.compile_blocks()
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
    parser.add_argument("--clips", default=None,
                        help="comma-separated batch sizes: only the compiled MFU rows of 4-s 256-px clips at these, "
                             "and no memory row (e.g. 8,16: 46,592 and 93,184 tokens a step)")
    args = parser.parse_args()
    device = torch.device(args.device)
    repeats = 3 if args.quick else 10
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"# Hardware benchmark\n\n{datetime.date.today()}; {name}; torch {torch.__version__}.\n")

    peak = matmul_peak(device, 1024 if args.quick else 8192, repeats)
    print(f"Measured peak: {peak / 1e12:.1f} TFLOP/s ({'bf16' if device.type == 'cuda' else 'fp32'} square matmul, "
          f"{1024 if args.quick else 8192}³, median of {repeats}).\n")
    # clips of 12 fps, 16:9 at 256 px: 2 s = 7 latent frames of 32x56 latents, 4 s = 13
    two, four = (7, 256, 448), (13, 256, 448)
    rows = [(3, two, False, "default"), (4, four, False, "default"), (4, four, True, "default"),
            (8, four, True, "default"), (4, four, True, "cudnn"), (3, two, True, "default")]
    if args.clips:
        rows = [(int(n), four, True, "default") for n in args.clips.split(",")]
    if args.quick:
        rows = [(1, (2, 64, 64), False, "default"), (1, (2, 64, 64), True, "default")]
    print("| preset | clips x shape | tokens per step | mode | step (fwd+bwd+AdamW) | TFLOP per step | TFLOP/s | MFU |")
    print("|---|---|---|---|---|---|---|---|")
    for preset in args.presets.split(","):
        for batch, (frames, height, width), compile, sdpa in rows:
            mode = ("torch.compile blocks, fused AdamW" if compile else "eager") + (", cuDNN attention"
                                                                                  if sdpa == "cudnn" else "")
            try:
                r = train_step_row(preset, device, batch, frames, height, width, repeats, compile, sdpa)
            except Exception as error:   # a backend this card or build lacks: say so, go on
                print(f"| {preset} | {batch} x {width}x{height}x{frames} | - | {mode} | failed: "
                      f"{type(error).__name__}: {str(error).splitlines()[0][:120]} | | | |", flush=True)
                continue
            rate = r["flops"] / r["step_s"]
            print(f"| {preset} | {batch} x {width}x{height}, {frames} latent frames | {r['tokens']} | {mode} | "
                  f"{r['step_s'] * 1000:.1f} ms | {r['flops'] / 1e12:.3f} | {rate / 1e12:.1f} | "
                  f"{100 * rate / peak:.1f}% |", flush=True)
    if device.type == "cuda" and not args.quick and not args.clips:
        m = generation_memory(device, 8.0, 512)
        print(f"\nShipped model, {m['size']}, 8 s ({m['frames']} frames, chained passes), 4 steps: peak GPU memory "
              f"{m['peak_gb']:.2f} GiB, {m['seconds']:.1f} s.")


if __name__ == "__main__":
    main()
