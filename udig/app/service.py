"""Explanations for the demo's requests: shared models and explainers, and a small cache of recent results.

A visitor's own Hub model (UDIG_ALLOW_ANY_MODEL) is vetted before any download (:func:`vet_visitor_model`),
fetched exactly as vetted (:func:`load_hub_model`), loaded one at a time, and only a few stay in memory
(:class:`Registry`: the least recently used leaves; the listed models stay).

Shared state is limited to lock-protected caches: loaded models (one per name), explainers (one per model,
so the vocabulary index behind it is built once even under concurrent requests) and an LRU of recent
results, so that the path view and the exports reuse the explanation just shown instead of recomputing it.
The attribution itself (:func:`attribute`) is the one step that runs under ``spaces.GPU`` on ZeroGPU Spaces,
for a time sized from the request (:func:`gpu_seconds`); it is handed model names, not models.

Work a process does once (loading a model, compiling the kernels, building DIG's graph) is logged in a
:class:`StartUp`: a request that waits for it shows the stage it waits on and counts the wait in its runtime,
and Gradio's time estimates learn only from requests that did none (:mod:`udig.app.waiting`).
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
import time
import uuid
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from .. import hub, metrics
from ..explainer import Explainer
from ..explanation import Explanation, QAExplanation
from ..hub import ModelRefused, Vetted, VettingLimits
from ..integrate import POINTS_DONE
from ..methods import PathMethod, get_method
from ..models import load_base_minilm, load_model
from ..provenance import ModelRef, known, model_ref, model_revision
from ..settings import Settings
from ..tasks import get_task
from . import memory
from .config import UNTRAINED_QA_MODEL, AppConfig, Limits, hub_usable

try:  # Hugging Face Spaces (ZeroGPU): run attribution under @spaces.GPU; elsewhere a no-op
    import spaces  # type: ignore

    gpu = spaces.GPU
except ImportError:  # pragma: no cover - depends on the environment

    def gpu(fn: Callable | None = None, **_kwargs: Any) -> Callable:
        """Stand-in for ``spaces.GPU`` when the ``spaces`` package is absent: ``@gpu``, ``@gpu(duration=...)``
        (a number of seconds or a callable of the function's arguments) and ``gpu(fn, duration=...)``."""
        return fn if fn is not None else (lambda f: f)


# ZeroGPU seconds requested per attribution (the request counts against each visitor's quota, and shorter
# requests queue first): GPU_MARGIN x (GPU_FIXED_S + GPU_S_PER_POINT_TOKEN x path points x tokens), clamped to
# GPU_SECONDS. Measured: attribute()'s wall time (explanation and scores) on the 2-core CPU development
# machine, no GPU at hand, for a BERT-base-sized model (the largest curated ones): 1.7 s at 32 points x 10
# tokens, 4.9 s at 32 x 32, 53.5 s at 63 x 102, so about 8 ms per point-token plus a second (MiniLM: 1-1.6 ms;
# QA about 1.2x classification). A GPU runs the forward/backward passes far faster, so this is a ceiling;
# the floor covers a fresh ZeroGPU worker's start, the ceiling is the fixed 120 s requested before.
GPU_S_PER_POINT_TOKEN = 0.008
GPU_FIXED_S = 1.0
GPU_MARGIN = 1.5
GPU_SECONDS = (10, 120)

PATH_CACHE_BYTES = 16 * 2**20  # path points kept per cached result (a 30-step, 20-token path is ~1 MB)

ModelAndTokenizer = tuple[Any, Any]
logger = logging.getLogger(__name__)

# The one-time stages a request may wait on, as the page names them.
LOADING_MODEL = "loading the model"
COMPILING_KERNELS = "compiling the attribution kernels, once per start"
BUILDING_GRAPH = "building DIG's word graph, once per start"

Report = Callable[[str], None]
"""Shows a request's visitor the stage it waits on (a progress message in the app)."""
Count = Callable[[int, int], None]
"""Shows a request's visitor how many of its path points are done: ``(done, total)``."""

_REGISTRIES: weakref.WeakValueDictionary[str, Registry] = weakref.WeakValueDictionary()
"""Every live :class:`Registry` by key. :func:`attribute` gets a registry key and a model name, never the model:
on ZeroGPU its arguments are pickled into a worker process forked from this one, where the registry and the
models loaded before the fork (moved to the GPU by ZeroGPU) already are; a model loaded later loads there again."""


HUB_UNREACHABLE = (
    "This server cannot reach the Hugging Face Hub now, so it cannot load {model}: pick a model from the list."
)
DEMO_LIMITS = VettingLimits()  # what a visitor's model may be at most (udig.hub's defaults: 400 M parameters)
LOAD_WAIT_S = 300  # a visitor's model waits this long for another one's load (one at a time), then is told to wait


def vet_visitor_model(name: str, revision: str | None, limits: VettingLimits, task: str | None = None) -> Vetted:
    """May a visitor's Hub model ``name`` at ``revision`` (None: its main branch) load? Decided before anything but
    its description is downloaded (:func:`udig.hub.vet_hub_model`: a supported head, no code of its own,
    safetensors weights, the parameter and download caps; ``task``: the tab's, when one asks). Every refusal is a
    :class:`~udig.hub.ModelRefused` in a visitor's words."""
    hub.check_model_id(name, revision)  # before anything else: a name that is no Hub id never reaches the network
    if not hub_usable():
        raise ModelRefused(HUB_UNREACHABLE.format(model=f"“{name.strip()}”"))
    vetted = hub.vet_hub_model(name, revision, limits, token=False)  # never the server's token: public models only
    if task is not None and vetted.task != task:
        wanted = "Question answering" if vetted.task == "qa" else "Sentiment"
        raise ModelRefused(
            f"“{vetted.name}” is a {get_task(vetted.task).description} model: load it in the {wanted} tab."
        )
    return vetted


def load_hub_model(vetted: Vetted) -> ModelAndTokenizer:
    """A vetted Hub model: exactly its vetted files at its vetted commit, downloaded into the Hub cache, never a
    local folder of that name (what a visitor types must not open the server's folders). Not kept in
    :func:`udig.models.load_model`'s cache, so that the :class:`Registry` can let it go. A download that fails is
    a :class:`~udig.hub.ModelRefused`; a model that passes vetting but does not load, a
    :class:`~udig.models.ModelLoadError` (its message is logged, never shown: see the handlers)."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            vetted.name, revision=vetted.revision, allow_patterns=list(vetted.files), token=False
        )
    except Exception as error:  # noqa: BLE001 - no network now, the repository changed: a sentence, not a trace
        logger.info("download of %s failed: %s", vetted.name, error)
        raise hub.hub_refusal(vetted.name, error) from None
    return load_model(folder, task=vetted.task, cache=False)  # uncached: the registry may let it go


class Registry:
    """One model per name and one Explainer per model, shared by every request.

    ``listed``: the names that load as :func:`udig.load_model` reads them (a local folder, a Hub id), and stay;
    any other name is a visitor's Hub model, ``owner/name`` or ``owner/name@revision`` (:func:`load_hub_model`):
    loaded one at a time, and at most ``max_visitor_models`` of them stay in memory (the least recently used
    leaves). None: every name as ``load_model`` reads it.
    """

    def __init__(
        self,
        max_tokens: int = Limits.max_tokens,
        device: str | None = None,
        listed: Collection[str] | None = None,
        max_visitor_models: int = 2,
        limits: VettingLimits = DEMO_LIMITS,
    ) -> None:
        self.max_tokens = max_tokens
        self.device = device  # None: cuda when available, decided at the first load
        self.listed = None if listed is None else frozenset(listed)
        self.max_visitor_models = max_visitor_models
        self.limits = limits
        self._lock = threading.Lock()
        self._visitor_load = threading.Lock()  # visitors' models load one at a time
        self._loaders: dict[str, Callable[[], ModelAndTokenizer]] = {
            UNTRAINED_QA_MODEL: lambda: load_base_minilm("qa", seed=0)
        }
        self._models: dict[str, ModelAndTokenizer] = {}
        self._visitors: OrderedDict[str, None] = OrderedDict()  # visitors' models in memory, least recent first
        self._model_locks: dict[str, threading.Lock] = {}
        self._explainers: dict[str, Explainer] = {}
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}
        self._revisions: dict[str, str] = {}
        self.key = uuid.uuid4().hex
        _REGISTRIES[self.key] = self

    def loaded(self, name: str) -> bool:
        """Whether model ``name`` is in memory (asking for it returns at once)."""
        with self._lock:
            return name in self._models

    def register(self, name: str, loader: Callable[[], ModelAndTokenizer]) -> None:
        """Offer a model under ``name`` built by ``loader()`` (tests, custom deployments)."""
        with self._lock:
            self._loaders[name] = loader
            self._models.pop(name, None)
            self._explainers.pop(name, None)
            self._revisions.pop(name, None)

    def visitor(self, name: str) -> bool:
        """Whether ``name`` is a visitor's Hub model (neither listed nor registered)."""
        return not (self.listed is None or name in self.listed or name in self._loaders)

    def model(self, name: str) -> ModelAndTokenizer:
        """The model and tokenizer called ``name``, loaded once; concurrent requests wait for that load."""
        with self._lock:
            if name in self._models:
                if name in self._visitors:
                    self._visitors.move_to_end(name)
                return self._models[name]
            lock = self._model_locks.setdefault(name, threading.Lock())
            loader = self._loaders.get(name)
        with lock:
            with self._lock:
                if name in self._models:
                    return self._models[name]
            if self.visitor(name):
                hub_name, _, revision = name.partition("@")
                return self.load_visitor(hub_name, revision or None, kept_as=name)[:2]
            model, tokenizer = (loader or functools.partial(load_model, name))()
            return self._keep(name, model, tokenizer)

    def load_visitor(
        self, name: str, revision: str | None = None, task: str | None = None, kept_as: str | None = None
    ) -> tuple[Any, Any, str]:
        """A visitor's Hub model (:func:`load_hub_model`, for ``task`` when given), kept under ``kept_as`` or else
        ``owner/name@commit`` (the vetted commit: a link to it reopens that very commit); that name is returned
        with the model and tokenizer. One load at a time: another waits up to LOAD_WAIT_S, then is refused."""
        if not self._visitor_load.acquire(timeout=LOAD_WAIT_S):
            raise ModelRefused("Another visitor's model is loading now; try again in a minute.")
        try:
            vetted = vet_visitor_model(name, revision, self.limits, task)
            key = kept_as or (f"{vetted.name}@{vetted.revision}" if vetted.revision else vetted.name)
            with self._lock:
                if key in self._models and key in self._visitors:  # loaded before, at this very commit
                    self._visitors.move_to_end(key)
                    return (*self._models[key], key)
            model, tokenizer = load_hub_model(vetted)
        finally:
            self._visitor_load.release()
        with self._lock:
            self._revisions[key] = f"Hub commit {vetted.revision}" if vetted.revision else "unknown (no commit)"
        return (*self._keep(key, model, tokenizer, visitor=True), key)

    def _keep(self, name: str, model: Any, tokenizer: Any, visitor: bool = False) -> ModelAndTokenizer:
        """``name``'s model on the device, in memory; a visitor's model beyond ``max_visitor_models`` makes the
        least recently used one leave (with its explainer)."""
        device = self.device or _available_device()
        if device != "cpu":
            model = model.to(device)
        with self._lock:
            self._models[name] = (model, tokenizer)
            if visitor:
                self._visitors[name] = None
                self._visitors.move_to_end(name)
                while len(self._visitors) > self.max_visitor_models:
                    gone, _ = self._visitors.popitem(last=False)
                    self._models.pop(gone, None)
                    self._explainers.pop(gone, None)
                    logger.info("visitor model %s left memory (least recently used)", gone)
        return model, tokenizer

    def explainer(self, name: str) -> Explainer:
        """The Explainer of model ``name`` (every request passes its own settings)."""
        found = self._explainers.get(name)  # without the lock: a ZeroGPU worker may be forked while a thread holds it
        if found is not None:
            return found
        model, tokenizer = self.model(name)
        with self._lock:
            if name not in self._explainers:
                self._explainers[name] = Explainer(model, tokenizer, max_length=self.max_tokens)
            return self._explainers[name]

    def revision(self, name: str) -> str:
        """The revision of model ``name`` as :func:`udig.provenance.model_revision` names it (a Hub commit, a
        digest of a listed folder's weights), found once per name without the network; a name registered in
        code, or a visitor's name that is not in the Hub cache, is "unknown (...)"."""
        with self._lock:
            if name in self._revisions:
                return self._revisions[name]
            registered = name in self._loaders
        if name == UNTRAINED_QA_MODEL:
            found = "untrained head (seed 0)"
        elif registered:
            found = "unknown (a model registered in code)"
        elif not self.visitor(name):
            found = model_revision(model_ref(name), ask_hub=False)
        else:  # a visitor's name is a Hub id, never one of the server's folders; its load records its commit
            hub_name, _, pinned = name.partition("@")
            if re.fullmatch(r"[0-9a-f]{40}", pinned):
                found = f"Hub commit {pinned}"
            elif pinned:
                found = "unknown (a branch or tag, until the model is loaded)"
            else:
                found = model_revision(ModelRef(hub_name, hub_name, hub_name, None), ask_hub=False)
        if self.visitor(name) and not known(found):
            return found  # not remembered: the model's load finds its commit
        with self._lock:
            return self._revisions.setdefault(name, found)

    def slot(self, name: str, size: int) -> threading.BoundedSemaphore:
        """A per-model semaphore: at most ``size`` attributions of one model at a time."""
        with self._lock:
            return self._semaphores.setdefault(name, threading.BoundedSemaphore(size))


def _available_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class StartUp:
    """The one-time work of this process, as spans of wall-clock time, and the stages still to come.

    ``doing(stage)`` records a span (the warm-up's stages, a request loading a model or building a graph); a
    stage announced with ``expect`` is under way until its ``doing`` ends, and requests that need it ``wait``.
    A request that overlapped a span (:meth:`overlaps`) is not a fair sample of how long requests take.
    """

    SPANS_KEPT = 256  # the most recent spans: older ones ended long before any request still running began

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: deque[list[float | None]] = deque(maxlen=self.SPANS_KEPT)  # [start, end], end None: under way
        self._expected: dict[str, threading.Event] = {}

    def expect(self, stage: str) -> None:
        """Announce ``stage``: until a ``doing(stage)`` ends, :meth:`pending` says so."""
        with self._lock:
            self._expected.setdefault(stage, threading.Event()).clear()

    def pending(self, stage: str) -> bool:
        with self._lock:
            event = self._expected.get(stage)
        return event is not None and not event.is_set()

    def wait(self, stage: str) -> None:
        """Return once ``stage`` is no longer pending (at once if it never was)."""
        with self._lock:
            event = self._expected.get(stage)
        if event is not None:
            event.wait()

    @contextmanager
    def doing(self, stage: str) -> Iterator[None]:
        """Record the work in the block as one-time work; an expected ``stage`` ends with it, even by an error."""
        span: list[float | None] = [time.time(), None]
        with self._lock:
            self._spans.append(span)
        try:
            yield
        finally:
            with self._lock:
                span[1] = time.time()
            self.end(stage)

    def end(self, stage: str) -> None:
        """``stage`` is no longer pending: requests waiting on it go on (and do any work left themselves)."""
        with self._lock:
            event = self._expected.get(stage)
        if event is not None:
            event.set()

    def overlaps(self, start: float, end: float) -> bool:
        """Whether any one-time work ran between ``start`` and ``end`` (``time.time()`` values)."""
        with self._lock:
            return any(began < end and (ended is None or ended > start) for began, ended in self._spans)


def _show_nothing(stage: str) -> None:
    """A :data:`Report` for callers without a visitor to tell."""


def _count_nothing(done: int, total: int) -> None:
    """A :data:`Count` for callers without a visitor to tell."""


@dataclass
class Result:
    """One computed explanation with its scores (per part, as :func:`udig.metrics.scores`) and wall time."""

    explanation: Explanation | QAExplanation
    scores: dict[str, dict[str, float | None]]  # by part: {"": ...}, or {"start": ..., "end": ...} for QA
    seconds: float  # when it was computed: the request's wall time, waits for one-time work included
    labels: dict[int, str]
    notices: list[str] = field(default_factory=list)  # about this result; the request's own lead them
    remembered: bool = False  # served from the cache: ``seconds`` and timings are those of the first request
    references: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)  # yardsticks' scores

    @property
    def main(self) -> Explanation:
        """The classification explanation, or the start explanation of a QA answer (timings, settings)."""
        return next(iter(self.explanation.parts.values()))


def gpu_seconds(n_points: int, tokens: int) -> int:
    """ZeroGPU seconds to request for a path of ``n_points`` points over ``tokens`` tokens (see GPU_MARGIN)."""
    low, high = GPU_SECONDS
    cost = GPU_FIXED_S + GPU_S_PER_POINT_TOKEN * max(n_points, 1) * max(tokens, 1)
    return int(min(high, max(low, math.ceil(GPU_MARGIN * cost))))


def attribution_seconds(
    registry: str, model: str, inputs: dict[str, str], settings: Settings, references: tuple[str, ...] = ()
) -> int:
    """:func:`gpu_seconds` for :func:`attribute`'s arguments (``spaces.GPU`` calls it with them before asking
    for a GPU): a sequential method's paths count once per word (:meth:`Explainer.size <udig.Explainer.size>`);
    the path-free ``references`` (a gradient at most) fit in its margin."""
    size = _REGISTRIES[registry].explainer(model).size(**inputs, settings=settings)
    return gpu_seconds(size.points, size.tokens)


@gpu(duration=attribution_seconds)
def attribute(
    registry: str, model: str, inputs: dict[str, str], settings: Settings, references: tuple[str, ...] = ()
) -> Result:
    """The GPU-worthy part (under ``@spaces.GPU`` on ZeroGPU Spaces): attribution plus scores, by ``model`` of
    the registry keyed ``registry`` (see :data:`_REGISTRIES`); then, in the same GPU window, the scores of the
    path-free ``references`` (``random``, ``grad-input``: yardsticks) on the same inputs."""
    explainer = _REGISTRIES[registry].explainer(model)
    started = time.perf_counter()
    explanation = explainer.explain(**inputs, settings=settings)
    tick = time.perf_counter()
    scores = _scores(explainer, explanation)
    explanation.parts[next(iter(explanation.parts))].timings["scores"] = time.perf_counter() - tick
    compared = {
        m: _scores(explainer, explainer.explain(**inputs, settings=Settings.make(method=m))) for m in references
    }
    return Result(explanation, scores, time.perf_counter() - started, explainer.labels, references=compared)


def _scores(explainer: Explainer, explanation: Explanation | QAExplanation) -> dict[str, dict[str, float | None]]:
    """:func:`udig.metrics.scores` of each part of ``explanation`` (QA: start and end), by part."""
    return {
        role: metrics.scores(part, explainer.model, explainer.tokenizer) for role, part in explanation.parts.items()
    }


class Service:
    """Results for (task, model, inputs, settings): from the cache of recent ones, or computed now."""

    def __init__(self, config: AppConfig, registry: Registry | None = None, cache_size: int = 16) -> None:
        self.config = config
        self.registry = registry or Registry(
            config.limits.max_tokens,
            config.device,
            listed=[m for models in config.models.values() for m in models],
            max_visitor_models=config.max_visitor_models,
        )  # a visitor's own model name (UDIG_ALLOW_ANY_MODEL) is a Hub id, never one of the server's folders
        self.start_up = StartUp()
        self._results: OrderedDict[tuple, Result] = OrderedDict()
        self._lock = threading.Lock()
        self._cache_size = cache_size

    def compute(
        self,
        task: str,
        model: Any,
        inputs: dict[str, str],
        settings: Settings,
        notices: Sequence[str] = (),
        need_path: bool = False,
        report: Report = _show_nothing,
        references: tuple[str, ...] = (),
        count: Count = _count_nothing,
    ) -> Result:
        """The explanation of ``inputs`` by ``model`` under ``settings``; ``notices`` lead its own.

        One-time work the request needs first (the model's load, the kernels' compilation, DIG's graph: done
        by the warm-up or by this request) is shown through ``report`` as it starts, counted in the result's
        seconds and named in a notice; the path points' progress is told to ``count`` (not on ZeroGPU, whose
        worker process runs the attribution). The cache keeps path points only up to PATH_CACHE_BYTES per result;
        need_path=True recomputes a cached result whose points were dropped; ``references`` (path-free methods'
        names) adds their scores on the same inputs (:func:`attribute`), recomputing a cached result without
        them. Memory the computation freed goes back to the system (:func:`udig.app.memory.trim`).
        """
        started = time.perf_counter()
        name = self.config.model_name(model, task)
        key = (task, name, tuple(sorted(inputs.items())), settings)
        with self._lock:
            cached = self._results.get(key)
            if (
                cached is not None
                and not (need_path and cached.main.path is None)
                and cached.references.keys() >= {*references}
            ):
                self._results.move_to_end(key)
                return replace(cached, notices=[*notices, *cached.notices], remembered=True)
        waits: dict[str, float] = {}
        try:
            result = self._compute(task, name, inputs, settings, report, waits, references, count)
        finally:
            memory.trim()
        result.seconds = time.perf_counter() - started
        if name == UNTRAINED_QA_MODEL:
            result.notices.append("This QA head is untrained (offline mechanics demo): its answer is meaningless.")
        with self._lock:  # kept without the request's notices (the text was shortened, ...): those are its own
            self._results[key] = _cacheable(result)
            self._results.move_to_end(key)
            while len(self._results) > self._cache_size:
                self._results.popitem(last=False)
        return replace(result, notices=[*notices, *_waited(waits), *result.notices])

    def remembered(self, task: str, model: Any, inputs: dict[str, str], settings: Settings) -> Result | None:
        """The cached result for these arguments (as :meth:`compute` takes them), or None: nothing is computed."""
        key = (task, self.config.model_name(model, task), tuple(sorted(inputs.items())), settings)
        with self._lock:
            return self._results.get(key)

    def _compute(
        self,
        task: str,
        name: str,
        inputs: dict[str, str],
        settings: Settings,
        report: Report,
        waits: dict[str, float],
        references: tuple[str, ...] = (),
        count: Count = _count_nothing,
    ) -> Result:
        """:meth:`compute` without the cache: each one-time stage it meets is reported and timed in ``waits``."""
        if self.registry.loaded(name):
            explainer = self.registry.explainer(name)
        else:
            with self._stage(LOADING_MODEL, report, waits):
                explainer = self.registry.explainer(name)
        if explainer.task.name != task:
            raise ValueError(
                f"{name} is a {explainer.task.description} model; this tab needs a {get_task(task).description} model"
            )
        size = explainer.size(**inputs, settings=settings)  # inputs the model cannot read fail here, before any work
        if settings.sequential:
            self.config.limits.check_cost(settings, size.words)
        method = get_method(settings.method)
        if "strategy" in method.uses and self.start_up.pending(COMPILING_KERNELS):  # an anchored path: the kernels
            with self._stage(COMPILING_KERNELS, report, waits):
                self.start_up.wait(COMPILING_KERNELS)
        with self.registry.slot(name, self.config.concurrency):
            if isinstance(method, PathMethod) and method.needs_graph and not graph_ready(explainer, settings):
                with self._stage(BUILDING_GRAPH, report, waits):
                    explainer.prepare(settings)  # CPU work (seconds, or a load): not in the GPU window
            counted = POINTS_DONE.set(_Counter(size.passes, count) if size.points else None)
            try:
                return attribute(self.registry.key, name, inputs, settings, references)
            finally:
                POINTS_DONE.reset(counted)

    @contextmanager
    def _stage(self, stage: str, report: Report, waits: dict[str, float]) -> Iterator[None]:
        """One-time work in a request: shown, logged in :attr:`start_up` and timed."""
        report(stage)
        tick = time.perf_counter()
        with self.start_up.doing(stage):
            yield
        waits[stage] = waits.get(stage, 0.0) + time.perf_counter() - tick


class _Counter:
    """Adds up the path points :data:`udig.integrate.POINTS_DONE` reports and tells ``count`` (at most ``total``:
    a refined path or a reference's gradient may add a few)."""

    def __init__(self, total: int, count: Count) -> None:
        self.total, self.done, self.count = total, 0, count

    def __call__(self, points: int) -> None:
        self.done = min(self.total, self.done + points)
        self.count(self.done, self.total)


def graph_ready(explainer: Explainer, settings: Settings) -> bool:
    """Whether DIG's graph for ``settings`` is in memory (asking for it returns at once)."""
    return (explainer.graph_k, settings.candidates) in explainer.vocab_.graphs.built()


def _waited(waits: dict[str, float]) -> list[str]:
    """The notice of a request that waited for one-time work, or none."""
    if not waits:
        return []
    stages = "; ".join(f"{stage} ({seconds:.1f} s)" for stage, seconds in waits.items())
    return [f"This run includes one-time work that later runs skip: {stages}."]


def _cacheable(result: Result) -> Result:
    """``result`` as the cache keeps it: without path points above PATH_CACHE_BYTES."""
    path = result.main.path
    if path is None or path.numel() * path.element_size() <= PATH_CACHE_BYTES:
        return result
    explanation = result.explanation
    if isinstance(explanation, QAExplanation):
        explanation = replace(
            explanation, start=replace(explanation.start, path=None), end=replace(explanation.end, path=None)
        )
    else:
        explanation = replace(explanation, path=None)
    return replace(result, explanation=explanation)
