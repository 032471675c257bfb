"""Attribution methods in one registry: how each one turns a :class:`Problem` into attributions.

IG, DIG and UDIG are *path methods*: they differ only in the points of the path (:mod:`udig.paths`), which
one integrator (:mod:`udig.integrate`) turns into attributions. With ``sequential`` set, each word moves along
its own column of that path while the others stay at the input (:mod:`udig.sequential`); SIG is IG's straight
line integrated so, from [MASK]. ``random`` (seeded Gaussian scores) and
``grad-input`` (gradient x input at the input, Shrikumar et al. 2016) are path-free sanity baselines for the
evaluation. A new method is one entry of :data:`REGISTRY`; :func:`get_method` raises on unknown names.

References: Sundararajan et al. 2017 (IG); Sanyal & Ren, EMNLP 2021 (DIG); Roy & Kundu 2024,
arXiv 2412.03886 (UDIG); Enguehard, Findings of ACL 2023 (SIG).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from . import paths
from .integrate import RULES, SEGMENT_RULES, integrate_path, refine_path
from .sequential import integrate_sequential
from .tasks import Encoding
from .vocab import VocabIndex


class MethodSettings(Protocol):
    """What a method reads of one explanation's :class:`udig.settings.Settings`. The settings module checks
    every value against this registry (a method's choices, what it uses), so it imports this module and not
    the other way round: a method sees the settings through this read-only view."""

    @property
    def steps(self) -> int: ...

    @property
    def factor(self) -> int: ...

    @property
    def nbrs(self) -> int: ...

    @property
    def strategy(self) -> str | None: ...

    @property
    def candidates(self) -> str: ...

    @property
    def seed(self) -> int: ...

    @property
    def rule(self) -> str | None: ...

    @property
    def max_delta(self) -> float | None: ...

    @property
    def max_points(self) -> int: ...

    @property
    def sequential(self) -> bool: ...


@dataclass
class Problem:
    """One input in canonical form, built once by the Explainer: everything a method may read."""

    encoding: Encoding
    inputs: Tensor  # (L, d) word embeddings, model dtype and device
    embeddings: Tensor  # (V, d) the model's word-embedding matrix
    reference_ids: Tensor | None  # (L,) baseline ids (special tokens keep their own); None without a baseline
    value: Callable[[Tensor], Tensor]  # word embeddings (B, L, d) -> target values (B, n_targets)
    input_values: Callable[
        [], Tensor
    ]  # (n_targets,) F at the input; taken in the first call of ``value`` unless asked first
    batch_size: int  # path points per forward/backward pass
    vocab: Callable[[], VocabIndex]  # the shared vocabulary index, built on first call
    graph_k: int  # neighbours per word in DIG's KNN graph


@dataclass
class Attribution:
    """What a method returns: per-target token attributions and, for path methods, the path itself."""

    attributions: Tensor  # (n_targets, L)
    f_baseline: Tensor  # (n_targets,) F at the path's start; NaN without a path
    n_evaluations: int  # points that took a forward and a backward pass
    path: Tensor | None = None  # (N, L, d)
    chains: Tensor | None = None  # (T, m + 1) anchor ids of the moving tokens, word first (DIG/UDIG)
    timings: dict[str, float] = field(default_factory=dict)


class Method(Protocol):
    """A registry entry. ``uses`` names the settings it reads; the others are set to neutral values."""

    name: str
    title: str
    paper_baseline: str | None  # the baseline token its paper integrates from; None without a path
    uses: frozenset[str]
    restricts: Mapping[str, tuple[str, ...]]  # settings it uses with fewer choices than the table allows
    fixed: Mapping[str, Any]  # settings it always has, whatever is asked (SIG: sequential)

    def n_points(self, settings: MethodSettings) -> int | None: ...

    def n_evaluations(self, settings: MethodSettings) -> int: ...

    def prepare(self, vocab: VocabIndex, settings: MethodSettings, graph_k: int) -> None:
        """Build the shared state its paths need (DIG's graph) now, e.g. before a time-limited GPU window."""

    def attribute(self, problem: Problem, settings: MethodSettings) -> Attribution: ...


PathBuilder = Callable[[Problem, MethodSettings], tuple[Tensor, Tensor | None]]
"""(problem, settings) -> path points ``(N, L, d)`` and the anchor chains (None for IG)."""


@dataclass(frozen=True)
class PathMethod:
    """A path from the baseline to the input, integrated by the settings' rule (:mod:`udig.integrate`) and
    refined where it is least exact when a completeness target (``max_delta``) is set."""

    name: str
    title: str
    paper_baseline: str
    uses: frozenset[str]
    build: PathBuilder
    count: Callable[[MethodSettings], int]
    restricts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    needs_graph: bool = False  # DIG: candidates from the KNN graph, seconds to build and then cached
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def n_points(self, settings: MethodSettings) -> int:
        return self.count(settings)

    def prepare(self, vocab: VocabIndex, settings: MethodSettings, graph_k: int) -> None:
        if self.needs_graph:
            vocab.graph(graph_k, settings.candidates, rows=())

    def n_evaluations(self, settings: MethodSettings) -> int:
        return RULES[settings.rule].n_evaluations(self.count(settings))

    def attribute(self, problem: Problem, settings: MethodSettings) -> Attribution:
        tick = time.perf_counter()
        path, chains = self.build(problem, settings)
        timings = {"path": time.perf_counter() - tick}
        tick = time.perf_counter()
        if settings.sequential:
            moving = ~problem.encoding.special_mask.to(path.device)
            integral = integrate_sequential(
                problem.value, path, moving, problem.batch_size, settings.rule, problem.input_values()
            )
        elif settings.max_delta is None:
            integral = integrate_path(problem.value, path, problem.batch_size, settings.rule)
        else:
            integral = refine_path(
                problem.value,
                path,
                problem.batch_size,
                settings.rule,
                problem.input_values(),
                settings.max_delta,
                settings.max_points,
            )
        timings["gradients"] = time.perf_counter() - tick
        return Attribution(
            integral.attributions, integral.f_baseline, integral.n_evaluations, integral.path, chains, timings
        )


@dataclass(frozen=True)
class PathFreeMethod:
    """Scores without a path (no baseline, no completeness): special tokens get exactly 0, as in every method."""

    name: str
    title: str
    uses: frozenset[str]
    scores: Callable[[Problem, MethodSettings], Tensor]  # (n_targets, L)
    evaluations: int  # forward and backward passes it takes
    paper_baseline: None = None
    restricts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def n_points(self, settings: MethodSettings) -> None:
        return None

    def prepare(self, vocab: VocabIndex, settings: MethodSettings, graph_k: int) -> None:
        """Nothing to build."""

    def n_evaluations(self, settings: MethodSettings) -> int:
        return self.evaluations

    def attribute(self, problem: Problem, settings: MethodSettings) -> Attribution:
        tick = time.perf_counter()
        scores = self.scores(problem, settings)
        scores = scores.masked_fill(problem.encoding.special_mask.to(scores.device), 0.0)
        nan = torch.full((scores.shape[0],), float("nan"))
        return Attribution(scores, nan, self.evaluations, timings={"gradients": time.perf_counter() - tick})


# -- paths ----------------------------------------------------------------------------------------------


def _linear_path(problem: Problem, settings: MethodSettings) -> tuple[Tensor, None]:
    """IG: the straight line from the baseline embeddings to the input."""
    baseline = problem.embeddings[problem.reference_ids.to(problem.embeddings.device)].detach()  # (L, d)
    return paths.linear_path(baseline, problem.inputs, settings.steps), None


CandidateBuilder = Callable[[VocabIndex, Tensor, Tensor, MethodSettings, int, torch.device], Tensor]
"""(vocab, word ids, reference ids, settings, graph_k, model device) -> candidates for :func:`paths.anchor_chains`."""
CandidateSource = Callable[[MethodSettings, int], tuple]
"""(settings, graph_k) -> what fixes a method's candidates, besides the word and its reference."""


def _graph_candidates(
    vocab: VocabIndex, word_ids: Tensor, refs: Tensor, settings: MethodSettings, graph_k: int, device: torch.device
) -> Tensor:
    """DIG: the KNN-graph neighbours of the previous anchor, ``(V, K)``: the tokens' rows and every candidate's
    (each anchor after a token is a candidate)."""
    return vocab.graph(graph_k, settings.candidates, device, rows=word_ids)


def _line_candidates(
    vocab: VocabIndex, word_ids: Tensor, refs: Tensor, settings: MethodSettings, graph_k: int, device: torch.device
) -> Tensor:
    """UDIG: the nearest words to each of the m evenly spaced reference points on the IG line, ``(T, m, nbrs)``."""
    table = vocab.embeddings
    alphas = paths.udig_reference_alphas(settings.steps)
    return vocab.nearest_on_segments(table[refs], table[word_ids], alphas, settings.nbrs, settings.candidates, device)


def _anchored_path(candidates: CandidateBuilder, source: CandidateSource) -> PathBuilder:
    """DIG and UDIG differ only in where each anchor's candidates come from. Chains are remembered by the
    vocabulary index (:meth:`VocabIndex.anchor_chains`): only words not chained before are searched."""

    def build(problem: Problem, settings: MethodSettings) -> tuple[Tensor, Tensor]:
        vocab = problem.vocab()
        encoding, inputs = problem.encoding, problem.inputs
        moving = ~encoding.special_mask
        word_ids, refs = encoding.input_ids[moving], problem.reference_ids[moving]  # (T,)

        def chain(words: Tensor, references: Tensor) -> Tensor:
            found = candidates(vocab, words, references, settings, problem.graph_k, inputs.device)
            return paths.anchor_chains(words, references, vocab.embeddings, found, settings.strategy, settings.steps)

        key = (*source(settings, problem.graph_k), settings.strategy, settings.steps, inputs.device.type)
        chains = vocab.anchor_chains(key, word_ids, refs, chain)
        points = paths.monotone_points(chains, refs, vocab.embeddings, settings.steps)
        points = paths.upscale(points, settings.factor)  # (N, T, d)
        return paths.sentence_path(points.to(inputs), inputs, moving.to(inputs.device)), chains

    return build


def _anchored_points(settings: MethodSettings) -> int:
    return 2**settings.factor * (settings.steps + 1) + 1


# -- path-free baselines -----------------------------------------------------------------------------------


def _random_scores(problem: Problem, settings: MethodSettings) -> Tensor:
    """Standard normal scores seeded by (seed, text): the same input always gets the same scores."""
    rng = np.random.default_rng([settings.seed, zlib.crc32(problem.encoding.text.encode())])
    rows = [rng.standard_normal(len(problem.encoding)) for _ in range(len(problem.input_values()))]
    return torch.from_numpy(np.stack(rows))  # (n_targets, L)


def _gradient_times_input(problem: Problem, settings: MethodSettings) -> Tensor:
    """``sum_j dF/dx_ij * x_ij`` at the input, for each target, from one forward pass."""
    point = problem.inputs[None].detach().requires_grad_(True)  # (1, L, d)
    with torch.enable_grad():
        values = problem.value(point)[0]  # (n_targets,)
        grads = [
            torch.autograd.grad(values[t], point, retain_graph=t < len(values) - 1)[0][0] for t in range(len(values))
        ]  # each (L, d)
    return torch.stack([(grad * problem.inputs).sum(-1) for grad in grads]).double().cpu()  # (n_targets, L)


_WORD_PATH_RULES = {"rule": SEGMENT_RULES}  # a word path is made of segments: no Gauss-Legendre on it
_INTEGRATED = frozenset({"steps", "baseline", "rule", "max_delta", "max_points", "objective"})
_ANCHORED = _INTEGRATED | {"factor", "nbrs", "strategy", "candidates", "sequential"}

REGISTRY: dict[str, Method] = {
    method.name: method
    for method in (
        PathMethod("ig", "IG", "pad", _INTEGRATED, _linear_path, lambda s: s.steps + 1),
        PathMethod(
            "dig",
            "DIG",
            "pad",
            _ANCHORED - {"nbrs"},
            _anchored_path(_graph_candidates, lambda s, graph_k: ("dig", s.candidates, graph_k)),
            _anchored_points,
            _WORD_PATH_RULES,
            needs_graph=True,
        ),
        PathMethod(
            "udig",
            "UDIG",
            "mask",
            _ANCHORED,
            _anchored_path(_line_candidates, lambda s, graph_k: ("udig", s.candidates, s.nbrs)),
            _anchored_points,
            _WORD_PATH_RULES,
        ),
        PathMethod("sig", "SIG", "mask", _INTEGRATED, _linear_path, lambda s: s.steps + 1, fixed={"sequential": True}),
        PathFreeMethod("random", "Random", frozenset({"seed"}), _random_scores, evaluations=0),
        PathFreeMethod("grad-input", "Gradient × input", frozenset(), _gradient_times_input, evaluations=1),
    )
}
METHODS = tuple(REGISTRY)
PATH_METHODS = tuple(name for name, method in REGISTRY.items() if isinstance(method, PathMethod))


def get_method(name: str) -> Method:
    """The registered method called ``name``; ValueError naming the choices otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None
