import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentkit.synth.metrics import bootstrap_interval, mean_pass_at_k, pass_at_k, wilson_interval


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of the n samples that contain at least one pass."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in subset) for subset in subsets) / len(subsets)


@given(st.integers(1, 9).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_is_the_unbiased_estimator(args):
    n, c, k = args
    assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k))
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_pass_at_k_edges_and_errors():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 0, 5) == 0.0 and pass_at_k(10, 6, 5) == 1.0
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least 5 samples"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    assert mean_pass_at_k([(4, 4), (4, 0)], 1) == pytest.approx(0.5)


def test_wilson_interval_known_values():
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)  # standard table value for 8/10 at 95%
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0.15 < high < 0.17
    assert wilson_interval(10, 10)[1] == 1.0
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_tasks():
    few = [(4, 1), (4, 3), (4, 2), (4, 0)] * 3
    many = few * 25
    mean = mean_pass_at_k(few, 1)
    low, high = bootstrap_interval(few, 1, resamples=500)
    assert low <= mean <= high
    low2, high2 = bootstrap_interval(many, 1, resamples=500)
    assert low2 <= mean <= high2 and (high2 - low2) < (high - low) / 3
    assert bootstrap_interval(few, 1, resamples=500) == (low, high)  # seeded: reproducible
    assert bootstrap_interval([(4, 4)] * 5, 2, resamples=100) == (1.0, 1.0)
