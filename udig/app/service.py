"""Explanations for the demo's requests: shared models and explainers, and a small cache of recent results.

Shared state is limited to lock-protected caches: loaded models (one per name), explainers (one per model,
so the vocabulary index behind it is built once even under concurrent requests) and an LRU of recent
results, so that the path view and the exports reuse the explanation just shown instead of recomputing it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

from .. import metrics
from ..explainer import Explainer
from ..explanation import Explanation, QAExplanation
from ..models import load_base_minilm, load_model
from ..settings import Settings
from ..tasks import get_task
from .config import UNTRAINED_QA_MODEL, AppConfig, Limits

try:  # Hugging Face Spaces (ZeroGPU): run attribution under @spaces.GPU; elsewhere a no-op
    import spaces  # type: ignore

    gpu = spaces.GPU
except ImportError:  # pragma: no cover - depends on the environment

    def gpu(fn: Callable | None = None, **_kwargs):
        """Stand-in for ``spaces.GPU`` when the ``spaces`` package is absent."""
        return fn if fn is not None else (lambda f: f)


PATH_CACHE_BYTES = 16 * 2**20  # path points kept per cached result (a 30-step, 20-token path is ~1 MB)

ModelAndTokenizer = tuple[Any, Any]


class Registry:
    """One model per name and one Explainer per model, shared by every request."""

    def __init__(self, max_tokens: int = Limits.max_tokens, device: str | None = None) -> None:
        self.max_tokens = max_tokens
        self.device = device  # None: cuda when available, decided at the first load
        self._lock = threading.Lock()
        self._loaders: dict[str, Callable[[], ModelAndTokenizer]] = {UNTRAINED_QA_MODEL: lambda: load_base_minilm("qa", seed=0)}
        self._models: dict[str, ModelAndTokenizer] = {}
        self._model_locks: dict[str, threading.Lock] = {}
        self._explainers: dict[str, Explainer] = {}
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}

    def register(self, name: str, loader: Callable[[], ModelAndTokenizer]) -> None:
        """Offer a model under ``name`` built by ``loader()`` (tests, custom deployments)."""
        with self._lock:
            self._loaders[name] = loader
            self._models.pop(name, None)
            self._explainers.pop(name, None)

    def model(self, name: str) -> ModelAndTokenizer:
        """The model and tokenizer called ``name``, loaded once; concurrent requests wait for that load."""
        with self._lock:
            if name in self._models:
                return self._models[name]
            lock = self._model_locks.setdefault(name, threading.Lock())
            loader = self._loaders.get(name)
        with lock:
            with self._lock:
                if name in self._models:
                    return self._models[name]
            model, tokenizer = loader() if loader is not None else load_model(name)
            device = self.device or _available_device()
            if device != "cpu":
                model = model.to(device)
            with self._lock:
                self._models[name] = (model, tokenizer)
            return model, tokenizer

    def explainer(self, name: str) -> Explainer:
        """The Explainer of model ``name`` (every request passes its own settings)."""
        model, tokenizer = self.model(name)
        with self._lock:
            if name not in self._explainers:
                self._explainers[name] = Explainer(model, tokenizer, max_length=self.max_tokens)
            return self._explainers[name]

    def slot(self, name: str, size: int) -> threading.BoundedSemaphore:
        """A per-model semaphore: at most ``size`` attributions of one model at a time."""
        with self._lock:
            return self._semaphores.setdefault(name, threading.BoundedSemaphore(size))


def _available_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class Result:
    """One computed explanation with its scores (per part, as :func:`udig.metrics.scores`) and wall time."""

    explanation: Explanation | QAExplanation
    scores: dict[str, dict[str, float | None]]  # by part: {"": ...}, or {"start": ..., "end": ...} for QA
    seconds: float
    labels: dict[int, str]
    notices: list[str] = field(default_factory=list)

    @property
    def main(self) -> Explanation:
        """The classification explanation, or the start explanation of a QA answer (timings, settings)."""
        return next(iter(self.explanation.parts.values()))


@gpu(duration=120)
def attribute(explainer: Explainer, inputs: dict[str, str], settings: Settings) -> Result:
    """The GPU-worthy part (under ``@spaces.GPU`` on ZeroGPU Spaces): attribution plus scores."""
    started = time.perf_counter()
    explanation = explainer.explain(**inputs, **asdict(settings))
    tick = time.perf_counter()
    by_role = explanation.parts
    scores = {role: metrics.scores(part, explainer.model, explainer.tokenizer) for role, part in by_role.items()}
    next(iter(by_role.values())).timings["scores"] = time.perf_counter() - tick
    return Result(explanation, scores, time.perf_counter() - started, explainer.labels)


class Service:
    """Results for (task, model, inputs, settings): from the cache of recent ones, or computed now."""

    def __init__(self, config: AppConfig, registry: Registry | None = None, cache_size: int = 16) -> None:
        self.config = config
        self.registry = registry or Registry(config.limits.max_tokens, config.device)
        self._results: OrderedDict[tuple, Result] = OrderedDict()
        self._lock = threading.Lock()
        self._cache_size = cache_size

    def compute(
        self, task: str, model: Any, inputs: dict[str, str], settings: Settings, notices: Sequence[str] = (), need_path: bool = False
    ) -> Result:
        """The explanation of ``inputs`` by ``model`` under ``settings``; ``notices`` lead its own.

        The cache keeps path points only up to PATH_CACHE_BYTES per result; need_path=True recomputes a
        cached result whose points were dropped.
        """
        name = self.config.model_name(model, task)
        key = (task, name, tuple(sorted(inputs.items())), settings)
        with self._lock:
            cached = self._results.get(key)
            if cached is not None and not (need_path and cached.main.path is None):
                self._results.move_to_end(key)
                return replace(cached, notices=[*notices, *[n for n in cached.notices if n not in notices]])
        explainer = self.registry.explainer(name)
        if explainer.task.name != task:
            raise ValueError(f"{name} is a {explainer.task.description} model; this tab needs a {get_task(task).description} model")
        with self.registry.slot(name, self.config.concurrency):
            result = attribute(explainer, inputs, settings)
        result.notices = [*notices, *result.notices]
        if name == UNTRAINED_QA_MODEL:
            result.notices.append("This QA head is untrained (offline mechanics demo): its answer is meaningless.")
        with self._lock:
            self._results[key] = _cacheable(result)
            self._results.move_to_end(key)
            while len(self._results) > self._cache_size:
                self._results.popitem(last=False)
        return result


def _cacheable(result: Result) -> Result:
    """``result`` as the cache keeps it: without path points above PATH_CACHE_BYTES."""
    path = result.main.path
    if path is None or path.numel() * path.element_size() <= PATH_CACHE_BYTES:
        return result
    explanation = result.explanation
    if isinstance(explanation, QAExplanation):
        explanation = replace(explanation, start=replace(explanation.start, path=None), end=replace(explanation.end, path=None))
    else:
        explanation = replace(explanation, path=None)
    return replace(result, explanation=explanation)
