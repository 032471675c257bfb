"""One batched integrator for every path: the left Riemann sum of gradient x step.

``A_i = sum_k dF/dx_i(P_k) . (P_{k+1,i} - P_{k,i})`` over the points of any path, IG's straight line
or DIG/UDIG's word paths alike. Points go through the model in chunks of ``batch_size`` (explicit
slices, no state kept on the model), so chunked and unchunked runs agree; several scalar targets of one
forward pass (QA's start and end logits) share the forward and take one backward each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

ScalarFunction = Callable[[Tensor], Tensor]
"""Word embeddings ``(B, L, d)`` -> target values ``(B, n_targets)``."""


@dataclass
class PathIntegral:
    """Per-target attributions ``(n_targets, L)`` and target values at every point ``(n_targets, N)``."""

    attributions: Tensor
    values: Tensor

    @property
    def delta(self) -> Tensor:
        """Completeness error per target: ``sum(attributions) - (F(x) - F(x'))``."""
        return self.attributions.sum(1) - (self.values[:, -1] - self.values[:, 0])


def integrate_path(
    function: ScalarFunction, points: Tensor, batch_size: int, end_values: Tensor | None = None
) -> PathIntegral:
    """Left Riemann sum along ``points (N, L, d)``, the points going through the model in slices.

    The sum never uses the gradient at the last point (the input), so only the first N-1 points take a
    forward and a backward pass; F at the input is ``end_values (n_targets,)`` when the caller already
    has it (the prediction it made to choose the target), else one forward without gradients.
    """
    if points.shape[0] < 2:
        raise ValueError("a path needs at least two points")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if end_values is None:
        with torch.no_grad():
            end_values = function(points[-1:])[0]
    steps = points[1:] - points[:-1]  # (N-1, L, d)
    attributions: Tensor | None = None
    values = []
    for start in range(0, len(steps), batch_size):
        chunk = points[start : min(start + batch_size, len(steps))].detach().requires_grad_(True)  # (B, L, d)
        weights = steps[start : start + len(chunk)]  # (B, L, d)
        with torch.enable_grad():
            outputs = function(chunk)  # (B, n_targets)
            partial = []
            for target in range(outputs.shape[1]):
                (grad,) = torch.autograd.grad(
                    outputs[:, target].sum(), chunk, retain_graph=target < outputs.shape[1] - 1
                )
                partial.append((grad * weights).sum(dim=(0, 2)))  # (L,)
        values.append(outputs.detach())
        chunk_sum = torch.stack(partial)  # (n_targets, L)
        attributions = chunk_sum if attributions is None else attributions + chunk_sum
    values.append(end_values.detach().reshape(1, -1).to(values[0]))
    return PathIntegral(attributions=attributions, values=torch.cat(values).T)
