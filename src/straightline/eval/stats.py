"""Summaries with their uncertainty: every number in a report carries its sample count and a 95% interval.

    rate(7, 10)            {"value": 0.7, "low", "high", "n": 10, "correct": 7}   Wilson score interval
    mean([0.1, 0.3, ...])  {"value": mean, "low", "high", "n"}                      percentile bootstrap
"""

import math
import random

from .adherence import wilson

BOOTSTRAP = 2000


def rate(correct: int, n: int) -> dict:
    """A proportion with its 95% Wilson interval (value NaN when n = 0)."""
    low, high = wilson(correct, n)
    return {"value": correct / n if n else float("nan"), "low": low, "high": high, "n": n, "correct": correct}


def bootstrap(values, statistic, *, resamples: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of statistic(sample) over resamples of `values` (a list); seeded, so a
    report is reproducible. (nan, nan) for fewer than 2 values."""
    if len(values) < 2:
        return float("nan"), float("nan")
    rng = random.Random(seed)
    stats = sorted(statistic([values[rng.randrange(len(values))] for _ in values]) for _ in range(resamples))
    return stats[int(0.025 * resamples)], stats[min(resamples - 1, int(0.975 * resamples))]


def mean(values, **kw) -> dict:
    """Mean of finite values with its 95% bootstrap interval; NaNs (not measurable) are left out of n."""
    values = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not values:
        return {"value": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    low, high = bootstrap(values, lambda s: sum(s) / len(s), **kw)
    return {"value": sum(values) / len(values), "low": low, "high": high, "n": len(values)}


def spread(values, **kw) -> dict:
    """Standard deviation of finite values (n - 1) with its 95% bootstrap interval."""
    values = [float(v) for v in values if v is not None and math.isfinite(v)]

    def std(s):
        m = sum(s) / len(s)
        return math.sqrt(sum((v - m) ** 2 for v in s) / max(1, len(s) - 1))
    if len(values) < 2:
        return {"value": float("nan"), "low": float("nan"), "high": float("nan"), "n": len(values)}
    low, high = bootstrap(values, std, **kw)
    return {"value": std(values), "low": low, "high": high, "n": len(values)}


def fmt(summary: dict | None, digits: int = 3, percent: bool = False) -> str:
    """"0.812 (0.75–0.86, n=40)"; "–" for a summary with n = 0."""
    if not summary or not summary.get("n"):
        return "–"
    scale, unit = (100, "%") if percent else (1, "")

    def number(v):
        return "nan" if v is None or not math.isfinite(v) else f"{v * scale:.{digits}g}" if not percent \
            else f"{v * scale:.1f}"
    return f"{number(summary['value'])}{unit} ({number(summary['low'])}–{number(summary['high'])}, n={summary['n']})"
