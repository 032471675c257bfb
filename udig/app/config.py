"""What the demo offers and allows: every environment variable it reads is read here, once, at start-up.

A deployment changes the demo through :meth:`AppConfig.from_env`; tests build an :class:`AppConfig`
directly. The attribution parameters' own rules live in :mod:`udig.settings`: the demo only narrows them
(:meth:`Limits.bounds`) and never restates them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..hub import hub_offline, hub_reachable
from ..methods import PATH_METHODS, get_method
from ..models import CURATED_MODELS, DEFAULT_MODEL, EMBEDDED_MODELS, IMDB_MODEL
from ..settings import PARAMETERS, Bounds, Settings

logger = logging.getLogger(__name__)

UNTRAINED_QA_MODEL = "udig/minilm-untrained-qa"  # base MiniLM with a seeded, untrained QA head (offline mechanics)
PAPER_DEFAULT = "paper default"  # the baseline dropdown's value for "the method's paper's baseline"
MAX_MODEL_CHARS = 200  # a Hub id is at most 96 characters; a longer "name" is not one
_ON, _OFF = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}

Warmup = Literal["off", "model", "full"]


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    """An integer setting; a value that is not a whole number >= ``minimum`` is ignored with a warning."""
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        logger.warning("ignoring %s=%r: not an integer", name, raw)
        return default
    if value < minimum:
        logger.warning("ignoring %s=%r: less than %d", name, raw, minimum)
        return default
    return value


def valid_text(name: str, value: Any) -> str:
    """``value`` if it is a string that can be encoded and shown (API calls can send lone surrogates)."""
    if not isinstance(value, str):
        raise TypeError(f"the {name} must be given as text, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"the {name} holds a character that is not valid Unicode (a lone surrogate such as \\ud800)"
        ) from None
    return value


def _env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in _ON | _OFF:
        return raw in _ON
    if raw:
        logger.warning("ignoring %s=%r: not 1/0, true/false, yes/no or on/off", name, raw)
    return default


class OverCap(ValueError):
    """A sequential explanation above the demo's point cap (the Compare tab leaves that method out and goes on)."""


@dataclass(frozen=True)
class Limits:
    """Guard rails for a public demo, tighter than the library's own; some can be raised by the environment."""

    max_chars: int = 1000  # UDIG_MAX_CHARS: longer text (or context) is cut, with a notice
    max_question_chars: int = 300
    max_word_chars: int = 60  # the path view's word
    max_tokens: int = 128  # UDIG_MAX_TOKENS: the Explainer truncates longer inputs, with a notice
    max_steps: int = 100  # steps (IG) or anchors m (DIG/UDIG)
    max_factor: int = 3
    max_nbrs: int = 200
    max_points: int = 520  # UDIG_MAX_POINTS: path points per explanation (steps, factor) bound the runtime

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            max_chars=_env_int("UDIG_MAX_CHARS", cls.max_chars),
            max_tokens=_env_int("UDIG_MAX_TOKENS", cls.max_tokens),
            max_points=_env_int("UDIG_MAX_POINTS", cls.max_points),
        )

    def text(self, name: str, value: Any, notices: list[str]) -> str:
        """A text field (text, question, context, word) as the demo takes it, from the UI, the API or a link:
        valid text within its limit, cut at a space near the limit where there is one, saying so in ``notices``."""
        limit = {"question": self.max_question_chars, "word": self.max_word_chars}.get(name, self.max_chars)
        value = valid_text(name, value).replace("\r\n", "\n").replace("\x00", "")
        if len(value) > limit:
            cut = value.rfind(" ", 0, limit)
            value = value[: cut if cut > limit // 2 else limit]
            notices.append(
                f"The {name} was shortened to its first {len(value)} characters (this demo's limit is {limit})."
            )
        return value

    def over_cap(self, settings: Settings, words: int) -> bool:
        """Whether a sequential explanation's paths hold more points than :attr:`max_points` in all: one path per
        word, so ``words`` x the path's points go through the model (a joint path is checked by ``bounds``)."""
        return settings.sequential and settings.n_points * words > self.max_points

    def check_cost(self, settings: Settings, words: int) -> None:
        """Refuse what :meth:`over_cap` finds too large, saying its size."""
        if self.over_cap(settings, words):
            raise OverCap(
                f"{sequential_cost(settings, words)}, more than this demo allows ({self.max_points}); "
                "lower the steps or shorten the text"
            )

    def bounds(self) -> Bounds:
        """These limits as :class:`~udig.settings.Bounds`: the path methods only, and smaller ranges."""
        return Bounds(
            ranges={"steps": (2, self.max_steps), "factor": (0, self.max_factor), "nbrs": (1, self.max_nbrs)},
            choices={"method": PATH_METHODS},
            max_points=self.max_points,
        )


@dataclass(frozen=True)
class AppConfig:
    """The models on offer (first = default), the guard rails, the serving options and the controls' defaults."""

    sentiment_models: tuple[str, ...]
    qa_models: tuple[str, ...]
    allow_any_model: bool = False  # UDIG_ALLOW_ANY_MODEL (on unless 0): visitors load vetted Hub models
    max_visitor_models: int = 2  # UDIG_MAX_LOADED_MODELS: visitors' models kept in memory (least recent leave)
    limits: Limits = field(default_factory=Limits)
    concurrency: int = 1  # UDIG_CONCURRENCY: simultaneous attributions per model family
    queue_size: int = 32  # UDIG_QUEUE_SIZE: longest queue before requests are turned away
    places_per_client: int = 3  # UDIG_PLACES_PER_CLIENT: one visitor's attributions queued or running at once
    cache_examples: bool = True  # UDIG_CACHE_EXAMPLES=0 turns the lazy example cache off
    warmup: Warmup = (
        "full"  # UDIG_WARMUP: 0 = "off", "model" (load it, compile the kernels), 1 = "full" (+ DIG's graph)
    )
    device: str | None = None  # UDIG_DEVICE; None: cuda when available, else cpu
    server_name: str = "127.0.0.1"  # GRADIO_SERVER_NAME (Spaces sets 0.0.0.0)
    server_port: int = 7860  # GRADIO_SERVER_PORT
    public_url: str | None = None  # SPACE_HOST (set by Spaces): share links in exports become full addresses
    defaults: Settings = field(
        default_factory=lambda: Settings.make(candidates="words")
    )  # the controls' initial values

    @classmethod
    def from_env(cls) -> AppConfig:
        """The configuration a deployment asked for; unset variables keep the defaults above."""
        listed = tuple(m.strip() for m in os.environ.get("UDIG_SENTIMENT_MODELS", "").split(",") if m.strip())
        warmup = os.environ.get("UDIG_WARMUP", "").strip().lower()
        return cls(
            sentiment_models=_sentiment_models(listed or (DEFAULT_MODEL, IMDB_MODEL, *CURATED_MODELS["sentiment"])),
            qa_models=_qa_models(os.environ.get("UDIG_QA_MODEL", "").strip()),
            allow_any_model=_env_flag("UDIG_ALLOW_ANY_MODEL", True),  # safe: vetted, capped, one load at a time
            max_visitor_models=_env_int("UDIG_MAX_LOADED_MODELS", cls.max_visitor_models),
            limits=Limits.from_env(),
            concurrency=max(1, _env_int("UDIG_CONCURRENCY", cls.concurrency)),
            queue_size=_env_int("UDIG_QUEUE_SIZE", cls.queue_size),
            places_per_client=_env_int("UDIG_PLACES_PER_CLIENT", cls.places_per_client),
            cache_examples=_env_flag("UDIG_CACHE_EXAMPLES", cls.cache_examples),
            warmup="off" if warmup in _OFF else "model" if warmup == "model" else "full",
            device=os.environ.get("UDIG_DEVICE", "").strip() or None,
            server_name=os.environ.get("GRADIO_SERVER_NAME", "").strip() or cls.server_name,
            server_port=_env_int("GRADIO_SERVER_PORT", cls.server_port),
            public_url=_space_url(os.environ.get("SPACE_HOST", "")),
        )

    @property
    def models(self) -> dict[str, tuple[str, ...]]:
        """The models offered per task name (as in :data:`udig.tasks.TASKS`)."""
        return {"classification": self.sentiment_models, "qa": self.qa_models}

    def model_name(self, name: Any, task: str) -> str:
        """The model a request names: the task's default when empty; refused when this app does not offer it."""
        choices = self.models[task]
        name = valid_text("model", name if isinstance(name, str) else "" if name is None else str(name)).strip()
        if not name:
            return choices[0]
        if len(name) > MAX_MODEL_CHARS:
            raise ValueError(f"a model name has at most {MAX_MODEL_CHARS} characters, not {len(name)}")
        if name in choices or self.allow_any_model:
            return name
        raise ValueError(f"model {name!r} is not offered by this app; choose one of the list")

    def settings(self, fields: Mapping[str, Any]) -> Settings:
        """One request's settings from a tab's fields by name (slider floats, link or API strings), within
        :attr:`limits`. A setting left out (or None) is the control's default; the baseline's is the method's
        paper's (also for "paper default"). Fields that are not settings (text, model, ...) are not read."""
        values = {name: fields.get(name) for name in PARAMETERS}
        for name, value in values.items():
            if isinstance(value, str):
                valid_text(name, value)
        if isinstance(values["baseline"], str) and values["baseline"].strip() in ("", PAPER_DEFAULT):
            values["baseline"] = None  # Settings.make resolves it to the method's paper's
        defaults = {name: getattr(self.defaults, name) for name in PARAMETERS if name != "baseline"}
        given = {name: value for name, value in values.items() if value is not None}
        return Settings.make({**defaults, **given}, bounds=self.limits.bounds(), lenient=True)


def sequential_cost(settings: Settings, words: int) -> str:
    """A sequential run's size in words: ``SIG moves each of 8 words along its own path: 8 × 31 = 248 path points``."""
    name = get_method(settings.method).title
    return (
        f"{name} moves each of {words} words along its own path: {words} × {settings.n_points} = "
        f"{words * settings.n_points} path points"
    )


def _space_url(host: str) -> str | None:
    """``https://<host>/`` for the host name Spaces gives (``owner-space.hf.space``); None for anything else."""
    host = host.strip()
    return f"https://{host}/" if re.fullmatch(r"[A-Za-z0-9.-]+", host) else None


def _sentiment_models(wanted: tuple[str, ...]) -> tuple[str, ...]:
    """The sentiment choices: those of ``wanted`` that can load here (udig's built-in models, models at hand, and
    Hub models when the Hub can be used), in their order; a visitor is never offered a model that cannot load.
    With none of them loadable, the built-in default model."""
    downloads = hub_usable()
    usable = tuple(m for m in wanted if m in EMBEDDED_MODELS or downloads or model_at_hand(m))
    for name in sorted(set(wanted) - set(usable)):
        logger.info("not offering %s: it is not on this machine and the Hub cannot be used", name)
    return usable or (DEFAULT_MODEL,)


def _qa_models(wanted: str) -> tuple[str, ...]:
    """The QA choices: ``wanted`` and the curated models, loadable ones first, then the untrained head.

    With none of them at hand, a reachable Hub makes the first one the default (downloaded on first use, see
    :func:`qa_notice`); offline, the untrained head comes first so the tab works out of the box.
    """
    candidates = [wanted] if wanted else []
    candidates += [m for m in CURATED_MODELS["qa"] if m not in candidates]
    available = [m for m in candidates if model_at_hand(m)]
    missing = [m for m in candidates if m not in available]
    if not available and not hub_usable():
        return (UNTRAINED_QA_MODEL, *missing)
    return (*available, *missing, UNTRAINED_QA_MODEL)


def hub_usable() -> bool:
    """Whether models can be downloaded now: Hub access not switched off, and the Hub answers."""
    return not hub_offline() and hub_reachable()


def model_at_hand(name: str) -> bool:
    """Whether a model can be loaded without the network: the untrained QA head, a local folder, or a Hub id
    already in the Hub cache (udig's built-in models are none of these: callers know they are at hand)."""
    return name == UNTRAINED_QA_MODEL or Path(name).expanduser().is_dir() or in_hub_cache(name)


def in_hub_cache(name: str) -> bool:
    """Whether ``name`` is a Hub id already in the Hub cache (whatever the server's folders hold)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # noqa: BLE001 - an invalid id is simply not available
        return False


def qa_notice(config: AppConfig) -> str:
    """What the QA tab says up front: that its default model is fetched on first use, or that none is at hand."""
    default = config.qa_models[0] if config.qa_models else UNTRAINED_QA_MODEL
    if default != UNTRAINED_QA_MODEL:
        if model_at_hand(default) or not hub_usable():
            return ""
        return (
            f"The QA model `{default}` is downloaded from the Hugging Face Hub on its first use: the first "
            "explanation takes a minute longer, later ones reuse it."
        )
    logger.info(
        "no trained QA model at hand: set UDIG_QA_MODEL to a local folder, or allow the Hub (docs/demo.md)"
    )  # the operator's recipe; the visitor reads what the tab can do
    fetch = (
        "Pick a curated model below to explain a real one: it is downloaded on its first use."
        if hub_usable()
        else "This server cannot download one now, so only the untrained head is at hand here."
    )
    return (
        "**No trained question-answering model is on this machine yet.** The default here is MiniLM with an "
        "*untrained* QA head: it shows the mechanics (spans, start/end attributions, scores) but its answers are "
        f"meaningless. {fetch}"
    )
