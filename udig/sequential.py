"""Sequential integration (Enguehard, Findings of ACL 2023): each word along its own path, the others at the input.

A joint path ``P (N, L, d)`` gives every token a column of points from its baseline to its input embedding.
The sequential paths use those same columns one at a time: word i's path is ``P^i_k = x`` with column i
replaced by ``P_k[:, i]``, so every interpolated sentence differs from the input in one word only. SIG takes
IG's straight line; Sequential DIG and UDIG take their anchored word paths. Word i's attribution is the
integral along its own path alone, ``A_i ~ F(x) - F(x^(i))`` with ``x^(i)`` the input whose word i is at its
baseline; special tokens do not move and get 0.

Every quadrature rule of :mod:`udig.integrate` acts column by column (its nodes and steps in column i depend
only on column i of the path), so the nodes of ``P^i`` are the input with column i taken from the joint path's
nodes. All T x M (word, node) points go through the model in slices of ``batch_size``, built slice by slice,
so memory stays that of one slice however long the input.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .integrate import PathIntegral, ScalarFunction, gradient_terms, rule_for, values_at


def _one_word_changed(inputs: Tensor, positions: Tensor, columns: Tensor) -> Tensor:
    """Copies of ``inputs (L, d)``, copy b with token ``positions[b]`` replaced by ``columns[b] (d,)``:
    ``(B, L, d)``."""
    points = inputs.expand(len(positions), -1, -1).clone()
    points[torch.arange(len(positions), device=inputs.device), positions] = columns
    return points


def integrate_sequential(
    function: ScalarFunction, path: Tensor, moving: Tensor, batch_size: int, rule: str, f_input: Tensor
) -> PathIntegral:
    """Attributions ``(n_targets, L)`` of the moving tokens ``moving (L,)``, each along its own column of ``path``.

    ``f_baseline`` is the value that makes the explanation's Δ = Σ A − (F(x) − f_baseline) the sum of the
    words' own completeness errors, ``Σ_i [A_i − (F(x) − F(x^(i)))]``: ``F(x) − Σ_i (F(x) − F(x^(i)))``.
    ``n_evaluations`` = T × the rule's evaluations on one path; ``path`` is returned as given (each token's own
    points, for the path view and the word-approximation error).
    """
    quadrature = rule_for(rule, path)
    nodes, weights = quadrature.nodes(path)  # (M, L, d) each
    inputs = path[-1]
    positions = moving.nonzero().squeeze(1)  # (T,)
    count = len(positions) * len(nodes)
    attributions = torch.zeros(len(f_input), len(inputs), dtype=f_input.dtype, device=f_input.device)
    at_baseline = []  # F(x^(i)) of each word, in order, when the rule evaluates there
    for start in range(0, count, batch_size):
        flat = torch.arange(start, min(start + batch_size, count), device=positions.device)
        word, node = positions[flat // len(nodes)], flat % len(nodes)  # word-major: one word's nodes side by side
        points = _one_word_changed(inputs, word, nodes[node, word])
        steps = _one_word_changed(torch.zeros_like(inputs), word, weights[node, word])  # zero but in the moving column
        (terms,), values = gradient_terms(function, points, (steps,), len(points))  # (n_targets, B, L), (n_targets, B)
        attributions += terms.sum(1).to(attributions.dtype)
        if quadrature.starts_at_baseline:
            at_baseline.append(values[:, node == 0])
    if quadrature.starts_at_baseline:
        f_words = torch.cat(at_baseline, dim=1)  # (n_targets, T)
    else:
        f_words = torch.cat(
            [
                values_at(function, _one_word_changed(inputs, chunk, path[0, chunk]), batch_size)
                for chunk in positions.split(batch_size)
            ],
            dim=1,
        )
    f_baseline = f_input - (f_input[:, None] - f_words.to(f_input.dtype)).sum(1)
    return PathIntegral(attributions, f_baseline, count, path)
