"""The demo's handlers: plain functions over udig's public API, one per app event.

``app.py`` only lays out components and wires them to these functions; every function here can be
called (and is tested) without a browser or server. Errors reach the user as readable ``gr.Error``
messages, never tracebacks (those go to the server log).

Shared state is limited to three lock-protected caches: loaded models (one per name), explainers
(one per model and candidate rule, so the vocabulary index behind them is built once per model even
under concurrent requests) and a small LRU of recent results, so that the path view and the exports
reuse the explanation just shown instead of recomputing it.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import gradio as gr
import pandas as pd

from . import metrics, render
from .explainer import BASELINES, METHODS, Explainer
from .explanation import Explanation, QAExplanation
from .models import CURATED_MODELS, DEFAULT_MODEL, DEFAULT_QA_MODEL, ModelLoadError, load_base_minilm, load_model
from .paths import STRATEGIES
from .vocab import CANDIDATE_RULES

try:  # Hugging Face Spaces (ZeroGPU): run attribution under @spaces.GPU; elsewhere a no-op
    import spaces  # type: ignore

    gpu = spaces.GPU
except ImportError:  # pragma: no cover - depends on the environment

    def gpu(fn: Callable | None = None, **_kwargs):
        """Stand-in for ``spaces.GPU`` when the ``spaces`` package is absent."""
        return fn if fn is not None else (lambda f: f)


logger = logging.getLogger(__name__)

UNTRAINED_QA_MODEL = "udig/minilm-untrained-qa"
DEFAULT_BASELINE = "paper default"
METHOD_NAMES = {"ig": "IG", "dig": "DIG", "udig": "UDIG"}
METHOD_COLOURS = {"IG": "#64748b", "DIG": "#f59e0b", "UDIG": "#6366f1"}
SHORT_METRIC = {"log_odds": "log-odds", "comprehensiveness": "compr.", "sufficiency": "suff.", "completeness_error": "|Δ|"}
BAR_ORDER = [f"{SHORT_METRIC[k]} {name}" for k in SHORT_METRIC for name in METHOD_NAMES.values()]
CANDIDATE_LABELS = {"words": "real words only", "all": "whole vocabulary (the papers)"}

EXAMPLES = [
    "A gorgeous, witty, seductive movie.",
    "The plot is paper-thin and the acting is wooden.",
    "It's not a bad film, just a forgettable one.",
    "An utterly charming and hilarious film that reminded me why I love the movies.",
]
QA_EXAMPLE = (
    "Who introduced Integrated Gradients?",
    "Integrated Gradients was introduced by Mukund Sundararajan, Ankur Taly and Qiqi Yan in 2017. It attributes "
    "a prediction to the input features by integrating gradients along a straight line from a baseline.",
)

ABOUT = """### What you are looking at
Each word's colour is its **attribution**: how much it moved the model's score for the explained label, summed
over its sub-word tokens. Red words push toward the label, purple words away from it; colours are scaled so that
the strongest word is ±1. Attributions integrate the model's gradient along a **path** from a baseline (every
word replaced by [PAD] or [MASK]) to the input:

- **IG** (Sundararajan et al. 2017) takes the straight line; its points lie between words, where the model has
  never been trained.
- **DIG** (Sanyal & Ren 2021) hops from word to word through a nearest-neighbour graph of the vocabulary, keeping
  each step monotone toward the baseline.
- **UDIG** (Roy & Kundu 2024) places evenly spaced reference points on the straight line and picks, near each,
  the real word that keeps the path monotone: evenly spread anchors, closer to the line.

### How to read the scores
The faithfulness scores (DIG paper, top 20 % of tokens) ask whether the highlighted words really matter:
**log-odds** (lower is better) and **comprehensiveness** (higher is better) remove them, **sufficiency** (lower is
better) keeps only them. The **completeness error** |Δ| (closer to 0 is better) says how well the attributions
add up to the change in the model's score between baseline and input; large values mean too few steps.

The offline default model is MiniLM (all-MiniLM-L6-v2) fine-tuned on Rotten Tomatoes sentences by udig itself;
it is a small model, not a state-of-the-art classifier. Every event has an API endpoint: see "Use via API" below.
"""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        logger.warning("ignoring %s=%r: not an integer", name, raw)
        return default


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


# -- configuration ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Guard rails for a public demo; every value can be raised by an environment variable."""

    max_chars: int = 1000  # UDIG_MAX_CHARS: longer text is cut, with a notice
    max_tokens: int = 128  # UDIG_MAX_TOKENS: the Explainer truncates longer inputs, with a notice
    max_steps: int = 100  # steps (IG) or anchors m (DIG/UDIG)
    max_factor: int = 3
    max_nbrs: int = 200
    max_points: int = 520  # path points per explanation (steps, factor): bounds the runtime

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            max_chars=_env_int("UDIG_MAX_CHARS", cls.max_chars),
            max_tokens=_env_int("UDIG_MAX_TOKENS", cls.max_tokens),
            max_points=_env_int("UDIG_MAX_POINTS", cls.max_points),
        )


@dataclass(frozen=True)
class AppConfig:
    """What the app offers: model choices (first = default), whether free-text model ids are allowed.

    From the environment: UDIG_SENTIMENT_MODELS (comma-separated Hub ids or folders, first = default;
    unset: udig's offline default, then the curated Hub models), UDIG_QA_MODEL (a QA model to offer
    first), UDIG_ALLOW_ANY_MODEL, UDIG_MAX_CHARS, UDIG_MAX_TOKENS, UDIG_MAX_POINTS, UDIG_CONCURRENCY,
    UDIG_CACHE_EXAMPLES.
    """

    sentiment_models: tuple[str, ...]
    qa_models: tuple[str, ...]
    allow_any_model: bool = False  # UDIG_ALLOW_ANY_MODEL=1: any Hub id or local folder
    limits: Limits = field(default_factory=Limits)
    concurrency: int = 1  # UDIG_CONCURRENCY: simultaneous attributions per model family
    cache_examples: bool = True  # UDIG_CACHE_EXAMPLES=0 turns the lazy example cache off
    defaults: "Settings" = field(default_factory=lambda: Settings())  # the controls' initial values

    @classmethod
    def from_env(cls) -> AppConfig:
        qa = [os.environ["UDIG_QA_MODEL"]] if os.environ.get("UDIG_QA_MODEL", "").strip() else []
        qa += [m for m in CURATED_MODELS["qa"] if m not in qa]
        available = [m for m in qa if qa_model_available(m)]
        qa_models = available + [m for m in qa if m not in available] + [UNTRAINED_QA_MODEL]
        if not available:  # offline: the mechanics-only model first, so the tab works out of the box
            qa_models = [UNTRAINED_QA_MODEL] + qa_models[:-1]
        listed = [m.strip() for m in os.environ.get("UDIG_SENTIMENT_MODELS", "").split(",") if m.strip()]
        return cls(
            sentiment_models=tuple(listed) or (DEFAULT_MODEL, *CURATED_MODELS["sentiment"]),
            qa_models=tuple(qa_models),
            allow_any_model=_env_flag("UDIG_ALLOW_ANY_MODEL"),
            limits=Limits.from_env(),
            concurrency=max(1, _env_int("UDIG_CONCURRENCY", 1)),
            cache_examples=os.environ.get("UDIG_CACHE_EXAMPLES", "1").strip().lower() not in {"0", "false", "no", "off"},
        )


def qa_model_available(name: str) -> bool:
    """Whether a QA model can be loaded without the network: a local folder, or already in the Hub cache."""
    if name == UNTRAINED_QA_MODEL:
        return True
    if Path(name).expanduser().is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # noqa: BLE001 - an invalid id is simply not available
        return False


def qa_notice(config: AppConfig) -> str:
    """What the QA tab says up front when no trained QA model can be loaded offline."""
    if config.qa_models and config.qa_models[0] != UNTRAINED_QA_MODEL:
        return ""
    return (
        "**No trained question-answering model is on this machine yet.** No package ships one, and "
        f"`{DEFAULT_QA_MODEL}` is not in the Hugging Face cache. The default here is MiniLM with an *untrained* "
        "QA head: it shows the mechanics (spans, start/end attributions, scores) but its answers are "
        "meaningless. To explain a real QA model, either\n"
        "- pick a curated model below: with network access (`HF_HUB_OFFLINE` unset) it is downloaded once and "
        "cached for offline use afterwards, or\n"
        "- point the app at a local copy: `UDIG_QA_MODEL=/path/to/folder python app.py` (a folder written "
        "by `save_pretrained`, or by `hf download distilbert-base-cased-distilled-squad --local-dir folder` on a "
        "machine with network)."
    )


# -- models and explainers (shared, lock-protected) ---------------------------------------------------


class Registry:
    """One model per name and one Explainer per (model, candidate rule), shared by every request."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._lock = threading.Lock()
        self._loaders: dict[str, Callable[[], tuple[Any, Any]]] = {UNTRAINED_QA_MODEL: lambda: load_base_minilm("qa", seed=0)}
        self._models: dict[str, tuple[Any, Any]] = {}
        self._model_locks: dict[str, threading.Lock] = {}
        self._explainers: dict[tuple[str, str], Explainer] = {}
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}

    def register(self, name: str, loader: Callable[[], tuple[Any, Any]]) -> None:
        """Offer a model under ``name`` built by ``loader()`` (tests, custom deployments)."""
        with self._lock:
            self._loaders[name] = loader
            self._models.pop(name, None)
            for key in [k for k in self._explainers if k[0] == name]:
                del self._explainers[key]

    def model(self, name: str) -> tuple[Any, Any]:
        with self._lock:
            if name in self._models:
                return self._models[name]
            lock = self._model_locks.setdefault(name, threading.Lock())
            loader = self._loaders.get(name)
        with lock:  # one load per name, concurrent requests wait for it
            with self._lock:
                if name in self._models:
                    return self._models[name]
            model, tokenizer = loader() if loader is not None else load_model(name)
            device = _device()
            if device != "cpu":
                model = model.to(device)
            with self._lock:
                self._models[name] = (model, tokenizer)
            return model, tokenizer

    def explainer(self, name: str, candidates: str) -> Explainer:
        model, tokenizer = self.model(name)
        with self._lock:
            key = (name, candidates)
            if key not in self._explainers:
                self._explainers[key] = Explainer(model, tokenizer, candidates=candidates, max_length=self.limits.max_tokens)
            return self._explainers[key]

    def slot(self, name: str, size: int) -> threading.BoundedSemaphore:
        """A per-model semaphore: at most ``size`` attributions of one model at a time."""
        with self._lock:
            return self._semaphores.setdefault(name, threading.BoundedSemaphore(size))


def _device() -> str:
    wanted = os.environ.get("UDIG_DEVICE", "").strip()
    if wanted:
        return wanted
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except Exception:  # noqa: BLE001
        return "cpu"


# -- errors -------------------------------------------------------------------------------------------


def readable_errors(fn: Callable) -> Callable:
    """Turn every failure into a ``gr.Error`` with a plain message; log the traceback server-side."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except ModelLoadError as error:
            raise gr.Error(str(error), title="Model not available") from None
        except (ValueError, TypeError, KeyError) as error:
            raise gr.Error(_message(error), title="Check the input") from None
        except MemoryError:
            raise gr.Error("The computation ran out of memory: use fewer steps or a shorter text.") from None
        except Exception as error:  # noqa: BLE001
            logger.exception("handler %s failed", fn.__name__)
            raise gr.Error(
                f"Something went wrong ({type(error).__name__}). Try fewer steps or a shorter text; "
                "if it persists, report it with the exported settings."
            ) from None

    return wrapper


def _message(error: BaseException) -> str:
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return text[:1].upper() + text[1:] if text else type(error).__name__


# -- settings -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The attribution settings of one request, validated (sliders may send floats, the API anything)."""

    method: str = "udig"
    strategy: str = "maxcount"
    steps: int = 30
    factor: int = 0  # the evaluated setting (docs/evaluation): 32 points, IG's gradient budget; raise it to shrink Δ
    nbrs: int = 50
    baseline: str = DEFAULT_BASELINE
    candidates: str = "words"

    def kwargs(self) -> dict[str, Any]:
        baseline = None if self.baseline == DEFAULT_BASELINE else self.baseline
        return dict(method=self.method, strategy=self.strategy, steps=self.steps, factor=self.factor, nbrs=self.nbrs, baseline=baseline, candidates=self.candidates)

    def n_points(self) -> int:
        return self.steps + 1 if self.method == "ig" else 2**self.factor * (self.steps + 1) + 1


DEFAULTS = Settings()


def _int(name: str, value: Any, low: int, high: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not low <= number <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {int(number)}")
    return int(number)


def _choice(name: str, value: Any, choices: Sequence[str]) -> str:
    value = str(value).strip().lower() if value is not None else ""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


def make_settings(limits: Limits, method, strategy, steps, factor, nbrs, baseline, candidates) -> Settings:
    baseline = DEFAULT_BASELINE if baseline is None or not str(baseline).strip() or str(baseline).strip() == DEFAULT_BASELINE else str(baseline).strip()
    if baseline.lower() in BASELINES:
        baseline = baseline.lower()
    settings = Settings(
        method=_choice("method", method, METHODS),
        strategy=_choice("strategy", strategy, STRATEGIES),
        steps=_int("steps", steps, 2, limits.max_steps),
        factor=_int("factor", factor, 0, limits.max_factor),
        nbrs=_int("neighbours", nbrs, 1, limits.max_nbrs),
        baseline=baseline[:40],
        candidates=_choice("candidate rule", candidates, CANDIDATE_RULES),
    )
    if settings.n_points() > limits.max_points:
        raise ValueError(
            f"{settings.n_points()} path points is more than this demo allows ({limits.max_points}); "
            "lower the steps or the upscaling factor"
        )
    return settings


def _clip_text(name: str, text: Any, limit: int, notices: list[str]) -> str:
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be text, got {type(text).__name__}")
    text = text.replace("\r\n", "\n").replace("\x00", "")
    if not text.strip():
        raise ValueError(f"the {name} is empty: type something to explain")
    if len(text) > limit:
        cut = text.rfind(" ", 0, limit)
        text = text[: cut if cut > limit // 2 else limit]
        notices.append(f"The {name} was shortened to its first {len(text)} characters (this demo's limit is {limit}).")
    return text


# -- the demo: results, cache and handlers ------------------------------------------------------------


@dataclass
class Result:
    """One computed explanation with its faithfulness scores and wall time."""

    explanation: Explanation | QAExplanation
    metrics: dict[str, dict[str, float | None]]  # {"": {...}} for classification, {"start": ..., "end": ...} for QA
    seconds: float
    labels: dict[int, str]
    notices: list[str] = field(default_factory=list)


def faithfulness(explainer: Explainer, explanation: Explanation) -> dict[str, float | None]:
    """Log-odds, comprehensiveness, sufficiency (:func:`udig.metrics.faithfulness`) and |Δ|."""
    scores = metrics.faithfulness(explanation, explainer.model, explainer.tokenizer)
    return {
        "log_odds": scores.log_odds,
        "comprehensiveness": scores.comprehensiveness,
        "sufficiency": scores.sufficiency,
        "completeness_error": abs(float(explanation.delta)),
    }


class Demo:
    """All handlers of the app, over one configuration and one registry."""

    def __init__(self, config: AppConfig | None = None, registry: Registry | None = None, cache_size: int = 16) -> None:
        self.config = config or AppConfig.from_env()
        self.registry = registry or Registry(self.config.limits)
        self._results: OrderedDict[tuple, Result] = OrderedDict()
        self._results_lock = threading.Lock()
        self._cache_size = cache_size
        self._export_dirs: list[Path] = []

    def warm_up(self, graph: bool = False) -> None:
        """Load the default model and prepare what its first explanation needs, before the first user.

        graph=True also builds DIG's KNN graph. That takes about 7 s of both CPU cores (DIG requests wait
        for it, UDIG and IG requests run slower beside it), so it is opt-in (UDIG_WARMUP=full).
        """
        started = time.perf_counter()
        try:
            name, defaults = self.config.sentiment_models[0], self.config.defaults
            explainer = self.registry.explainer(name, defaults.candidates)
            explainer.explain(EXAMPLES[0], method="udig", steps=2, candidates=defaults.candidates)  # kernels, word mask
            if graph:
                explainer.vocab_.graph(explainer.graph_k, defaults.candidates)
        except Exception as error:  # noqa: BLE001 - the first request will report it properly
            logger.warning("warm-up failed: %s", error)
            return
        logger.info("warm-up done in %.1f s", time.perf_counter() - started)

    # -- the shared computation --

    def _model_name(self, name: Any, task: str) -> str:
        choices = self.config.sentiment_models if task == "classification" else self.config.qa_models
        name = str(name).strip() if name is not None else ""
        if not name:
            return choices[0]
        if name in choices or self.config.allow_any_model:
            return name
        raise ValueError(
            f"model {name!r} is not offered by this app; choose one of the list "
            "(set UDIG_ALLOW_ANY_MODEL=1 to allow any Hub id or local folder)"
        )

    def compute(
        self, task: str, model: Any, inputs: dict[str, str], settings: Settings, notices: Sequence[str] = (), need_path: bool = False
    ) -> Result:
        """The explanation for (model, inputs, settings), from the cache or computed now.

        The cache keeps path points only up to PATH_CACHE_BYTES per result; need_path=True recomputes a
        cached result whose points were dropped.
        """
        name = self._model_name(model, task)
        key = (task, name, tuple(sorted(inputs.items())), settings)
        with self._results_lock:
            cached = self._results.get(key)
            if cached is not None and not (need_path and _main(cached.explanation).path is None):
                self._results.move_to_end(key)
                return replace(cached, notices=[*notices, *[n for n in cached.notices if n not in notices]])
        explainer = self.registry.explainer(name, settings.candidates)
        if explainer.task != task:
            wanted = "sentiment (sequence-classification)" if task == "classification" else "question-answering"
            raise ValueError(f"{name} is a {explainer.task} model; this tab needs a {wanted} model")
        with self.registry.slot(name, self.config.concurrency):
            result = _attribute(explainer, inputs, settings)
        result.notices = [*notices, *result.notices]
        if name == UNTRAINED_QA_MODEL:
            result.notices.append("This QA head is untrained (offline mechanics demo): its answer is meaningless.")
        stored = result
        path = _main(result.explanation).path
        if path is not None and path.numel() * path.element_size() > PATH_CACHE_BYTES:
            stored = replace(result, explanation=_without_path(result.explanation))
        with self._results_lock:
            self._results[key] = stored
            self._results.move_to_end(key)
            while len(self._results) > self._cache_size:
                self._results.popitem(last=False)
        return result

    def _sentiment(self, text, model, settings: Settings, need_path: bool = False) -> Result:
        notices: list[str] = []
        text = _clip_text("text", text, self.config.limits.max_chars, notices)
        return self.compute("classification", model, {"text": text}, settings, notices, need_path)

    # -- Sentiment tab --

    @readable_errors
    def explain(self, text, model, method, strategy, steps, factor, nbrs, baseline, candidates):
        """Sentiment: label, per-word highlight, legend, token table, scores, runtime."""
        settings = make_settings(self.config.limits, method, strategy, steps, factor, nbrs, baseline, candidates)
        result = self._sentiment(text, model, settings)
        e = result.explanation
        return (
            render.label_value(e, result.labels),
            render.highlight_value(e),
            render.legend_html(e.target_label),
            pd.DataFrame(render.token_rows(e), columns=render.TOKEN_HEADERS),
            _metrics_frame(result.metrics[""]),
            _runtime(result),
        )

    def explain_example(self, text, model, method, strategy, steps, factor, nbrs, baseline, candidates):
        return self.explain(text, model, method, strategy, steps, factor, nbrs, baseline, candidates)

    def words(self, text, model):
        """The words of ``text`` as the path view's choices (tokenizer only, no attribution).

        Runs on every edit of the text, so it never raises: without a usable model the list is empty
        (the Show-the-path button then reports the problem).
        """
        if not isinstance(text, str) or not text.strip():
            return gr.Dropdown(choices=[], value=None)
        try:
            _, tokenizer = self.registry.model(self._model_name(model, "classification"))
        except Exception as error:  # noqa: BLE001
            logger.info("no word list: %s", error)
            return gr.Dropdown(choices=[])
        text = text[: self.config.limits.max_chars]
        encoded = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True, truncation=True, max_length=self.config.limits.max_tokens)
        stub = _stub_explanation(text, encoded)
        choices = [f"{w.index}: {w.text}" for w in render.words(stub)]
        return gr.Dropdown(choices=choices, value=None)

    # -- QA tab --

    @readable_errors
    def explain_qa(self, question, context, model, method, strategy, steps, factor, nbrs, baseline, candidates):
        """QA: answer, start and end highlights, legend, scores, runtime."""
        settings = make_settings(self.config.limits, method, strategy, steps, factor, nbrs, baseline, candidates)
        notices: list[str] = []
        question = _clip_text("question", question, 300, notices)
        context = _clip_text("context", context, self.config.limits.max_chars, notices)
        result = self.compute("qa", model, {"question": question, "context": context}, settings, notices)
        qa: QAExplanation = result.explanation
        start, end = qa.answer_span
        answer = (
            f"**Answer:** {render.escape_markdown(qa.answer) or '(empty span)'}  \n"
            f"<small>characters {start}–{end} of the context · start token {qa.start.target}, end token {qa.end.target} · "
            f"p(start) = {qa.start.prediction:.3f}, p(end) = {qa.end.prediction:.3f}</small>"
        )
        frame = pd.DataFrame(
            [
                [metric.name, _round(result.metrics["start"].get(metric.key)), _round(result.metrics["end"].get(metric.key)), metric.better, metric.meaning]
                for metric in render.METRICS
            ],
            columns=["score", "start logit", "end logit", "better", "meaning"],
        )
        legend = render.legend_html("the predicted start / end position")
        legend += "<small>QA scores replace the top tokens by [MASK] (positions stay comparable) and use the softmax over positions.</small>"
        return answer, render.highlight_value(qa.start), render.highlight_value(qa.end), legend, frame, _runtime(result)

    # -- Compare tab --

    @readable_errors
    def compare(self, text, model, strategy, steps, factor, nbrs, candidates):
        """IG, DIG and UDIG on one input: three highlights on one colour scale, a score table, a bar chart."""
        results = {}
        for method in METHODS:
            settings = make_settings(self.config.limits, method, strategy, steps, factor, nbrs, DEFAULT_BASELINE, candidates)
            results[method] = self._sentiment(text, model, settings)
        explanations = [r.explanation for r in results.values()]
        scale = render.shared_scale(explanations)
        highlights = [render.highlight_value(r.explanation, scale=scale) for r in results.values()]
        best = render.winners({m: r.metrics[""] for m, r in results.items()})
        rows = []
        for method, result in results.items():
            row = [METHOD_NAMES[method]]
            for metric in render.METRICS:
                value = result.metrics[""].get(metric.key)
                mark = " ★" if method in best.get(metric.key, []) else ""
                row.append("—" if value is None else f"{value:.4f}{mark}")
            row.append(f"{result.seconds:.2f}")
            rows.append(row)
        headers = ["method"] + [f"{m.name} ({m.better})" for m in render.METRICS] + ["seconds"]
        bars = pd.DataFrame(
            [
                {"score": f"{SHORT_METRIC[metric.key]} {METHOD_NAMES[method]}", "method": METHOD_NAMES[method], "value": float(result.metrics[""][metric.key])}
                for metric in render.METRICS
                for method, result in results.items()
                if result.metrics[""].get(metric.key) is not None
            ],
            columns=["score", "method", "value"],
        )
        first = explanations[0]
        summary = (
            f"Explained label **{render.escape_markdown(first.target_label)}** (p = {first.prediction:.3f}). "
            "One colour scale for all three methods (the largest |word score| among them). "
            "★ marks the best method per score. " + " · ".join(f"{METHOD_NAMES[m]} {r.seconds:.2f} s" for m, r in results.items())
        )
        notices = sorted({n for r in results.values() for n in r.notices + r.explanation.warnings})
        if notices:
            summary += "\n\n" + "\n".join(f"⚠️ {render.escape_markdown(n)}" for n in notices)
        return (*highlights, render.legend_html(first.target_label), pd.DataFrame(rows, columns=headers), bars, summary)

    # -- Path tab --

    @readable_errors
    def path(self, text, model, word, strategy, steps, factor, nbrs, candidates):
        """The anchors a word's path passes through (input -> baseline) and its distance to real words."""
        import torch

        distances, anchors, chosen, notes = [], {}, None, []
        for method in METHODS:
            settings = make_settings(self.config.limits, method, strategy, steps, factor, nbrs, DEFAULT_BASELINE, candidates)
            result = self._sentiment(text, model, settings, need_path=True)
            e = result.explanation
            word_list = render.words(e)
            chosen = render.word_at(word_list, word) if chosen is None else word_list[chosen.index]
            if e.path is None:
                raise ValueError("this result has no path points; explain it again")
            vocab = self.registry.explainer(self._model_name(model, "classification"), settings.candidates).vocab_
            points = e.path[:, list(chosen.tokens)].float()  # (N, T, d), baseline first
            n, t, d = points.shape
            per_token = vocab.nearest_distance(points.reshape(n * t, d), "words").reshape(n, t)  # (N, T)
            mean = per_token.mean(1).flip(0)  # input first
            xs = torch.linspace(0.0, 1.0, n)
            distances += [{"position": float(x), "distance": float(v), "method": METHOD_NAMES[method]} for x, v in zip(xs, mean)]
            if method != "ig":
                for token in chosen.tokens:
                    anchors.setdefault(token, {})[method] = e.anchor_tokens[token] or []
                share = e.real_word_share
                notes.append(f"{METHOD_NAMES[method]}: mean distance {float(mean.mean()):.3f}" + ("" if share is None else f", {share:.0%} of anchors are real words"))
            else:
                notes.append(f"IG: mean distance {float(mean.mean()):.3f} (a straight line, no anchors)")
            tokens = [e.tokens[i] for i in chosen.tokens]
        rows = []
        for token, by_method in anchors.items():
            length = max(len(v) for v in by_method.values())
            for step in range(length):
                rows.append([step, *[_at(by_method.get(m, []), step) for m in ("dig", "udig")]])
            break  # the first sub-word's chain; the others are in the JSON export
        frame = pd.DataFrame(rows, columns=["step (0 = input word)", "DIG anchor", "UDIG anchor"])
        summary = (
            f"Word **{render.escape_markdown(chosen.text)}** (tokens: {render.escape_markdown(' '.join(tokens))}). "
            "Anchors run from the input word (step 0) toward the baseline word (last). "
            "The plot shows each path point's Euclidean distance to the nearest real vocabulary word "
            "(0 = on a word; lower means the path stays among words). " + " · ".join(notes)
        )
        return summary, frame, pd.DataFrame(distances, columns=["position", "distance", "method"])

    # -- share and export --

    def share_link(self, tab: str, **fields) -> str:
        """A URL query (``?s=...``) that reopens this tab with these inputs and runs it."""
        return "?s=" + _encode_state({"tab": tab, **{k: v for k, v in fields.items() if v not in (None, "")}})

    @readable_errors
    def share_sentiment(self, text, model, method, strategy, steps, factor, nbrs, baseline, candidates):
        return self.share_link("sentiment", text=text, model=model, method=method, strategy=strategy, steps=steps, factor=factor, nbrs=nbrs, baseline=baseline, candidates=candidates)

    @readable_errors
    def share_qa(self, question, context, model, method, strategy, steps, factor, nbrs, baseline, candidates):
        return self.share_link("qa", question=question, context=context, model=model, method=method, strategy=strategy, steps=steps, factor=factor, nbrs=nbrs, baseline=baseline, candidates=candidates)

    @readable_errors
    def share_compare(self, text, model, strategy, steps, factor, nbrs, candidates):
        return self.share_link("compare", text=text, model=model, strategy=strategy, steps=steps, factor=factor, nbrs=nbrs, candidates=candidates)

    @readable_errors
    def share_path(self, text, model, word, strategy, steps, factor, nbrs, candidates):
        return self.share_link("path", text=text, model=model, word=word, strategy=strategy, steps=steps, factor=factor, nbrs=nbrs, candidates=candidates)

    def restore(self, layout: Sequence[tuple[str, str]], query: dict[str, str]) -> tuple[str | None, dict[tuple[str, str], Any], list[str]]:
        """Read a shared link's query: (tab to open and run, {(tab, field): value}, notices).

        ``?s=`` holds the compact state; plain ``?tab=...&text=...&method=...`` works too.
        Invalid values are dropped with a notice; nothing here raises.
        """
        notices: list[str] = []
        state: dict[str, Any] = {}
        if query.get("s"):
            try:
                state = _decode_state(query["s"])
            except ValueError as error:
                notices.append(f"The shared link could not be read ({error}); showing the defaults.")
        state.update({k: v for k, v in query.items() if k != "s" and k != "__theme"})
        tab = str(state.pop("tab", "") or "").strip() or None
        tabs = {t for t, _ in layout}
        if tab is not None and tab not in tabs:
            notices.append(f"Unknown tab {tab!r} in the link.")
            tab = None
        if tab is None:
            return None, {}, notices
        values: dict[tuple[str, str], Any] = {}
        task = "qa" if tab == "qa" else "classification"
        for name, value in state.items():
            if (tab, name) not in layout:
                continue
            try:
                values[(tab, name)] = _restored(self, name, value, task)
            except ValueError as error:
                notices.append(f"Ignored {name} from the link: {error}.")
        return tab, values, notices

    @readable_errors
    def export(self, text, model, method, strategy, steps, factor, nbrs, baseline, candidates):
        """Files for the current sentiment explanation: JSON, CSV, standalone HTML, model-card snippets."""
        settings = make_settings(self.config.limits, method, strategy, steps, factor, nbrs, baseline, candidates)
        result = self._sentiment(text, model, settings)
        e = result.explanation
        inputs = {"text": e.text, "model": self._model_name(model, "classification"), **settings.kwargs()}
        metrics = result.metrics[""]
        folder = self._export_folder()
        stem = f"udig-{e.method}"
        files = {
            f"{stem}.json": render.to_json(e, metrics=metrics, inputs=inputs),
            f"{stem}.csv": render.to_csv(e),
            f"{stem}.html": render.standalone_html(e, metrics=metrics),
            f"{stem}-model-card.md": render.model_card(e, metrics=metrics, fmt="markdown"),
            f"{stem}-model-card.html": render.model_card(e, metrics=metrics, fmt="html"),
        }
        paths = []
        for name, content in files.items():
            path = folder / name
            path.write_text(content, encoding="utf-8")
            paths.append(str(path))
        return paths, files[f"{stem}-model-card.md"]

    def _export_folder(self) -> Path:
        root = Path(tempfile.gettempdir()) / "udig-exports"
        folder = root / uuid.uuid4().hex
        folder.mkdir(parents=True)
        with self._results_lock:
            self._export_dirs.append(folder)
            old = self._export_dirs[:-64]
            del self._export_dirs[:-64]
        for path in old:
            shutil.rmtree(path, ignore_errors=True)
        return folder


@gpu(duration=120)
def _attribute(explainer: Explainer, inputs: dict[str, str], settings: Settings) -> Result:
    """The GPU-worthy part (under ``@spaces.GPU`` on ZeroGPU Spaces): attribution plus scores."""
    started = time.perf_counter()
    explanation = explainer.explain(**inputs, **settings.kwargs())
    tick = time.perf_counter()
    if isinstance(explanation, QAExplanation):
        metrics = {"start": faithfulness(explainer, explanation.start), "end": faithfulness(explainer, explanation.end)}
        timings = explanation.start.timings
    else:
        metrics = {"": faithfulness(explainer, explanation)}
        timings = explanation.timings
    timings["scores"] = time.perf_counter() - tick
    return Result(explanation, metrics, time.perf_counter() - started, explainer.labels)


PATH_CACHE_BYTES = 16 * 2**20  # path points kept per cached result (a 30-step, 20-token path is ~1 MB)


def _main(explanation: Explanation | QAExplanation) -> Explanation:
    return explanation.start if isinstance(explanation, QAExplanation) else explanation


def _without_path(explanation: Explanation | QAExplanation) -> Explanation | QAExplanation:
    if isinstance(explanation, QAExplanation):
        return replace(explanation, start=replace(explanation.start, path=None), end=replace(explanation.end, path=None))
    return replace(explanation, path=None)


def _at(values: Sequence[str], i: int) -> str:
    return values[i] if i < len(values) else ""


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _metrics_frame(metrics: dict[str, float | None]) -> pd.DataFrame:
    return pd.DataFrame(render.metric_rows(metrics), columns=["score", "value", "better", "meaning"])


def _runtime(result: Result) -> str:
    e = result.explanation
    main = e.start if isinstance(e, QAExplanation) else e
    t = main.timings
    parts = [
        f"**{METHOD_NAMES[main.method]}**" + (f" ({main.strategy})" if main.strategy else ""),
        f"{main.settings.get('n_points')} path points",
        f"{len(main.tokens)} tokens",
        f"baseline {render.escape_markdown(main.baseline_token)}",
        f"**{result.seconds:.2f} s** (path {t.get('path', 0):.2f} s, gradients {t.get('gradients', 0):.2f} s, scores {t.get('scores', 0):.2f} s)",
        f"completeness error Δ = {e.delta:+.4f}",
    ]
    lines = [" · ".join(parts)]
    warnings = list(main.warnings)
    if main.truncated and not any("truncated" in w for w in warnings):
        warnings.append("input truncated to the token limit")
    for note in [*result.notices, *warnings]:
        lines.append(f"⚠️ {render.escape_markdown(note)}")
    return "  \n".join(lines)


def _stub_explanation(text: str, encoded) -> Explanation:
    """A zero-attribution Explanation carrying only text, tokens and offsets (for word lists)."""
    n = len(encoded["input_ids"])
    return Explanation(
        task="classification", method="ig", strategy=None, text=text, tokens=[""] * n, input_ids=list(encoded["input_ids"]),
        offsets=[tuple(o) for o in encoded["offset_mapping"]], special_mask=[bool(s) for s in encoded["special_tokens_mask"]],
        attributions=[0.0] * n, target=0, target_label="", output="logits", probs=[1.0], f_input=0.0, f_baseline=0.0,
        delta=0.0, anchors=[None] * n, anchor_tokens=[None] * n, real_word_share=None, baseline_token="", settings={}, timings={},
    )


# -- link state ---------------------------------------------------------------------------------------

_STATE_LIMIT = 64 * 1024


def _encode_state(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def _decode_state(token: str) -> dict[str, Any]:
    try:
        data = base64.urlsafe_b64decode(token.strip() + "=" * (-len(token.strip()) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, _STATE_LIMIT)
        if inflater.unconsumed_tail:
            raise ValueError("too long")
        state = json.loads(raw)
    except (ValueError, zlib.error, UnicodeDecodeError) as error:
        raise ValueError(str(error) or "corrupt") from None
    if not isinstance(state, dict):
        raise ValueError("not a state object")
    return state


def _restored(demo: Demo, name: str, value: Any, task: str) -> Any:
    """Validate one field of a shared link; raise ValueError for a value the UI cannot show."""
    limits = demo.config.limits
    if name in ("text", "question", "context"):
        if not isinstance(value, str):
            raise ValueError("not text")
        return value[: limits.max_chars]
    if name == "model":
        return demo._model_name(value, task)
    if name == "method":
        return _choice("method", value, METHODS)
    if name == "strategy":
        return _choice("strategy", value, STRATEGIES)
    if name == "candidates":
        return _choice("candidate rule", value, CANDIDATE_RULES)
    if name == "steps":
        return _int("steps", value, 2, limits.max_steps)
    if name == "factor":
        return _int("factor", value, 0, limits.max_factor)
    if name == "nbrs":
        return _int("neighbours", value, 1, limits.max_nbrs)
    if name in ("baseline", "word"):
        return str(value)[:60]
    raise ValueError("unknown field")


# -- page load: restore a shared link, then run it ------------------------------------------------------


def load_values(demo: Demo, layout: Sequence[tuple[str, str]], query: dict[str, str]) -> list[Any]:
    """Values for ``[tabs, tab-to-run, notice, *layout components]`` on page load (gr.skip() = unchanged)."""
    tab, values, notices = demo.restore(layout, query)
    notice = "\n".join(f"⚠️ {render.escape_markdown(n)}" for n in notices)
    return [
        gr.Tabs(selected=tab) if tab else gr.skip(),
        tab or "",
        gr.Markdown(notice, visible=bool(notice)),
        *[values.get(key, gr.skip()) for key in layout],
    ]


def autorun(tab: str, fn: Callable, n_outputs: int) -> Callable:
    """A handler that runs ``fn`` only when the page was opened from a link to ``tab``."""

    def run(run_tab: str, *args):
        if run_tab != tab:
            return tuple(gr.skip() for _ in range(n_outputs))
        return fn(*args)

    run.__name__ = f"autorun_{tab}"
    return run


COPY_LINK_JS = """(query) => {
  if (!query) { return query; }
  const url = new URL(query, window.location.href).toString();
  try { navigator.clipboard.writeText(url).catch(() => {}); } catch (e) {}
  return url;
}"""
