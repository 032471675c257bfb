"""Attribution paths as pure tensor functions: IG's straight line, DIG's and UDIG's monotone word paths.

Every path runs from the baseline to the input and is returned as points of shape ``(N, L, d)``; the
integrator never needs to know which method made them. DIG's and UDIG's anchor search is one compiled
pass over all tokens and all steps.

References: Sundararajan et al. 2017 (IG); Sanyal & Ren, EMNLP 2021 (DIG); Roy & Kundu 2024,
arXiv 2412.03886 (UDIG). The maths follows the papers; the code is written from their definitions.
"""

from __future__ import annotations

import torch
from torch import Tensor

STRATEGIES = ("greedy", "maxcount")


def linear_path(baseline: Tensor, inputs: Tensor, steps: int) -> Tensor:
    """IG's straight line ``x' + k/steps (x - x')`` for k = 0..steps: ``(steps + 1, L, d)``."""
    alphas = torch.linspace(0.0, 1.0, steps + 1, dtype=inputs.dtype, device=inputs.device)
    return baseline + alphas[:, None, None] * (inputs - baseline)  # (N, L, d)


def anchor_paths(
    word_ids: Tensor, reference_ids: Tensor, embeddings: Tensor, candidates: Tensor, strategy: str, m: int
) -> tuple[Tensor, Tensor]:
    """Choose m anchors per token and the monotone path through them: ``(T, m + 1)`` ids, word first,
    and ``(m + 2, T, d)`` points, baseline first (:func:`anchor_chains`, then :func:`monotone_points`)."""
    chains = anchor_chains(word_ids, reference_ids, embeddings, candidates, strategy, m)
    return chains, monotone_points(chains, reference_ids, embeddings, m)


def anchor_chains(
    word_ids: Tensor, reference_ids: Tensor, embeddings: Tensor, candidates: Tensor, strategy: str, m: int
) -> Tensor:
    """Choose m anchors per token: ``(T, m + 1)`` ids, word first.

    ``candidates`` holds vocabulary ids: ``(V, K)``, the candidates of every vocabulary row, looked up at
    the previous anchor (DIG's KNN graph); or ``(T, m, K)``, each token's candidates at each step (UDIG's
    nearest words to its reference points). Each step scores them against the box spanned by the
    baseline word and the previous anchor: Greedy takes the candidate closest to its monotonized
    version, MaxCount the one with the most dimensions inside the box; ties go to the first in the
    candidates' order. Candidates equal to the reference word or already on the path are excluded; when
    none is left the reference word is taken, and once reached it is kept (DIG's rule, also applied to
    UDIG, whose published code crashes there). A token's chain depends on its word, its reference and
    its candidates only, never on the other tokens. All tokens and all steps run in one compiled pass
    (:mod:`udig.kernels`) on the CPU.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    table = _table(embeddings)
    per_step = candidates.dim() == 3
    expected = (len(word_ids), m) if per_step else (len(table),)
    if tuple(candidates.shape[:-1]) != expected or candidates.dim() not in (2, 3):
        raise ValueError(
            f"candidates of shape {tuple(candidates.shape)}: expected (V, K) = ({len(table)}, K) "
            f"or (T, m, K) = ({len(word_ids)}, {m}, K)"
        )
    checked = (("word", word_ids), ("reference", reference_ids)) + ((("candidate", candidates),) if per_step else ())
    for name, tokens in checked:  # the compiled pass does not bounds-check (a graph is checked when built or loaded)
        if tokens.numel() and not 0 <= int(tokens.min()) <= int(tokens.max()) < len(table):
            raise ValueError(f"{name} ids outside the {len(table)} rows of the embedding matrix")
    ids = candidates.detach().cpu().to(torch.int32).reshape(-1, candidates.shape[-1]).contiguous()
    chains = torch.empty(len(word_ids), m + 1, dtype=torch.long)
    from .kernels import anchor_chains as compiled  # numba loads on first use, not when udig is imported

    compiled(
        table.numpy(),
        word_ids.cpu().long().numpy(),
        reference_ids.cpu().long().numpy(),
        ids.numpy(),
        per_step,
        m,
        strategy == "greedy",
        chains.numpy(),
    )
    return chains


def monotone_points(chains: Tensor, reference_ids: Tensor, embeddings: Tensor, m: int) -> Tensor:
    """The monotone path through each token's chain: ``(m + 2, T, d)`` points, baseline first.

    Each point keeps its anchor's dimensions that lie between the baseline and the point before it
    (inclusive) and moves every other one 1/m of the way toward the baseline, so the path is monotone.
    """
    table = _table(embeddings)
    if chains.shape != (len(reference_ids), m + 1):
        raise ValueError(
            f"chains of shape {tuple(chains.shape)}: expected (T, m + 1) = ({len(reference_ids)}, {m + 1})"
        )
    for name, tokens in (("chain", chains), ("reference", reference_ids)):
        if tokens.numel() and not 0 <= int(tokens.min()) <= int(tokens.max()) < len(table):
            raise ValueError(f"{name} ids outside the {len(table)} rows of the embedding matrix")
    points = torch.empty(m + 2, len(reference_ids), table.shape[1], dtype=table.dtype)
    from .kernels import monotone_points as compiled  # numba loads on first use, not when udig is imported

    compiled(
        table.numpy(), chains.cpu().long().contiguous().numpy(), reference_ids.cpu().long().numpy(), m, points.numpy()
    )
    return points


def _table(embeddings: Tensor) -> Tensor:
    """The embedding matrix as the compiled passes read it: float32, CPU, row-major (a view when it already is)."""
    return embeddings.detach().float().cpu().contiguous()  # (V, d)


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
