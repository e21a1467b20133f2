"""Samplers as pure functions of a velocity callable `velocity(x, t) -> v` (t is a (B,) tensor), integrating
from t = 0 (noise) to t = 1 (data) over given times (see flow.sampling_times).

`on_step(i, steps, x)` is called after each step; raising from it stops sampling (cooperative cancel).
"""

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


def classifier_free_guidance(velocity_pair: Callable, scale: float) -> Velocity:
    """Wrap `velocity_pair(x, t) -> (v_cond, v_uncond)` (one batched forward) into
    v = v_uncond + scale · (v_cond - v_uncond), applied to all channels. With a negative prompt, v_uncond is
    the velocity under the negative prompt, which pushes samples away from it."""
    def velocity(x, t):
        v_cond, v_uncond = velocity_pair(x, t)
        return v_uncond + scale * (v_cond - v_uncond)
    return velocity
