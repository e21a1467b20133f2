"""Fréchet distance between generated and real ToyWorld clips in the feature space of the ToyWorld classifier
(eval/classifier.py): straightline's FVD.

    fd = frechet(features_of(generated), features_of(real))

FD = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of Gaussians fitted to the two feature sets (Heusel et
al. 2017). Like FID/FVD it is biased upwards for small sets, so numbers are comparable only at the same n. The report
measures generated clips against renders of *other* scenes drawn alike, and gives next to it the FD of the renders
of the prompts' own scenes against the same set: what a perfect model gets at that n (the floor).
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


def distance_summary(generated: torch.Tensor, real: torch.Tensor, resamples: int = 200, seed: int = 0) -> dict:
    """FD of generated vs real features with a 95% bootstrap interval (generated clips resampled). Resampling
    repeats clips, which alone raises FD (a narrower set), so the bootstrap distribution is re-centred from its
    median onto the estimate: the interval shows the spread due to which clips were drawn, not that bias."""
    value = frechet(generated, real)
    rng = random.Random(seed)
    n = len(generated)
    boot = sorted(frechet(generated[[rng.randrange(n) for _ in range(n)]], real) for _ in range(resamples))
    shift = boot[resamples // 2] - value
    return {"value": value, "low": max(0.0, boot[int(0.025 * resamples)] - shift),
            "high": boot[int(0.975 * resamples) - 1] - shift, "n": n, "real": len(real)}
