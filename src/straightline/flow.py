"""Rectified flow: the straight path from noise to data, and its time schedule.

Time convention (fixed, DESIGN.md): t = 0 is pure noise, t = 1 is data.
    x_t = (1 - t) * noise + t * x        velocity v = dx_t/dt = x - noise
Sampling integrates dx/dt = v(x, t) from t = 0 to t = 1.

Larger latents need more time near the noise end (at a given t, more tokens keep more of the signal
recoverable), so timesteps are shifted towards noise by a factor that grows with the number of latent tokens;
training and sampling use the same shift (Esser et al. 2024, "Scaling Rectified Flow Transformers").
"""

import math

import torch


def interpolate(x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t for data x and noise (B, ...) at times t (B,)."""
    t = t.view(-1, *([1] * (x.ndim - 1)))
    return (1 - t) * noise + t * x


def velocity_target(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return x - noise


def shift_time(t: torch.Tensor, shift: float | torch.Tensor) -> torch.Tensor:
    """Move times towards noise: the noise level s = 1 - t becomes shift·s / (1 + (shift - 1)·s)."""
    s = 1 - t
    return 1 - shift * s / (1 + (shift - 1) * s)


def shift_for_tokens(tokens: int, base_tokens: int = 256, base_shift: float = 1.0,
                     max_tokens: int = 4096, max_shift: float = 3.0) -> float:
    """Shift grows log-linearly with the number of latent tokens, from base_shift at base_tokens to max_shift
    at max_tokens (extrapolated beyond)."""
    slope = math.log(max_shift / base_shift) / math.log(max_tokens / base_tokens)
    return base_shift * (max(tokens, 1) / base_tokens) ** slope


def sample_timesteps(batch: int, shift: float | torch.Tensor = 1.0, *, mean: float = 0.0, std: float = 1.0,
                     generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Training times (B,): logit-normal (most weight mid-path, where velocity is hardest), then shifted."""
    u = torch.randn(batch, generator=generator, device=device) * std + mean
    return shift_time(torch.sigmoid(u), shift)


def sampling_times(steps: int, shift: float = 1.0, device=None) -> torch.Tensor:
    """steps + 1 times from 0 (noise) to 1 (data), shifted like training."""
    return shift_time(torch.linspace(0, 1, steps + 1, device=device), shift).clamp(0, 1)   # not -1e-7 at 0
