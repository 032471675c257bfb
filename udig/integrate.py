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
- ``gausslegendre`` (IG and SIG, whose paths are straight lines): N - 1 Gauss-Legendre nodes on the
  straight line between the path's ends.

On IG's straight line of ``steps + 1`` points these equal captum's rules with ``n_steps`` = the number of
evaluations, but for one: captum 0.9's ``riemann_trapezoid`` weights its n points 1/(2n), 1/n, ..., 1/(2n),
which sum to (n - 1)/n instead of 1, so its attributions are (n - 1)/n of the trapezoid rule's and miss
completeness even for a linear F. udig's weights, 1/(2(n - 1)), 1/(n - 1), ..., sum to 1. Points go through the
model in chunks of ``batch_size`` (explicit slices, no state kept on the model), so chunked and unchunked runs
agree; several scalar targets of one forward pass (QA's start and end logits) share the forward and take one
backward each.

Each rule is an object in :data:`RULES` that carries its own behaviour: its nodes and steps, and how it refines
a path toward a completeness target (:meth:`Rule.refine`): a Riemann rule keeps, per segment, the gradient terms
it takes there and splits segments, reusing them (:class:`SegmentRule`); Gauss-Legendre doubles its nodes. The
integrator asks the rule and never looks at its name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from .segments import Halves, Segments

ScalarFunction = Callable[[Tensor], Tensor]
"""Word embeddings ``(B, L, d)`` -> target values ``(B, n_targets)``."""

MIN_CHANGE = 1e-3  # logits: below this |F(x) - F(x')| a relative completeness error says nothing


@dataclass
class PathIntegral:
    """Per-target attributions ``(n_targets, L)``, F at the baseline ``(n_targets,)``, the evaluations taken
    and the path integrated over (more points than given when a completeness target refined it)."""

    attributions: Tensor
    f_baseline: Tensor
    n_evaluations: int
    path: Tensor


class Rule(ABC):
    """A quadrature rule: path ``(N, L, d)`` -> evaluation points and their steps, each ``(M, L, d)``; and how
    the rule refines a path until a completeness target is met."""

    name: ClassVar[str]
    starts_at_baseline: ClassVar[bool]  # whether the first evaluation point is P_0 (so F(x') comes for free)
    extra_evaluations: ClassVar[int] = 0  # M - (N - 1)
    straight_only: ClassVar[bool] = False  # only exact on a straight line (IG)

    def __repr__(self) -> str:
        return f"<rule {self.name}>"

    @abstractmethod
    def nodes(self, path: Tensor) -> tuple[Tensor, Tensor]:
        """The evaluation points and the step each gradient multiplies, each ``(M, L, d)``."""

    def n_evaluations(self, n_points: int) -> int:
        """Points that take a forward and a backward pass on a path of ``n_points``."""
        return n_points - 1 + self.extra_evaluations

    def integrate(self, function: ScalarFunction, path: Tensor, batch_size: int) -> PathIntegral:
        """Attributions along ``path``, with F at its start: from the first evaluation when the rule takes one
        there, else from one forward pass without gradients."""
        points, weights = self.nodes(path)
        (terms,), values = gradient_terms(function, points, (weights,), batch_size)
        f_baseline = values[:, 0] if self.starts_at_baseline else values_at(function, path[:1], batch_size)[:, 0]
        return PathIntegral(terms.sum(1), f_baseline, len(points), path)

    @abstractmethod
    def refine(
        self,
        function: ScalarFunction,
        path: Tensor,
        batch_size: int,
        f_input: Tensor,
        max_delta: float,
        max_points: int,
    ) -> PathIntegral:
        """Attributions that meet ``max_delta`` (:func:`target_met`) on a path of at most ``max_points``."""


class GaussLegendre(Rule):
    """N - 1 Gauss-Legendre nodes on the line from ``path[0]`` to ``path[-1]`` (the points between are not used).
    It has no segments to split: refining doubles its nodes and integrates again."""

    name = "gausslegendre"
    starts_at_baseline = False
    straight_only = True

    def nodes(self, path: Tensor) -> tuple[Tensor, Tensor]:
        nodes, weights = np.polynomial.legendre.leggauss(len(path) - 1)
        alphas = torch.tensor((nodes + 1) / 2, dtype=path.dtype, device=path.device)[:, None, None]
        scales = torch.tensor(weights / 2, dtype=path.dtype, device=path.device)[:, None, None]
        start, change = path[0], path[-1] - path[0]
        return start + alphas * change, scales * change

    def refine(self, function, path, batch_size, f_input, max_delta, max_points) -> PathIntegral:
        spent = 0
        while True:
            integral = self.integrate(function, path, batch_size)
            spent += integral.n_evaluations
            delta = integral.attributions.sum(1) - (f_input - integral.f_baseline)
            if target_met(delta, f_input - integral.f_baseline, max_delta) or 2 * len(path) - 1 > max_points:
                return PathIntegral(integral.attributions, integral.f_baseline, spent, path)
            alphas = torch.linspace(0.0, 1.0, 2 * len(path) - 1, dtype=path.dtype, device=path.device)[:, None, None]
            path = path[0] + alphas * (path[-1] - path[0])


class SegmentRule(Rule):
    """A Riemann rule: one gradient term per segment and token (or two, the trapezoid's). Refining splits, at
    their midpoints, the segments whose quadrature error is largest (:meth:`Segments.worst`), evaluating only
    the new points and reusing every earlier gradient."""

    def refine(self, function, path, batch_size, f_input, max_delta, max_points) -> PathIntegral:
        segments = self.first_pass(function, path, batch_size, f_input)
        while segments.count + 1 < max_points:
            errors = segments.errors(self.contributions(segments))
            if target_met(errors.sum(0), f_input - segments.f_start[0], max_delta):
                break
            segments = self.split(
                segments, function, batch_size, Segments.worst(errors, max_points - 1 - segments.count)
            )
        attributions = self.contributions(segments).sum(0)
        return PathIntegral(attributions, segments.f_start[0], segments.n_evaluations, segments.path())

    @abstractmethod
    def first_pass(self, function: ScalarFunction, path: Tensor, batch_size: int, f_input: Tensor) -> Segments:
        """The path's segments with this rule's gradient terms and F at their ends (``f_input`` at the input)."""

    @abstractmethod
    def split(self, segments: Segments, function: ScalarFunction, batch_size: int, chosen: Tensor) -> Segments:
        """The segments with the ``chosen`` ones halved at their midpoints, evaluating only the new points."""

    @abstractmethod
    def contributions(self, segments: Segments) -> Tensor:
        """Per segment, target and token: ``(S, n_targets, L)``."""


class _EndpointRule(SegmentRule):
    """A rule that takes gradients at segment ends. Halving a straight segment halves its step, so a kept
    gradient's term is halved; the new midpoint's gradient is the right half's start term and the left half's
    end term."""

    def split(self, segments, function, batch_size, chosen) -> Segments:
        half = segments.steps[chosen] / 2
        (terms,), f_middles = gradient_terms(function, segments.starts[chosen] + half, (half,), batch_size)
        halves = Halves.of(segments, chosen)
        term, f_middle = terms.transpose(0, 1)[halves.new], f_middles.T[halves.new]
        right, left = halves.right, halves.left
        scale = halves.halve[:, None, None].to(segments.start_terms.dtype)
        parent = halves.parent
        return Segments(
            halves.starts(segments),
            halves.steps(segments),
            start_terms=torch.where(right[:, None, None], term, segments.start_terms[parent] * scale),
            end_terms=torch.where(left[:, None, None], term, segments.end_terms[parent] * scale),
            mid_terms=segments.mid_terms[parent],
            f_start=torch.where(right[:, None], f_middle, segments.f_start[parent]),
            f_end=torch.where(left[:, None], f_middle, segments.f_end[parent]),
            f_mid=segments.f_mid[parent],
            n_evaluations=segments.n_evaluations + len(chosen),
        )


class LeftRiemann(_EndpointRule):
    name = "riemann_left"
    starts_at_baseline = True

    def nodes(self, path: Tensor) -> tuple[Tensor, Tensor]:
        return path[:-1], path[1:] - path[:-1]

    def first_pass(self, function, path, batch_size, f_input) -> Segments:
        return _gradients_at_nodes(function, path, batch_size, f_input, with_input=False)

    def contributions(self, segments: Segments) -> Tensor:
        return segments.start_terms


class RightRiemann(_EndpointRule):
    name = "riemann_right"
    starts_at_baseline = False

    def nodes(self, path: Tensor) -> tuple[Tensor, Tensor]:
        return path[1:], path[1:] - path[:-1]

    def first_pass(self, function, path, batch_size, f_input) -> Segments:
        steps = path[1:] - path[:-1]
        (end,), f_ends = gradient_terms(function, path[1:], (steps,), batch_size)
        f_nodes = torch.cat([values_at(function, path[:1], batch_size).T, f_ends.T])
        return Segments.of(path, f_nodes, len(steps), end_terms=end.transpose(0, 1))

    def contributions(self, segments: Segments) -> Tensor:
        return segments.end_terms


class Trapezoid(_EndpointRule):
    name = "riemann_trapezoid"
    starts_at_baseline = True
    extra_evaluations = 1

    def nodes(self, path: Tensor) -> tuple[Tensor, Tensor]:
        half = (path[1:] - path[:-1]) / 2  # (N-1, L, d)
        weights = torch.zeros_like(path)
        weights[:-1] += half
        weights[1:] += half
        return path, weights

    def first_pass(self, function, path, batch_size, f_input) -> Segments:
        return _gradients_at_nodes(function, path, batch_size, f_input, with_input=True)

    def contributions(self, segments: Segments) -> Tensor:
        return (segments.start_terms + segments.end_terms) / 2


class MiddleRiemann(SegmentRule):
    """The gradient at each segment's midpoint. A split takes two new midpoints (the quarter points); the old
    midpoint becomes a node, whose F is known."""

    name = "riemann_middle"
    starts_at_baseline = False

    def nodes(self, path: Tensor) -> tuple[Tensor, Tensor]:
        return (path[:-1] + path[1:]) / 2, path[1:] - path[:-1]

    def first_pass(self, function, path, batch_size, f_input) -> Segments:
        steps = path[1:] - path[:-1]
        (mid,), f_mid = gradient_terms(function, path[:-1] + steps / 2, (steps,), batch_size)
        f_nodes = torch.cat([values_at(function, path[:-1], batch_size).T, f_input[None]])  # forward only
        return Segments.of(path, f_nodes, len(steps), mid_terms=mid.transpose(0, 1), f_mid=f_mid.T)

    def split(self, segments, function, batch_size, chosen) -> Segments:
        half = segments.steps[chosen] / 2
        middles = segments.starts[chosen] + half
        quarters = torch.cat([segments.starts[chosen] + half / 2, middles + half / 2])
        (terms,), f_quarters = gradient_terms(function, quarters, (torch.cat([half, half]),), batch_size)
        (left_mid, right_mid), (left_f, right_f) = terms.transpose(0, 1).chunk(2), f_quarters.T.chunk(2)
        halves = Halves.of(segments, chosen)
        parent, second, is_split, k = halves.parent, halves.second, halves.is_split, halves.new
        f_mid = segments.f_mid[parent]
        return Segments(
            halves.starts(segments),
            halves.steps(segments),
            start_terms=segments.start_terms[parent],
            end_terms=segments.end_terms[parent],
            mid_terms=torch.where(
                is_split[:, None, None],
                torch.where(second[:, None, None], right_mid[k], left_mid[k]),
                segments.mid_terms[parent],
            ),
            f_start=torch.where(halves.right[:, None], f_mid, segments.f_start[parent]),
            f_end=torch.where(halves.left[:, None], f_mid, segments.f_end[parent]),
            f_mid=torch.where(is_split[:, None], torch.where(second[:, None], right_f[k], left_f[k]), f_mid),
            n_evaluations=segments.n_evaluations + 2 * len(chosen),
        )

    def contributions(self, segments: Segments) -> Tensor:
        return segments.mid_terms


RULES: dict[str, Rule] = {
    rule.name: rule for rule in (LeftRiemann(), RightRiemann(), MiddleRiemann(), Trapezoid(), GaussLegendre())
}
SEGMENT_RULES = tuple(name for name, rule in RULES.items() if not rule.straight_only)


POINTS_DONE: ContextVar[Callable[[int], None] | None] = ContextVar("udig_points_done", default=None)
"""Told the number of path points of each slice :func:`gradient_terms` finishes, where a caller set it (the demo
shows "N of M path points"); None: nobody listens."""


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
    done = POINTS_DONE.get()
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
        if done is not None:
            done(len(chunk))
    return [torch.cat(collected, dim=1) for collected in terms], torch.cat(values).T


def integrate_path(function: ScalarFunction, path: Tensor, batch_size: int, rule: str = "riemann_left") -> PathIntegral:
    """Attributions along ``path (N, L, d)`` by ``rule``, with F at the path's start for the completeness check.

    F(x') comes from the first evaluation when the rule takes one there, else from one forward pass without
    gradients; F(x) is the caller's (the Explainer takes it with the first gradient pass).
    """
    return rule_for(rule, path).integrate(function, path, batch_size)


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
    ``|e_k|`` (as many as hold three quarters of ``sum |e_k|``), evaluating only the new points in one batched
    pass and reusing every earlier gradient. Uniform upscaling (DIG/UDIG's ``factor``) splits every segment
    instead. Each rule refines in its own way (:meth:`Rule.refine`); ``n_evaluations`` counts every
    forward+backward taken.
    """
    return rule_for(rule, path).refine(function, path, batch_size, f_input, max_delta, max_points)


def _gradients_at_nodes(
    function: ScalarFunction,
    path: Tensor,
    batch_size: int,
    f_input: Tensor,
    with_input: bool,
) -> Segments:
    """Gradients at every node but the input (the left sum), or at every node (the trapezoid, ``with_input``):
    node k's gradient times its segment ahead is segment k's start term, times its segment behind segment
    k - 1's end term (kept only ``with_input``). F at the input is ``f_input``."""
    steps = path[1:] - path[:-1]
    ahead = torch.cat([steps, torch.zeros_like(steps[:1])])  # node k's segment ahead, none after the input
    behind = torch.cat([torch.zeros_like(steps[:1]), steps])  # node k's segment behind
    nodes = path if with_input else path[:-1]
    terms, f_evaluated = gradient_terms(function, nodes, (ahead[: len(nodes)], behind[: len(nodes)]), batch_size)
    f_nodes = torch.cat([f_evaluated.T[: len(steps)], f_input[None]])
    return Segments.of(
        path,
        f_nodes,
        len(nodes),
        start_terms=terms[0][:, : len(steps)].transpose(0, 1),
        end_terms=terms[1][:, 1:].transpose(0, 1) if with_input else None,
    )
