"""Fréchet distance between generated and real ToyWorld clips in the feature space of the ToyWorld classifier
(eval/classifier.py): straightline's FVD.

    fd = frechet(features_of(generated), features_of(real))

FD = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of Gaussians fitted to the two feature sets (Heusel et
al. 2017). Like FID/FVD it is biased upwards for small sets, so numbers are comparable only at the same n: the
report gives, next to it, the *floor* — the FD between two independent sets of real renders of the same size —
and a bootstrap interval over resampled generated clips.
"""

import random

import torch

from .classifier import load_classifier


def frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to features a (N, D) and b (M, D); N, M >= 2."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    # tr (S_a S_b)^(1/2) = tr (S_a^(1/2) S_b S_a^(1/2))^(1/2): a symmetric PSD matrix, so eigh is exact and stable
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
    middle = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    # non-negative by definition; rounding in the square roots leaves ~1e-5 either side of 0 for equal sets
    return max(0.0, float((mu_a - mu_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * middle))


def features_of(clips, classifier=None) -> torch.Tensor:
    """[(frames uint8 (T, H, W, 3), fps)] -> (N, D) classifier features."""
    return (classifier or load_classifier()).features(clips)


def distance_summary(generated: torch.Tensor, real: torch.Tensor, floor_real: torch.Tensor | None = None,
                     resamples: int = 200, seed: int = 0) -> dict:
    """FD of generated vs real features with a bootstrap interval (generated clips resampled), and the floor:
    FD of `floor_real` (another set of real clips, same size) vs real."""
    value = frechet(generated, real)
    rng = random.Random(seed)
    n = len(generated)
    boot = sorted(frechet(generated[[rng.randrange(n) for _ in range(n)]], real) for _ in range(resamples))
    out = {"value": value, "low": boot[int(0.025 * resamples)], "high": boot[int(0.975 * resamples) - 1], "n": n,
           "real": len(real)}
    if floor_real is not None:
        out["floor"] = frechet(floor_real, real)
    return out

