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

from collections.abc import Callable
from dataclasses import dataclass

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


MIN_CHANGE = 1e-3  # logits: below this |F(x) - F(x')| a relative completeness error says nothing


@dataclass
class PathIntegral:
    """Per-target attributions ``(n_targets, L)``, F at the baseline ``(n_targets,)``, the evaluations taken
    and the path integrated over (more points than given when a completeness target refined it)."""

    attributions: Tensor
    f_baseline: Tensor
    n_evaluations: int
    path: Tensor


def gradient_terms(
    function: ScalarFunction, points: Tensor, steps: tuple[Tensor, ...], batch_size: int
) -> tuple[list[Tensor], Tensor]:
    """``dF/dx(points_m) . steps_m`` per target, point and token for each step set, and F at every point.

    points and each step set ``(M, L, d)``; returns ``[(n_targets, M, L), ...]`` and ``(n_targets, M)``. Points
    go through ``function`` in slices of ``batch_size``, one backward per target.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    terms: list[list[Tensor]] = [[] for _ in steps]
    values = []
    for start in range(0, len(points), batch_size):
        chunk = points[start : start + batch_size].detach().requires_grad_(True)  # (B, L, d)
        with torch.enable_grad():
            outputs = function(chunk)  # (B, n_targets)
            grads = [
                torch.autograd.grad(outputs[:, t].sum(), chunk, retain_graph=t < outputs.shape[1] - 1)[0]
                for t in range(outputs.shape[1])
            ]  # each (B, L, d)
        for collected, step in zip(terms, steps):
            part = step[start : start + len(chunk)]
            collected.append(torch.stack([(grad * part).sum(-1) for grad in grads]))  # (n_targets, B, L)
        values.append(outputs.detach())
    return [torch.cat(collected, dim=1) for collected in terms], torch.cat(values).T


def integrate_path(function: ScalarFunction, path: Tensor, batch_size: int, rule: str = "riemann_left") -> PathIntegral:
    """Attributions along ``path (N, L, d)`` by ``rule``, with F at the path's start for the completeness check.

    F(x') comes from the first evaluation when the rule takes one there, else from one forward pass without
    gradients; F(x) is the caller's (the Explainer takes it with the first gradient pass).
    """
    quadrature = rule_for(rule, path)
    points, weights = quadrature.nodes(path)
    (terms,), values = gradient_terms(function, points, (weights,), batch_size)
    f_baseline = values[:, 0] if quadrature.starts_at_baseline else values_at(function, path[:1], batch_size)[:, 0]
    return PathIntegral(terms.sum(1), f_baseline, len(points), path)


def rule_for(rule: str, path: Tensor) -> Rule:
    """The quadrature rule called ``rule``, checked against ``path`` (joint and sequential integration share it)."""
    if path.shape[0] < 2:
        raise ValueError("a path needs at least two points")
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    return RULES[rule]


def values_at(function: ScalarFunction, points: Tensor, batch_size: int) -> Tensor:
    """F at ``points (M, L, d)`` without gradients: ``(n_targets, M)``."""
    with torch.no_grad():
        return torch.cat([function(points[i : i + batch_size]) for i in range(0, len(points), batch_size)]).T


def target_met(delta: Tensor, change: Tensor, max_delta: float) -> bool:
    """|Δ| <= max_delta |F(x) - F(x')| for every target; below MIN_CHANGE the change counts as MIN_CHANGE, so a
    near-zero change asks for an absolute error of max_delta * MIN_CHANGE instead of an impossible 0."""
    return bool((delta.abs() <= max_delta * change.abs().clamp(min=MIN_CHANGE)).all())


def refine_path(
    function: ScalarFunction,
    path: Tensor,
    batch_size: int,
    rule: str,
    f_input: Tensor,
    max_delta: float,
    max_points: int,
) -> PathIntegral:
    """Attributions whose completeness error meets ``max_delta`` (see :func:`target_met`), refining the path
    where it pays, until the target is met or the path has ``max_points`` points.

    On a path of straight segments the integral of the gradient over segment k is exactly
    ``F(P_{k+1}) - F(P_k)``, so each segment's quadrature error ``e_k`` is known from F at its ends, which the
    gradient passes compute anyway. Each round splits, at their midpoints, the segments with the largest
    ``|e_k|`` (as many as hold half of ``sum |e_k|``), evaluating only the new points in one batched pass and
    reusing every earlier gradient: halving a straight segment halves its step, so a kept gradient's term is
    halved. Uniform upscaling (DIG/UDIG's ``factor``) splits every segment instead. Gauss-Legendre has no
    segments: it doubles its nodes and starts again. ``n_evaluations`` counts every forward+backward taken.
    """
    quadrature = rule_for(rule, path)
    if quadrature.straight_only:
        spent = 0
        while True:
            integral = integrate_path(function, path, batch_size, rule)
            spent += integral.n_evaluations
            delta = integral.attributions.sum(1) - (f_input - integral.f_baseline)
            if target_met(delta, f_input - integral.f_baseline, max_delta) or 2 * len(path) - 1 > max_points:
                return PathIntegral(integral.attributions, integral.f_baseline, spent, path)
            alphas = torch.linspace(0.0, 1.0, 2 * len(path) - 1, dtype=path.dtype, device=path.device)[:, None, None]
            path = path[0] + alphas * (path[-1] - path[0])
    segments = _Segments.start(function, path, batch_size, rule, f_input)
    while not target_met(segments.delta, f_input - segments.f_start[0], max_delta) and segments.count + 1 < max_points:
        segments = segments.split(function, batch_size, segments.worst(max_points - 1 - segments.count))
    return segments.integral()


@dataclass
class _Segments:
    """A path as straight segments with what each Riemann rule needs per segment: per-target, per-token
    gradient terms at its start, end and middle (each taken with the segment's own step) and F at its ends."""

    rule: str
    starts: Tensor  # (S, L, d)
    steps: Tensor  # (S, L, d)
    start_terms: Tensor  # (S, n_targets, L); zeros where the rule has no gradient there
    end_terms: Tensor
    mid_terms: Tensor
    f_start: Tensor  # (S, n_targets)
    f_end: Tensor
    f_mid: Tensor  # F at the midpoint (riemann_middle only; zeros otherwise)
    n_evaluations: int

    @classmethod
    def start(cls, function: ScalarFunction, path: Tensor, batch_size: int, rule: str, f_input: Tensor) -> _Segments:
        starts, steps = path[:-1], path[1:] - path[:-1]
        zeros = torch.zeros(len(steps), len(f_input), path.shape[1], dtype=f_input.dtype, device=f_input.device)
        start_terms, end_terms, mid_terms = zeros, zeros, zeros
        f_mid = torch.zeros(len(steps), len(f_input), dtype=f_input.dtype, device=f_input.device)
        if rule == "riemann_middle":
            (mid,), f_mid = gradient_terms(function, starts + steps / 2, (steps,), batch_size)
            mid_terms, f_mid = mid.transpose(0, 1), f_mid.T
            f_nodes = torch.cat(
                [values_at(function, path[:-1], batch_size).T, f_input[None]]
            )  # no gradients: forward only
        elif rule == "riemann_right":
            (end,), f_ends = gradient_terms(function, path[1:], (steps,), batch_size)
            end_terms = end.transpose(0, 1)
            f_nodes = torch.cat([values_at(function, path[:1], batch_size).T, f_ends.T])
        else:  # left, trapezoid: the gradient at every start; the trapezoid also at every end
            ahead = torch.cat([steps, torch.zeros_like(steps[:1])])  # node k's segment ahead, none after the input
            behind = torch.cat([torch.zeros_like(steps[:1]), steps])  # node k's segment behind
            nodes = path if rule == "riemann_trapezoid" else path[:-1]
            terms, f_evaluated = gradient_terms(
                function, nodes, (ahead[: len(nodes)], behind[: len(nodes)]), batch_size
            )
            start_terms = terms[0][:, : len(steps)].transpose(0, 1)
            if rule == "riemann_trapezoid":
                end_terms = terms[1][:, 1:].transpose(0, 1)
            f_nodes = torch.cat([f_evaluated.T[: len(steps)], f_input[None]])
        evaluations = len(path) if rule == "riemann_trapezoid" else len(steps)
        return cls(
            rule, starts, steps, start_terms, end_terms, mid_terms, f_nodes[:-1], f_nodes[1:], f_mid, evaluations
        )

    @property
    def count(self) -> int:
        """Segments; the path has one point more."""
        return len(self.steps)

    @property
    def contributions(self) -> Tensor:
        """Per segment, target and token: ``(S, n_targets, L)``."""
        if self.rule == "riemann_left":
            return self.start_terms
        if self.rule == "riemann_right":
            return self.end_terms
        if self.rule == "riemann_middle":
            return self.mid_terms
        return (self.start_terms + self.end_terms) / 2

    @property
    def errors(self) -> Tensor:
        """Each segment's quadrature error ``(S, n_targets)``: its terms minus the exact F(end) - F(start)."""
        return self.contributions.sum(-1) - (self.f_end - self.f_start)

    @property
    def delta(self) -> Tensor:
        return self.errors.sum(0)

    def worst(self, budget: int) -> Tensor:
        """The segments to split: by |error| (summed over targets), as many as hold 3/4 of the total, within budget
        (fewer rounds, so fewer small passes through the model, at the cost of some splits that were not needed)."""
        size = self.errors.abs().sum(1)  # (S,)
        order = size.argsort(descending=True)
        share = size[order].cumsum(0) / size.sum().clamp(min=torch.finfo(size.dtype).tiny)
        wanted = int((share < 0.75).sum()) + 1
        return order[: max(1, min(wanted, budget))]

    def split(self, function: ScalarFunction, batch_size: int, chosen: Tensor) -> _Segments:
        """Halve the chosen segments at their midpoints, evaluating only the new points."""
        half = self.steps[chosen] / 2
        middles = self.starts[chosen] + half
        if self.rule == "riemann_middle":  # two new midpoints per split; the old midpoint becomes a node
            quarters = torch.cat([self.starts[chosen] + half / 2, middles + half / 2])
            (terms,), f_quarters = gradient_terms(function, quarters, (torch.cat([half, half]),), batch_size)
            first, second = terms.transpose(0, 1).chunk(2), f_quarters.T.chunk(2)
            new = {"mid": first, "f_mid": second}
            evaluations = 2 * len(chosen)
        else:
            (terms,), f_middles = gradient_terms(function, middles, (half,), batch_size)
            new = {"term": terms.transpose(0, 1), "f": f_middles.T}
            evaluations = len(chosen)
        split = torch.zeros(self.count, dtype=torch.bool, device=self.steps.device)
        split[chosen] = True
        rank = torch.full((self.count,), -1, dtype=torch.long, device=self.steps.device)
        rank[chosen] = torch.arange(len(chosen), device=chosen.device)  # where each split segment's new values are
        parent = torch.repeat_interleave(torch.arange(self.count, device=split.device), 1 + split.long())
        second = torch.zeros_like(parent, dtype=torch.bool)
        second[1:] = parent[1:] == parent[:-1]  # the right half of a split segment
        is_split = split[parent]
        k = rank[parent].clamp(min=0)
        halve = torch.where(is_split, 0.5, 1.0).to(self.steps.dtype)

        starts = torch.where(second[:, None, None], self.starts[parent] + self.steps[parent] / 2, self.starts[parent])
        steps = self.steps[parent] * halve[:, None, None]
        scale = halve[:, None, None].to(self.start_terms.dtype)
        if self.rule == "riemann_middle":
            (left_mid, right_mid), (left_f, right_f) = new["mid"], new["f_mid"]
            mid_terms = torch.where(
                is_split[:, None, None],
                torch.where(second[:, None, None], right_mid[k], left_mid[k]),
                self.mid_terms[parent],
            )
            f_mid = torch.where(
                is_split[:, None], torch.where(second[:, None], right_f[k], left_f[k]), self.f_mid[parent]
            )
            f_start = torch.where((is_split & second)[:, None], self.f_mid[parent], self.f_start[parent])
            f_end = torch.where((is_split & ~second)[:, None], self.f_mid[parent], self.f_end[parent])
            start_terms, end_terms = self.start_terms[parent], self.end_terms[parent]
        else:
            term, f_middle = new["term"][k], new["f"][k]
            start_terms = torch.where((is_split & second)[:, None, None], term, self.start_terms[parent] * scale)
            end_terms = torch.where((is_split & ~second)[:, None, None], term, self.end_terms[parent] * scale)
            f_start = torch.where((is_split & second)[:, None], f_middle, self.f_start[parent])
            f_end = torch.where((is_split & ~second)[:, None], f_middle, self.f_end[parent])
            mid_terms, f_mid = self.mid_terms[parent], self.f_mid[parent]
        return _Segments(
            self.rule,
            starts,
            steps,
            start_terms,
            end_terms,
            mid_terms,
            f_start,
            f_end,
            f_mid,
            self.n_evaluations + evaluations,
        )

    def integral(self) -> PathIntegral:
        path = torch.cat([self.starts, self.starts[-1:] + self.steps[-1:]])
        return PathIntegral(self.contributions.sum(0), self.f_start[0], self.n_evaluations, path)
