"""The few modules the diffusion transformer shares: RMSNorm, the timestep embedding, adaLN modulation,
3D rotary position embedding and the frame position."""

import math

import torch
import torch.nn as nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        x_float = x.float()  # the mean square in fp32: bf16 loses the small per-head norms QK-norm relies on
        return (x_float * torch.rsqrt(x_float.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] (B,) -> (B, dim); t is scaled by 1000 so the fastest frequency
    resolves steps of 1/1000."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    def __init__(self, dim: int, frequency_dim: int = 256):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t):  # (B,) -> (B, D)
        return self.mlp(timestep_embedding(t, self.frequency_dim))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x (B, L, D) scaled and shifted per sample by (B, D) vectors."""
    return x * (1 + scale[:, None]) + shift[:, None]


def rope_split(head_dim: int) -> tuple[int, int, int]:
    """Channels of a head given to time, height and width (each even): space gets a third each, time the rest."""
    space = head_dim // 3 // 2 * 2
    return head_dim - 2 * space, space, space


def rope_3d(grid: tuple[int, int, int], head_dim: int, theta: float = 10_000.0, device=None):
    """cos and sin (L, head_dim / 2) for tokens on a T×H×W grid (in that order). Each axis rotates its own
    channel pairs by position × frequency, so attention depends only on relative offsets in time and space:
    any grid size works without resizing or interpolating a table."""
    parts = []
    for n, dim in zip(grid, rope_split(head_dim)):
        freqs = theta ** (-torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)  # (dim/2,)
        parts.append(torch.arange(n, device=device, dtype=torch.float32)[:, None] * freqs[None])  # (n, dim/2)
    T, H, W = grid
    angles = torch.cat([
        parts[0][:, None, None].expand(T, H, W, -1),
        parts[1][None, :, None].expand(T, H, W, -1),
        parts[2][None, None, :].expand(T, H, W, -1),
    ], dim=-1).reshape(T * H * W, head_dim // 2)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, heads, L, head_dim) by position: channel i pairs with channel i + head_dim/2."""
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x)


def frame_position(grid: tuple[int, int, int], freqs: int, device=None) -> torch.Tensor:
    """Fourier features (L, 6 * freqs) of where each token of a T×H×W grid sits in the frame and in the clip.

    Place: sin and cos of 2^k·π·u and 2^k·π·v for k < freqs, where u and v in (0, 1) are its cell centre's share
    of the width and the height; being fractions of the frame they mean the same at any size and aspect. Time: sin
    and cos of π·i / 2^k for k = 1 … freqs, where i counts latent frames from the clip's (or pass's) first.
    RoPE tells attention only relative offsets, so a model with RoPE alone can tell neither the frame's upper left
    from its centre nor the clip's fourth frame from its first: from pure noise it cannot say where an object
    starts or how far it has moved by a given frame, whatever the caption says."""
    T, H, W = grid
    k = torch.arange(freqs, device=device, dtype=torch.float32)
    f, g = math.pi * 2.0 ** k, math.pi / 2.0 ** (k + 1)                                     # (F,) each
    u = (torch.arange(W, device=device, dtype=torch.float32) + 0.5) / W
    v = (torch.arange(H, device=device, dtype=torch.float32) + 0.5) / H
    i = torch.arange(T, device=device, dtype=torch.float32)
    sincos = lambda a: torch.cat([a.sin(), a.cos()], dim=-1)
    fu, fv, fi = sincos(u[:, None] * f), sincos(v[:, None] * f), sincos(i[:, None] * g)
    return torch.cat([fi[:, None, None].expand(T, H, W, -1), fv[None, :, None].expand(T, H, W, -1),
                      fu[None, None].expand(T, H, W, -1)], dim=-1).reshape(T * H * W, 6 * freqs)
