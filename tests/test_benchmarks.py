"""The benchmark's own statistics: the pairs it times and the interval it prints for each median ratio."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from bench_engine import interleaved, median_interval  # noqa: E402


def test_median_interval_is_the_binomial_order_statistics():
    """n = 9: P(Bin(9, 1/2) <= 1) = 10/512 <= 2.5 % < P(<= 2) = 46/512, so the 2nd and 8th smallest (96.1 %
    coverage); n = 27: the 8th and 20th; n = 5 is too few for 95 %: the whole range."""
    assert median_interval([9, 1, 8, 2, 7, 3, 6, 4, 5]) == (2, 8)
    assert median_interval(list(range(27, 0, -1))) == (8, 20)
    assert median_interval([3, 1, 2, 5, 4]) == (1, 5)


def test_median_interval_covers_the_median_as_often_as_it_says():
    """Over 4,000 samples of 9 normal values the interval holds the true median 96.1 % of the time (binomial
    standard error 0.3 %: 95.0-97.2 % is over three of them either side)."""
    rng = np.random.default_rng(0)
    covered = [low <= 0 <= high for low, high in (median_interval(list(rng.normal(size=9))) for _ in range(4000))]
    assert 0.950 <= np.mean(covered) <= 0.972


def test_interleaved_alternates_which_side_runs_first():
    """Each repeat goes round every case; every other repeat times the candidate first."""
    calls: list[str] = []
    cases = [
        (lambda name=name: calls.append(f"{name}-ref"), lambda name=name: calls.append(f"{name}-new") or name)
        for name in ("a", "b")
    ]
    pairs = interleaved(cases, repeats=3, device=torch.device("cpu"))
    assert calls[4:] == [
        "a-ref",
        "a-new",
        "b-ref",
        "b-new",
        "a-new",
        "a-ref",
        "b-new",
        "b-ref",
        "a-ref",
        "a-new",
        "b-ref",
        "b-new",
    ]  # after the warm-up round
    assert [len(case) for case in pairs] == [3, 3] and all(result == "a" for _, _, result in pairs[0])
