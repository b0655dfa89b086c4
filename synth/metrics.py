"""Evaluation metrics: pass@1, the unbiased pass@k estimator, Wilson and bootstrap intervals."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from statistics import NormalDist


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of P(at least one of k samples passes) from c passes in n samples:
    ``1 - C(n-c, k) / C(n, k)`` (Chen et al., 2021), computed as a stable product."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and k >= 1 (n={n}, c={c}, k={k})")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per task, got {n}")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def mean_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> float:
    """pass@k averaged over tasks; ``counts`` holds (samples, passes) per task."""
    if not counts:
        return float("nan")
    return sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sound near 0 and 1, unlike the normal one)."""
    if trials <= 0:
        return (float("nan"), float("nan"))
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return (low, high)


def bootstrap_interval(
    counts: Sequence[tuple[int, int]],
    k: int,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean pass@k, resampling tasks (samples of a task are correlated)."""
    if not counts or resamples <= 0:
        return (float("nan"), float("nan"))
    scores = [pass_at_k(n, c, k) for n, c in counts]
    rng = random.Random(seed)
    size = len(scores)
    means = sorted(sum(scores[rng.randrange(size)] for _ in range(size)) / size for _ in range(resamples))
    alpha = (1 - confidence) / 2
    low = means[min(resamples - 1, max(0, int(math.floor(alpha * resamples))))]
    high = means[min(resamples - 1, max(0, int(math.ceil((1 - alpha) * resamples)) - 1))]
    return (low, high)
