"""Attribution paths as pure tensor functions: IG's straight line, DIG's and UDIG's monotone word paths.

Every path runs from the baseline to the input and is returned as points of shape ``(N, L, d)``; the
integrator never needs to know which method made them. Tokens are processed together: the anchor
search is one vectorised step per anchor over all tokens and all their candidates.

References: Sundararajan et al. 2017 (IG); Sanyal & Ren, EMNLP 2021 (DIG); Roy & Kundu 2024,
arXiv 2412.03886 (UDIG). The maths follows the papers; the code is written from their definitions.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

STRATEGIES = ("greedy", "maxcount")


def linear_path(baseline: Tensor, inputs: Tensor, steps: int) -> Tensor:
    """IG's straight line ``x' + k/steps (x - x')`` for k = 0..steps: ``(steps + 1, L, d)``."""
    alphas = torch.linspace(0.0, 1.0, steps + 1, dtype=inputs.dtype, device=inputs.device)
    return baseline + alphas[:, None, None] * (inputs - baseline)  # (N, L, d)


def monotone_dims(anchor: Tensor, baseline: Tensor, current: Tensor) -> Tensor:
    """Dimensions where the anchor lies between baseline and current point (inclusive); broadcasts."""
    low, high = torch.minimum(baseline, current), torch.maximum(baseline, current)
    return torch.clamp(anchor, low, high) == anchor


def monotonize(anchor: Tensor, baseline: Tensor, current: Tensor, m: int) -> Tensor:
    """Keep the anchor's monotone dimensions; step every other one 1/m of the way toward the baseline."""
    fallback = current - (current - baseline) / m
    return torch.where(monotone_dims(anchor, baseline, current), anchor, fallback)


def candidate_costs(
    candidates: Tensor, embeddings: Tensor, baseline: Tensor, current: Tensor, strategy: str, m: int
) -> Tensor:
    """Cost of each candidate id ``(T, K)`` (lower is better); ``baseline/current (T, 1, d)``.

    Greedy: distance between the candidate and its monotonized version. MaxCount: minus the number of
    monotone dimensions. A dimension is not monotone when it leaves the box spanned by baseline and
    current point (:func:`monotone_dims`). Every candidate is scored in one pass over its row by a
    compiled kernel (:mod:`udig.kernels`).
    """
    low, high = torch.minimum(baseline, current)[:, 0], torch.maximum(baseline, current)[:, 0]  # (T, d)
    fallback = (current - (current - baseline) / m)[:, 0]
    table = embeddings.detach().cpu().contiguous()
    arrays = [x.detach().cpu().to(table.dtype).contiguous().numpy() for x in (low, high, fallback)]
    ids = candidates.detach().cpu().contiguous().numpy()
    costs = torch.empty(candidates.shape, dtype=table.dtype)
    from .kernels import score_candidates  # numba loads on first use, not when udig is imported

    score_candidates(ids, table.numpy(), *arrays, strategy == "greedy", costs.numpy())
    return costs.to(candidates.device)


CandidateSource = Callable[[int, Tensor], Tensor]
"""(step t, current anchor ids (T,)) -> candidate vocabulary ids (T, K)."""


def chain_anchors(
    word_ids: Tensor,
    reference_ids: Tensor,
    embeddings: Tensor,
    candidates: CandidateSource,
    strategy: str,
    m: int,
) -> Tensor:
    """Choose m anchors per token, each scored against the previous one: ``(T, m + 1)`` ids, word first.

    Candidates equal to the reference word or already on the path are excluded; when none is left the
    reference word is taken, and once reached it is kept (DIG's rule, also applied to UDIG, whose
    published code crashes there). Ties go to the first candidate in the source's order.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    chain = torch.empty(len(word_ids), m + 1, dtype=torch.long, device=word_ids.device)
    chain[:, 0] = word_ids
    excluded = torch.zeros(len(word_ids), len(embeddings), dtype=torch.bool, device=word_ids.device)  # (T, V)
    excluded.scatter_(1, torch.stack([word_ids, reference_ids], dim=1), True)  # the path so far, the reference
    baseline = embeddings[reference_ids][:, None, :]  # (T, 1, d)
    for t in range(m):
        current_ids = chain[:, t]
        cand = candidates(t, current_ids)  # (T, K)
        valid = ~excluded.gather(1, cand)
        costs = candidate_costs(cand, embeddings, baseline, embeddings[current_ids][:, None, :], strategy, m)
        costs = costs.masked_fill(~valid, float("inf"))
        best = costs.argmin(dim=1)  # first minimum: stable ties
        chosen = cand.gather(1, best[:, None]).squeeze(1)
        stuck = ~valid.any(dim=1) | (current_ids == reference_ids)
        chain[:, t + 1] = torch.where(stuck, reference_ids, chosen)
        excluded.scatter_(1, chain[:, t + 1 : t + 2], True)
    return chain


def anchor_points(chain: Tensor, reference_ids: Tensor, embeddings: Tensor, m: int) -> Tensor:
    """Monotone points through a chain of anchors, running baseline -> word: ``(m + 2, T, d)``."""
    baseline = embeddings[reference_ids]  # (T, d)
    points = [embeddings[chain[:, 0]]]
    for t in range(1, chain.shape[1]):
        points.append(monotonize(embeddings[chain[:, t]], baseline, points[-1], m))
    points.append(baseline)
    return torch.stack(points[::-1])  # (m + 2, T, d)


def upscale(points: Tensor, factor: int) -> Tensor:
    """Insert the midpoint between every consecutive pair, ``factor`` times: N -> 2^factor (N-1) + 1."""
    for _ in range(factor):
        mids = (points[:-1] + points[1:]) / 2
        merged = torch.stack([points[:-1], mids], dim=1).flatten(0, 1)
        points = torch.cat([merged, points[-1:]])
    return points


def udig_reference_alphas(m: int) -> Tensor:
    """Positions p/(m+1), p = m..1, of UDIG's evenly spaced reference points on the IG line."""
    return torch.arange(m, 0, -1, dtype=torch.float32) / (m + 1)


def sentence_path(word_points: Tensor, inputs: Tensor, moving: Tensor) -> Tensor:
    """Place the per-word paths ``(N, T, d)`` of the moving tokens into the sentence: ``(N, L, d)``.

    Tokens that do not move (special tokens) keep their own embedding at every point.
    """
    path = inputs.expand(word_points.shape[0], -1, -1).clone()  # (N, L, d)
    path[:, moving] = word_points
    return path
