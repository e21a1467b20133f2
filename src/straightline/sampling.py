"""Samplers as pure functions of a velocity callable `velocity(x, t) -> v` (t is a (B,) tensor), integrating
from t = 0 (noise) to t = 1 (data) over given times (see flow.sampling_times).

`on_step(i, steps, x)` is called after each step; raising from it stops sampling (cooperative cancel).
"""

from collections import OrderedDict
from collections.abc import Callable

import torch

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def euler(velocity: Velocity, noise: torch.Tensor, times: torch.Tensor, on_step=None) -> torch.Tensor:
    """First order: x += (t_next - t) · v(x, t). One velocity call per step."""
    x = noise
    for i in range(len(times) - 1):
        t = times[i].expand(x.shape[0])
        x = x + (times[i + 1] - times[i]) * velocity(x, t)
        if on_step:
            on_step(i + 1, len(times) - 1, x)
    return x


def heun(velocity: Velocity, noise: torch.Tensor, times: torch.Tensor, on_step=None) -> torch.Tensor:
    """Second order (trapezoid with an Euler predictor); the last step is plain Euler, whose end point t = 1
    would need a velocity at pure data. Two velocity calls per step."""
    x = noise
    steps = len(times) - 1
    for i in range(steps):
        t, t_next = times[i].expand(x.shape[0]), times[i + 1].expand(x.shape[0])
        dt = times[i + 1] - times[i]
        v = velocity(x, t)
        if i < steps - 1:
            v = 0.5 * (v + velocity(x + dt * v, t_next))
        x = x + dt * v
        if on_step:
            on_step(i + 1, steps, x)
    return x


def classifier_free_guidance(velocity_pair: Callable, scale: float, velocity_cond: Velocity | None = None,
                             interval: tuple[float, float] = (0.0, 1.0)) -> Velocity:
    """Wrap `velocity_pair(x, t) -> (v_cond, v_uncond)` (one batched forward) into
    v = v_uncond + scale · (v_cond - v_uncond), applied to all channels. With a negative prompt, v_uncond is
    the velocity under the negative prompt, which pushes samples away from it.

    Guidance applies only at times t within `interval` (inclusive); elsewhere the velocity is
    `velocity_cond(x, t)`, the conditional one alone (one forward of half the batch; without it, every step is
    guided); after Kynkäänniemi et al. 2024, "Applying guidance in a limited interval improves sample and
    distribution quality in diffusion models". Measured on the shipped model (docs/benchmarks.md): guidance near
    data (t > 0.5) changes nothing, so it is skipped; without guidance on the first step, at pure noise, colours
    follow the prompt far more often and objects jump more. Times of one call are equal, so t[0] decides (on a
    GPU, a read of one scalar)."""
    lo, hi = interval

    def velocity(x, t):
        if velocity_cond is not None and not lo <= float(t[0]) <= hi:
            return velocity_cond(x, t)
        v_cond, v_uncond = velocity_pair(x, t)
        return v_uncond + scale * (v_cond - v_uncond)
    return velocity


class CUDAGraphed:
    """`fn(*args)` (tensors or None, returning one tensor) replayed from a CUDA graph captured once per input
    signature (shapes and dtypes), so a sampler step costs one launch instead of one per kernel: a small model's
    step on a GPU is bound by launches, not arithmetic. Each call copies its inputs into the graph's static ones
    and returns a copy of the output. On a CPU, or with `enabled=False`, fn is simply called.

    fn must be a pure function of its tensor arguments (no host-side reads of their values, no randomness),
    which the DiT's forward is. The `keep` most recently used graphs are kept (each holds its activations)."""

    def __init__(self, fn: Callable, enabled: bool = True, keep: int = 8):
        self.fn, self.enabled, self.keep = fn, enabled, keep
        self.graphs: OrderedDict = OrderedDict()

    def __call__(self, *args):
        if not self.enabled or not any(a is not None and a.is_cuda for a in args):
            return self.fn(*args)
        key = tuple(None if a is None else (tuple(a.shape), a.dtype, a.device) for a in args)
        if key not in self.graphs:
            self.graphs[key] = self._capture(args)
            while len(self.graphs) > self.keep:
                self.graphs.popitem(last=False)
        self.graphs.move_to_end(key)
        inputs, graph, output = self.graphs[key]
        for static, a in zip(inputs, args):
            if static is not None:
                static.copy_(a)
        graph.replay()
        return output.clone()

    def _capture(self, args):
        inputs = [None if a is None else a.clone() for a in args]
        device = next(a.device for a in args if a is not None)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):              # warm-up off the capture: lazy inits, kernel selection
            for _ in range(2):
                self.fn(*inputs)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = self.fn(*inputs)
        return inputs, graph, output
