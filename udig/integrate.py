"""One batched integrator for every path, and the quadrature rules that say where gradients are taken.

A rule turns a path ``P_0 = x', ..., P_{N-1} = x`` into evaluation points ``E_m`` and the step each gradient
multiplies, ``W_m``; attributions are ``A_i = sum_m dF/dx_i(E_m) . W_{m,i}``. The rules keep captum's names
(``captum.attr._utils.approximation_methods``). On a path made of segments (DIG and UDIG's word paths) each
Riemann rule acts on every segment ``P_k -> P_{k+1}``:

- ``riemann_left`` (the papers): the gradient at the segment's start, ``E = P_k``;
- ``riemann_right``: at its end, ``E = P_{k+1}``;
- ``riemann_middle``: at its midpoint, which lies between words on a word path;
- ``riemann_trapezoid``: the mean of both ends; every point of the path is evaluated once (N evaluations),
  so every gradient is taken on an anchor or the input itself;
- ``gausslegendre`` (IG only): N - 1 Gauss-Legendre nodes on the straight line between the path's ends.

On IG's straight line of ``steps + 1`` points these equal captum's rules with ``n_steps`` = the number of
evaluations, but for one: captum 0.9's ``riemann_trapezoid`` weights its n points 1/(2n), 1/n, ..., 1/(2n),
which sum to (n - 1)/n instead of 1, so its attributions are (n - 1)/n of the trapezoid rule's and miss
completeness even for a linear F. udig's weights, 1/(2(n - 1)), 1/(n - 1), ..., sum to 1. Points go through the model in chunks of ``batch_size`` (explicit slices, no state kept on the
model), so chunked and unchunked runs agree; several scalar targets of one forward pass (QA's start and end
logits) share the forward and take one backward each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

ScalarFunction = Callable[[Tensor], Tensor]
"""Word embeddings ``(B, L, d)`` -> target values ``(B, n_targets)``."""


def _left(path: Tensor) -> tuple[Tensor, Tensor]:
    return path[:-1], path[1:] - path[:-1]


def _right(path: Tensor) -> tuple[Tensor, Tensor]:
    return path[1:], path[1:] - path[:-1]


def _middle(path: Tensor) -> tuple[Tensor, Tensor]:
    return (path[:-1] + path[1:]) / 2, path[1:] - path[:-1]


def _trapezoid(path: Tensor) -> tuple[Tensor, Tensor]:
    half = (path[1:] - path[:-1]) / 2  # (N-1, L, d)
    weights = torch.zeros_like(path)
    weights[:-1] += half
    weights[1:] += half
    return path, weights


def _gauss_legendre(path: Tensor) -> tuple[Tensor, Tensor]:
    """N - 1 nodes on the line from ``path[0]`` to ``path[-1]`` (the points between are not used)."""
    nodes, weights = np.polynomial.legendre.leggauss(len(path) - 1)
    alphas = torch.tensor((nodes + 1) / 2, dtype=path.dtype, device=path.device)[:, None, None]
    scales = torch.tensor(weights / 2, dtype=path.dtype, device=path.device)[:, None, None]
    start, change = path[0], path[-1] - path[0]
    return start + alphas * change, scales * change


@dataclass(frozen=True)
class Rule:
    """A quadrature rule: path ``(N, L, d)`` -> evaluation points and their steps, each ``(M, L, d)``."""

    name: str
    nodes: Callable[[Tensor], tuple[Tensor, Tensor]]
    starts_at_baseline: bool  # whether the first evaluation point is P_0 (so F(x') comes for free)
    extra_evaluations: int  # M - (N - 1)
    straight_only: bool = False  # only exact on a straight line (IG)

    def n_evaluations(self, n_points: int) -> int:
        """Points that take a forward and a backward pass on a path of ``n_points``."""
        return n_points - 1 + self.extra_evaluations


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule("riemann_left", _left, True, 0),
        Rule("riemann_right", _right, False, 0),
        Rule("riemann_middle", _middle, False, 0),
        Rule("riemann_trapezoid", _trapezoid, True, 1),
        Rule("gausslegendre", _gauss_legendre, False, 0, straight_only=True),
    )
}
SEGMENT_RULES = tuple(name for name, rule in RULES.items() if not rule.straight_only)


@dataclass
class PathIntegral:
    """Per-target attributions ``(n_targets, L)``, F at the baseline ``(n_targets,)`` and the evaluation count."""

    attributions: Tensor
    f_baseline: Tensor
    n_evaluations: int


def integrate(function: ScalarFunction, points: Tensor, weights: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """``sum_m dF/dx(points_m) . weights_m`` per target and token, points ``(M, L, d)`` in slices of ``batch_size``.

    Returns attributions ``(n_targets, L)`` and F at every point ``(n_targets, M)``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    attributions: Tensor | None = None
    values = []
    for start in range(0, len(points), batch_size):
        chunk = points[start : start + batch_size].detach().requires_grad_(True)  # (B, L, d)
        chunk_weights = weights[start : start + len(chunk)]  # (B, L, d)
        with torch.enable_grad():
            outputs = function(chunk)  # (B, n_targets)
            partial = []
            for target in range(outputs.shape[1]):
                (grad,) = torch.autograd.grad(
                    outputs[:, target].sum(), chunk, retain_graph=target < outputs.shape[1] - 1
                )
                partial.append((grad * chunk_weights).sum(dim=(0, 2)))  # (L,)
        values.append(outputs.detach())
        chunk_sum = torch.stack(partial)  # (n_targets, L)
        attributions = chunk_sum if attributions is None else attributions + chunk_sum
    return attributions, torch.cat(values).T


def integrate_path(function: ScalarFunction, path: Tensor, batch_size: int, rule: str = "riemann_left") -> PathIntegral:
    """Attributions along ``path (N, L, d)`` by ``rule``, with F at the path's start for the completeness check.

    F(x') comes from the first evaluation when the rule takes one there, else from one forward pass without
    gradients; F(x) is the caller's (the prediction pass already computed it).
    """
    if path.shape[0] < 2:
        raise ValueError("a path needs at least two points")
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    quadrature = RULES[rule]
    points, weights = quadrature.nodes(path)
    attributions, values = integrate(function, points, weights, batch_size)
    if quadrature.starts_at_baseline:
        f_baseline = values[:, 0]
    else:
        with torch.no_grad():
            f_baseline = function(path[:1])[0].detach()
    return PathIntegral(attributions, f_baseline, len(points))
