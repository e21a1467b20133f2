"""Image-quality metrics on uint8 videos (T, H, W, 3): PSNR and SSIM, as the literature defines them."""

import math

import torch
import torch.nn.functional as F


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB over a whole clip; inf for identical clips. `peak` is the value
    range: 255 for uint8, 2 for the model's [-1, 1]."""
    mse = (a.double() - b.double()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(peak ** 2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return (g / g.sum()).float()


def ssim(a: torch.Tensor, b: torch.Tensor, chunk: int = 16) -> float:
    """Mean SSIM (Wang et al. 2004: 11-tap Gaussian window, sigma 1.5, K1 0.01, K2 0.03) over frames and
    RGB channels, for uint8 (T, H, W, 3) clips. Frames are processed in chunks to bound memory."""
    if a.shape != b.shape:
        raise ValueError(f"clips differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    g = _gaussian_window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    total, count = 0.0, 0
    for s in range(0, a.shape[0], chunk):
        x = a[s:s + chunk].permute(0, 3, 1, 2).float()  # (t, 3, H, W)
        y = b[s:s + chunk].permute(0, 3, 1, 2).float()
        t, c, h, w = x.shape
        x, y = x.reshape(t * c, 1, h, w), y.reshape(t * c, 1, h, w)

        def blur(v):  # separable Gaussian, 'valid' like the reference implementation
            v = F.conv2d(v, g.view(1, 1, 1, -1))
            return F.conv2d(v, g.view(1, 1, -1, 1))

        mx, my = blur(x), blur(y)
        vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        s_map = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        total += s_map.mean(dim=(1, 2, 3)).sum().item()
        count += t * c
    return total / count
