"""A path as straight segments, for refining it where the quadrature error is largest (:mod:`udig.integrate`).

On a path of straight segments the integral of the gradient over segment k is exactly ``F(P_{k+1}) - F(P_k)``,
so each segment's quadrature error is known from F at its ends, which the gradient passes compute anyway.
:class:`Segments` keeps, per segment, the gradient terms a rule took there and F at its ends and middle;
:class:`Halves` says where each segment of a path with some segments halved comes from, so a rule can reuse
every earlier term. Which terms count is the rule's business (``contributions``), not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Segments:
    """Straight segments with per-target, per-token gradient terms at their start, end and middle (each taken
    with the segment's own step; zeros where a rule takes none) and F at their ends and middle."""

    starts: Tensor  # (S, L, d)
    steps: Tensor  # (S, L, d)
    start_terms: Tensor  # (S, n_targets, L)
    end_terms: Tensor
    mid_terms: Tensor
    f_start: Tensor  # (S, n_targets)
    f_end: Tensor
    f_mid: Tensor  # F at the midpoint (the midpoint rule's only)
    n_evaluations: int

    @classmethod
    def of(
        cls,
        path: Tensor,
        f_nodes: Tensor,
        n_evaluations: int,
        start_terms: Tensor | None = None,
        end_terms: Tensor | None = None,
        mid_terms: Tensor | None = None,
        f_mid: Tensor | None = None,
    ) -> Segments:
        """The segments of ``path (N, L, d)`` with F at its nodes ``f_nodes (N, n_targets)`` and the terms given;
        zeros for the others."""
        steps = path[1:] - path[:-1]
        zeros = torch.zeros(len(steps), f_nodes.shape[1], path.shape[1], dtype=f_nodes.dtype, device=f_nodes.device)
        no_f = torch.zeros(len(steps), f_nodes.shape[1], dtype=f_nodes.dtype, device=f_nodes.device)
        return cls(
            path[:-1],
            steps,
            zeros if start_terms is None else start_terms,
            zeros if end_terms is None else end_terms,
            zeros if mid_terms is None else mid_terms,
            f_nodes[:-1],
            f_nodes[1:],
            no_f if f_mid is None else f_mid,
            n_evaluations,
        )

    @property
    def count(self) -> int:
        """Segments; the path has one point more."""
        return len(self.steps)

    def path(self) -> Tensor:
        """The points ``(S + 1, L, d)``."""
        return torch.cat([self.starts, self.starts[-1:] + self.steps[-1:]])

    def errors(self, contributions: Tensor) -> Tensor:
        """Each segment's quadrature error ``(S, n_targets)``: a rule's terms ``contributions (S, n_targets, L)``
        summed over tokens, minus the exact F(end) - F(start)."""
        return contributions.sum(-1) - (self.f_end - self.f_start)

    @staticmethod
    def worst(errors: Tensor, budget: int) -> Tensor:
        """The segments to split: by |error| (summed over targets), as many as hold 3/4 of the total, within budget
        (fewer rounds, so fewer small passes through the model, at the cost of some splits that were not needed)."""
        size = errors.abs().sum(1)  # (S,)
        order = size.argsort(descending=True)
        share = size[order].cumsum(0) / size.sum().clamp(min=torch.finfo(size.dtype).tiny)
        wanted = int((share < 0.75).sum()) + 1
        return order[: max(1, min(wanted, budget))]


@dataclass(frozen=True)
class Halves:
    """Where each segment of a path with the ``chosen`` segments halved comes from: its ``parent``, whether it is
    a split segment's right half (``second``) or a half at all (``is_split``), which of the chosen segments' new
    values it takes (``new``) and the factor on its parent's step (``halve``: 0.5 or 1)."""

    parent: Tensor  # (S',)
    second: Tensor
    is_split: Tensor
    new: Tensor
    halve: Tensor

    @classmethod
    def of(cls, segments: Segments, chosen: Tensor) -> Halves:
        split = torch.zeros(segments.count, dtype=torch.bool, device=segments.steps.device)
        split[chosen] = True
        rank = torch.full((segments.count,), -1, dtype=torch.long, device=segments.steps.device)
        rank[chosen] = torch.arange(len(chosen), device=chosen.device)  # where each split segment's new values are
        parent = torch.repeat_interleave(torch.arange(segments.count, device=split.device), 1 + split.long())
        second = torch.zeros_like(parent, dtype=torch.bool)
        second[1:] = parent[1:] == parent[:-1]  # the right half of a split segment
        is_split = split[parent]
        halve = torch.where(is_split, 0.5, 1.0).to(segments.steps.dtype)
        return cls(parent, second, is_split, rank[parent].clamp(min=0), halve)

    @property
    def left(self) -> Tensor:
        """The left halves of split segments ``(S',)``."""
        return self.is_split & ~self.second

    @property
    def right(self) -> Tensor:
        """The right halves of split segments ``(S',)``."""
        return self.is_split & self.second

    def starts(self, segments: Segments) -> Tensor:
        parent = self.parent
        return torch.where(
            self.second[:, None, None], segments.starts[parent] + segments.steps[parent] / 2, segments.starts[parent]
        )

    def steps(self, segments: Segments) -> Tensor:
        return segments.steps[self.parent] * self.halve[:, None, None]
