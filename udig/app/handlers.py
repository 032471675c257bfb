"""The demo's event handlers: one method of :class:`Demo` per app event, each callable without a browser.

``app.py`` lays the components out and wires them to these methods. A handler checks its inputs, asks the
:class:`~udig.app.service.Service` for results and hands them to :mod:`udig.app.views`. Errors reach the
user as readable ``gr.Error`` messages, never tracebacks (those go to the server log).
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from .. import render
from ..methods import PATH_METHODS
from ..models import ModelLoadError
from . import links, views
from .config import PAPER_DEFAULT, AppConfig
from .content import EXAMPLES
from .service import Result, Service

logger = logging.getLogger(__name__)

KEPT_EXPORTS = 64  # export folders kept on disk; older ones are deleted


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


def _clip(name: str, text: Any, limit: int, notices: list[str]) -> str:
    """``text`` checked and cut to ``limit`` characters (at a space where one is near), saying so in ``notices``."""
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


class Demo:
    """Every handler of the app, over one configuration and one service."""

    def __init__(self, config: AppConfig | None = None) -> None:
        self.config = config or AppConfig.from_env()
        self.service = Service(self.config)
        self._exports: list[Path] = []
        self._exports_lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the default model and prepare what its first explanation needs, before the first user.

        With ``config.warmup == "full"`` it also builds DIG's KNN graph. That takes about 7 s of both CPU
        cores (DIG requests wait for it, UDIG and IG requests run slower beside it), so it is opt-in.
        """
        started = time.perf_counter()
        candidates = self.config.defaults.candidates
        try:
            explainer = self.service.registry.explainer(self.config.sentiment_models[0])
            explainer.explain(EXAMPLES[0], method="udig", steps=2, candidates=candidates)  # kernels, word mask
            if self.config.warmup == "full":
                explainer.vocab_.graph(explainer.graph_k, candidates)
        except Exception as error:  # noqa: BLE001 - the first request will report it properly
            logger.warning("warm-up failed: %s", error)
            return
        logger.info("warm-up done in %.1f s", time.perf_counter() - started)

    def _sentiment(self, text, model, settings, need_path: bool = False) -> Result:
        notices: list[str] = []
        text = _clip("text", text, self.config.limits.max_chars, notices)
        return self.service.compute("classification", model, {"text": text}, settings, notices, need_path)

    def _path_methods(self, text, model, strategy, steps, factor, nbrs, candidates, need_path: bool = False) -> dict[str, Result]:
        """IG, DIG and UDIG on one text, each with its paper's baseline."""
        return {
            method: self._sentiment(text, model, self.config.settings(method, strategy, steps, factor, nbrs, PAPER_DEFAULT, candidates), need_path)
            for method in PATH_METHODS
        }

    # -- Sentiment tab --

    @readable_errors
    def explain(self, text, model, method, strategy, steps, factor, nbrs, baseline, candidates):
        """Sentiment: label, per-word highlight, legend, token table, scores, runtime."""
        settings = self.config.settings(method, strategy, steps, factor, nbrs, baseline, candidates)
        return views.sentiment(self._sentiment(text, model, settings))

    def explain_example(self, text, model, method, strategy, steps, factor, nbrs, baseline, candidates):
        """:meth:`explain` under its own name, for the examples' cache."""
        return self.explain(text, model, method, strategy, steps, factor, nbrs, baseline, candidates)

    def words(self, text, model):
        """The words of ``text`` as the path view's choices (tokenizer only, no attribution).

        Runs on every edit of the text, so it never raises: without a usable model the list is empty
        (the Show-the-path button then reports the problem).
        """
        if not isinstance(text, str) or not text.strip():
            return gr.Dropdown(choices=[], value=None)
        limits = self.config.limits
        try:
            _, tokenizer = self.service.registry.model(self.config.model_name(model, "classification"))
        except Exception as error:  # noqa: BLE001
            logger.info("no word list: %s", error)
            return gr.Dropdown(choices=[])
        text = text[: limits.max_chars]
        encoded = tokenizer(
            text, return_offsets_mapping=True, return_special_tokens_mask=True, truncation=True, max_length=limits.max_tokens
        )
        return gr.Dropdown(choices=views.word_choices(text, encoded), value=None)

    # -- other tabs --

    @readable_errors
    def explain_qa(self, question, context, model, method, strategy, steps, factor, nbrs, baseline, candidates):
        """QA: answer, start and end highlights, legend, scores, runtime."""
        settings = self.config.settings(method, strategy, steps, factor, nbrs, baseline, candidates)
        notices: list[str] = []
        question = _clip("question", question, self.config.limits.max_question_chars, notices)
        context = _clip("context", context, self.config.limits.max_chars, notices)
        return views.qa(self.service.compute("qa", model, {"question": question, "context": context}, settings, notices))

    @readable_errors
    def compare(self, text, model, strategy, steps, factor, nbrs, candidates):
        """IG, DIG and UDIG on one input: three highlights on one colour scale, a score table, a bar chart."""
        return views.comparison(self._path_methods(text, model, strategy, steps, factor, nbrs, candidates))

    @readable_errors
    def path(self, text, model, word, strategy, steps, factor, nbrs, candidates):
        """The anchors a word's path passes through (input -> baseline) and its distance to real words.

        An empty ``word`` picks the most influential word by UDIG.
        """
        results = self._path_methods(text, model, strategy, steps, factor, nbrs, candidates, need_path=True)
        chosen = render.word_at(render.words(results["udig"].explanation), word)
        vocab = self.service.registry.explainer(self.config.model_name(model, "classification")).vocab_
        return views.path(results, chosen, vocab)

    # -- share and export --

    @readable_errors
    def share_sentiment(self, text, model, method, strategy, steps, factor, nbrs, baseline, candidates):
        return links.share("sentiment", text=text, model=model, method=method, strategy=strategy, steps=steps, factor=factor, nbrs=nbrs, baseline=baseline, candidates=candidates)

    @readable_errors
    def share_qa(self, question, context, model, method, strategy, steps, factor, nbrs, baseline, candidates):
        return links.share("qa", question=question, context=context, model=model, method=method, strategy=strategy, steps=steps, factor=factor, nbrs=nbrs, baseline=baseline, candidates=candidates)

    @readable_errors
    def share_compare(self, text, model, strategy, steps, factor, nbrs, candidates):
        return links.share("compare", text=text, model=model, strategy=strategy, steps=steps, factor=factor, nbrs=nbrs, candidates=candidates)

    @readable_errors
    def share_path(self, text, model, word, strategy, steps, factor, nbrs, candidates):
        return links.share("path", text=text, model=model, word=word, strategy=strategy, steps=steps, factor=factor, nbrs=nbrs, candidates=candidates)

    @readable_errors
    def export(self, text, model, method, strategy, steps, factor, nbrs, baseline, candidates):
        """Files for the current sentiment explanation: JSON, CSV, standalone HTML, model-card snippets."""
        settings = self.config.settings(method, strategy, steps, factor, nbrs, baseline, candidates)
        result = self._sentiment(text, model, settings)
        e, scores = result.explanation, result.scores[""]
        inputs = {"text": e.text, "model": self.config.model_name(model, "classification"), **asdict(settings)}
        stem = f"udig-{e.method}"
        files = {
            f"{stem}.json": render.to_json(e, metrics=scores, inputs=inputs),
            f"{stem}.csv": render.to_csv(e),
            f"{stem}.html": render.standalone_html(e, metrics=scores),
            f"{stem}-model-card.md": render.model_card(e, metrics=scores, fmt="markdown"),
            f"{stem}-model-card.html": render.model_card(e, metrics=scores, fmt="html"),
        }
        folder = self._export_folder()
        for name, content in files.items():
            (folder / name).write_text(content, encoding="utf-8")
        return [str(folder / name) for name in files], files[f"{stem}-model-card.md"]

    def _export_folder(self) -> Path:
        """A fresh folder for one export; the oldest beyond KEPT_EXPORTS are deleted."""
        folder = Path(tempfile.gettempdir()) / "udig-exports" / uuid.uuid4().hex
        folder.mkdir(parents=True)
        with self._exports_lock:
            self._exports.append(folder)
            expired = self._exports[:-KEPT_EXPORTS]
            del self._exports[:-KEPT_EXPORTS]
        for old in expired:
            shutil.rmtree(old, ignore_errors=True)
        return folder
