"""Speed and cost of generation: seconds of compute per second of video at each size, and estimated FLOPs.

    rows = speed(pipeline, [(1.0, 128), (2.0, 256)], repeats=3)

Each size is generated `repeats` times at batch 1 with a fresh prompt (the text encoder caches embeddings) after
one warm-up; times are the pipeline's own (Result.timings, which synchronise the GPU). FLOPs are the DiT's
forward FLOPs (dit.flops_per_token) times tokens, times sample-forwards (pipeline.dit_forwards: a step, x2 where
guided, x2 for Heun apart from its last step); the text encoder and the VAE are left out.
"""

from . import stats
from .adherence import prompt_set


def dit_flops(pipeline, request) -> float | None:
    """Estimated forward FLOPs of the DiT for one request (None when the pipeline has no DiT)."""
    dit = pipeline.dit_named(request.dit) if hasattr(pipeline, "dit_named") else getattr(pipeline, "dit", None)
    if dit is None or not hasattr(dit, "flops_per_token"):
        return None
    from ..pipeline import dit_forwards
    return sum(forwards * tokens * dit.flops_per_token(tokens) for tokens, forwards in dit_forwards(request))


def speed(pipeline, sizes, *, repeats: int = 3, seed: int = 0, **request_fields) -> list[dict]:
    """Rows per (seconds, short side): size, frames, tokens, text/sampling/decode/total seconds (means with
    bootstrap intervals over repeats), compute seconds per video second, estimated TFLOPs per clip."""
    rows = []
    prompts = [c.prompt for c in prompt_set(len(sizes) * (repeats + 1) + 1, "train", seed=seed + 2000)]
    warm = pipeline.validate(prompts.pop(), seconds=sizes[0][0], resolution=sizes[0][1], seed=0, **request_fields)
    pipeline.generate([warm])                                   # warm-up: allocator, kernels, first calls
    for seconds, short in sizes:
        runs = []
        for _ in range(repeats):
            request = pipeline.validate(prompts.pop(), seconds=seconds, resolution=short, seed=0, **request_fields)
            runs.append(pipeline.generate([request])[0].timings)
        video_seconds = request.seconds or 1 / request.fps
        flops = dit_flops(pipeline, request)
        rows.append({"seconds": seconds, "resolution": short, "size": f"{request.width}x{request.height}",
                     "frames": request.frames, "fps": request.fps, "tokens": request.latent_tokens,
                     "steps": request.steps, "cfg": request.cfg,
                     **{key: stats.mean([r[key] for r in runs]) for key in ("text_s", "sampling_s", "decode_s",
                                                                            "total_s")},
                     "compute_per_video_second": stats.mean([r["total_s"] / video_seconds for r in runs]),
                     "tflops": None if flops is None else flops / 1e12})
    return rows
