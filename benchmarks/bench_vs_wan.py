"""Our diffusion transformer against diffusers' WanTransformer3DModel at the same width, depth, heads, MLP width
and token count: time of one sampling step (one forward) and FLOPs, in the same process.

    python benchmarks/bench_vs_wan.py                        # presets default and S, CPU (or GPU when there is one)
    python benchmarks/bench_vs_wan.py --presets B --device cuda

Both models are randomly initialised (speed does not depend on the weights). Wan is configured with
num_attention_heads = heads, attention_head_dim = width / heads, ffn_dim = width x mlp_ratio, num_layers =
depth, the same 1x2x2 patches, 33 input channels (our noisy latents + known latents + mask) and our text width
(384, all-MiniLM-L6-v2). FLOPs are counted by torch.utils.flop_counter for each model's own forward, so "at equal
FLOPs" can be checked rather than assumed. The two models are timed alternately, median of --repeats, bf16
autocast on a GPU, in each mode (--modes): eager, CUDA graphs, and torch.compile-fused blocks under graphs. Needs
`pip install diffusers` (the `bench` extra).
"""

import argparse
import datetime
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from straightline import sampling
from straightline.dit import PRESETS, DiT

SHAPES = {"2 s at 128 px (224x128)": (7, 16, 28), "4 s at 256 px (448x256)": (13, 32, 56)}  # latent T, h, w
TEXT_TOKENS = 24


def wan_like(cfg):
    from diffusers import WanTransformer3DModel
    return WanTransformer3DModel(patch_size=cfg.patch, num_attention_heads=cfg.heads,
                                 attention_head_dim=cfg.dim // cfg.heads, in_channels=cfg.in_channels,
                                 out_channels=cfg.latent_channels, text_dim=cfg.text_dim, freq_dim=256,
                                 ffn_dim=int(cfg.dim * cfg.mlp_ratio), num_layers=cfg.depth)


def forwards(cfg, device, latent_shape):
    """(ours, wan): each a pair (model, arguments of one forward) on the same-sized input."""
    T, h, w = latent_shape
    torch.manual_seed(0)
    ours, wan = DiT(cfg).to(device).eval(), wan_like(cfg).to(device).eval()
    x = torch.randn(1, cfg.latent_channels, T, h, w, device=device)
    cond = torch.zeros(1, cfg.latent_channels + 1, T, h, w, device=device)
    text = torch.randn(1, TEXT_TOKENS, cfg.text_dim, device=device)
    mask = torch.ones(1, TEXT_TOKENS, dtype=torch.bool, device=device)
    pooled = torch.randn(1, cfg.text_dim, device=device)
    t = torch.full((1,), 0.5, device=device)
    wan_input = torch.cat([x, cond], dim=1)
    wan_t = torch.full((1,), 500, device=device, dtype=torch.long)
    return (ours, (x, t, text, mask, pooled, cond)), (wan, (wan_input, wan_t, text))


def runner(model, args, mode: str, autocast):
    """A zero-argument callable running one forward of `model` in `mode`: eager (kernel by kernel), graphs (one
    CUDA graph replay) or compile (each transformer block fused by torch.compile, then graphed)."""
    if mode == "compile":
        for block in model.blocks:
            block.compile(dynamic=False)

    def forward(*a):
        with autocast:
            out = model(*a)
            return out if isinstance(out, torch.Tensor) else out[0]   # Wan returns a tuple without return_dict
    call = sampling.CUDAGraphed(forward, enabled=mode != "eager")
    return lambda: call(*args)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="default,S", help="comma-separated DiT presets (default default,S)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--modes", default=None, help="comma-separated: eager, graphs, compile (default eager,graphs "
                                                      "on a GPU, eager on a CPU)")
    parser.add_argument("--compile-presets", default="B", help="presets that get compile rows, at the larger clip "
                                                               "only (compiling costs tens of seconds a shape)")
    args = parser.parse_args()
    device = torch.device(args.device)
    modes = (args.modes or ("eager,graphs" if device.type == "cuda" else "eager")).split(",")
    for limit in ("cache_size_limit", "recompile_limit"):   # one compiled block per preset and shape
        if hasattr(torch._dynamo.config, limit):
            setattr(torch._dynamo.config, limit, 64)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# One sampling step: straightline DiT vs diffusers WanTransformer3DModel\n\n{datetime.date.today()}; "
          f"{name}; torch {torch.__version__}; median of {args.repeats} forwards each, timed alternately. Modes: "
          f"eager (kernel by kernel), graphs (one CUDA graph replay per forward), compile (blocks fused by "
          f"torch.compile, then graphed); both models always in the same mode.\n", flush=True)
    print("| preset | clip | tokens | mode | ours | Wan | Wan / ours (time) | Wan eager / ours | ours GFLOP "
          "| Wan GFLOP |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for preset in args.presets.split(","):
        cfg = PRESETS[preset]
        for label, shape in SHAPES.items():
            pair = forwards(cfg, device, shape)
            tokens = shape[0] * shape[1] * shape[2] // (cfg.patch[1] * cfg.patch[2])
            flops, wan_eager = [], None
            for mode in modes:
                if mode == "compile" and (preset not in args.compile_presets.split(",") or label != list(SHAPES)[-1]):
                    continue
                with torch.inference_mode():
                    if not flops:                                 # counted eager: a graph replay hides its kernels
                        for fn in (runner(model, a, "eager", autocast) for model, a in pair):
                            fn()                                  # warm-up
                            with FlopCounterMode(display=False) as counter:
                                fn()
                            flops.append(counter.get_total_flops())
                    fns = [runner(model, a, mode, autocast) for model, a in pair]
                    for fn in fns:
                        fn()                                      # warm-up (captures the graph, compiles)
                    times = ([], [])
                    for _ in range(args.repeats):
                        for k, fn in enumerate(fns):
                            sync()
                            start = time.perf_counter()
                            fn()
                            sync()
                            times[k].append(time.perf_counter() - start)
                t_ours, t_wan = (statistics.median(ts) for ts in times)
                wan_eager = t_wan if mode == "eager" else wan_eager
                versus = f"{wan_eager / t_ours:.2f}x" if wan_eager else "-"
                print(f"| {preset} | {label} | {tokens} | {mode} | {t_ours * 1000:.2f} ms | {t_wan * 1000:.2f} ms | "
                      f"{t_wan / t_ours:.2f}x | {versus} | {flops[0] / 1e9:.1f} | {flops[1] / 1e9:.1f} |", flush=True)


if __name__ == "__main__":
    main()
