"""The demo's event handlers: one method of :class:`Demo` per app event, each callable without a browser.

``app.py`` lays the components out and wires them to these methods. A handler checks its inputs, asks the
:class:`~udig.app.service.Service` for results and hands them to :mod:`udig.app.views`. Errors reach the
user as readable ``gr.Error`` messages shown as text (:func:`shown_as_text`), never tracebacks (those go to
the server log).
"""

from __future__ import annotations

import functools
import html
import inspect
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gradio as gr

from .. import render
from ..methods import PATH_METHODS
from ..models import ModelLoadError
from . import links, views
from .config import PAPER_DEFAULT, AppConfig, Limits, OverCap, hub_usable, model_at_hand, sequential_cost
from .content import EXAMPLES
from .service import Result, Service, sizes

logger = logging.getLogger(__name__)

KEPT_EXPORTS = 64  # export folders kept on disk; older ones are deleted


def as_text(message: str) -> str:
    """A pop-up's message escaped. Gradio renders ``gr.Error`` and ``gr.Info`` messages as HTML, and messages
    quote user input (a link's or an API call's too): escaped, markup shows as text."""
    return html.escape(message, quote=False)


def shown_as_text(message: str, title: str = "Check the input") -> gr.Error:
    """The error every handler failure becomes (:func:`readable_errors`)."""
    return gr.Error(as_text(message), title=title)


def readable_errors(fn: Callable) -> Callable:
    """Turn every failure of a :class:`Demo` handler into a :func:`shown_as_text` error; log unexpected ones."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(demo: Demo, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(demo, *args, **kwargs)
        except gr.Error:  # from a handler called by this one: already shown as text
            raise
        except ModelLoadError as error:
            try:
                model = signature.bind(demo, *args, **kwargs).arguments.get("model")
            except TypeError:
                model = None
            raise shown_as_text(_model_message(error, demo.config, model), "Model not available") from None
        except UnicodeError:
            raise shown_as_text(
                "A value holds characters that are not valid Unicode text (a lone surrogate); remove them."
            ) from None
        except (ValueError, TypeError, KeyError) as error:
            raise shown_as_text(_message(error)) from None
        except MemoryError:
            raise shown_as_text(
                "The computation ran out of memory: use fewer steps or a shorter text.", "Error"
            ) from None
        except Exception as error:  # noqa: BLE001
            logger.exception("handler %s failed", fn.__name__)
            raise shown_as_text(
                f"Something went wrong ({type(error).__name__}). Try fewer steps or a shorter text; "
                "if it persists, report it with the exported settings.",
                "Error",
            ) from None

    return wrapper


def _message(error: BaseException) -> str:
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return text[:1].upper() + text[1:] if text else type(error).__name__


def _model_message(error: ModelLoadError, config: AppConfig, model: Any) -> str:
    """An offered model's load failure as it is; a visitor's own model's (UDIG_ALLOW_ANY_MODEL) names only what
    they typed: the loader's messages name resolved folders, which would let a visitor probe the server's."""
    name = model.strip() if isinstance(model, str) else ""
    if not name or any(name in offered for offered in config.models.values()):
        return str(error)
    logger.info("model %r not loaded: %s", name, error)
    why = (
        "check the spelling"
        if hub_usable()
        else "this server cannot reach the Hugging Face Hub, so only models in its cache load"
    )
    return (
        f"Could not load the model {name!r}. Give the id of a Hugging Face Hub model with a sequence-classification "
        f"or question-answering head ({why})."
    )


class ReadableBlocks(gr.Blocks):
    """``gr.Blocks`` that answers an API call with too few inputs readably: Gradio's own message names its
    internals, and an API caller gets only "the upstream app raised an exception". Values a handler takes with a
    default (controls added later, such as the integration rule) may be left off the end: an older call still
    works, and the handler uses the control's default."""

    def validate_inputs(self, block_fn: Any, inputs: list[Any]) -> None:
        missing = len(block_fn.inputs) - len(inputs)
        optional = (
            [p for p in inspect.signature(block_fn.fn).parameters.values() if p.default is not p.empty]
            if block_fn.fn
            else []
        )
        if 0 < missing <= len(optional):
            inputs.extend([None] * missing)
        if len(inputs) < len(block_fn.inputs):
            names = ", ".join(str(getattr(block, "label", None) or block.get_block_name()) for block in block_fn.inputs)
            raise shown_as_text(
                f"This endpoint takes {len(block_fn.inputs)} values ({names}); the call gave {len(inputs)}."
            )
        super().validate_inputs(block_fn, inputs)


def _clip(limits: Limits, name: str, text: Any, notices: list[str]) -> str:
    """A text input within the demo's limits (:meth:`~udig.app.config.Limits.text`); an empty one is refused."""
    text = limits.text(name, "" if text is None else text, notices)
    if not text.strip():
        raise ValueError(f"the {name} is empty: type something to explain")
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
                explainer.prepare(self.config.defaults.replace(method="dig"))
        except Exception as error:  # noqa: BLE001 - the first request will report it properly
            logger.warning("warm-up failed: %s", error)
            return
        logger.info("warm-up done in %.1f s", time.perf_counter() - started)

    def _sentiment(self, text, model, settings, need_path: bool = False) -> Result:
        notices: list[str] = []
        text = _clip(self.config.limits, "text", text, notices)
        return self.service.compute("classification", model, {"text": text}, settings, notices, need_path)

    def _path_methods(
        self,
        text,
        model,
        strategy,
        steps,
        factor,
        nbrs,
        candidates,
        rule,
        methods: tuple[str, ...],
        need_path: bool = False,
    ) -> tuple[dict[str, Result], list[str]]:
        """``methods`` on one text, each with its paper's baseline; a sequential one whose cost is above the demo's
        cap is left out with a notice (the others still run)."""
        results, notices = {}, []
        for method in methods:
            settings = self.config.settings(method, strategy, steps, factor, nbrs, PAPER_DEFAULT, candidates, rule)
            try:
                results[method] = self._sentiment(text, model, settings, need_path)
            except OverCap as error:
                notices.append(f"{views.METHOD_NAMES[method]} left out: {error}.")
        return results, notices

    # -- Sentiment tab --

    @readable_errors
    def explain(
        self, text, model, method, strategy, steps, factor, nbrs, baseline, candidates, rule=None, sequential=None
    ):
        """Sentiment: label, per-word highlight, legend, token table, scores, runtime."""
        settings = self.config.settings(method, strategy, steps, factor, nbrs, baseline, candidates, rule, sequential)
        return views.sentiment(self._sentiment(text, model, settings))

    def explain_example(
        self, text, model, method, strategy, steps, factor, nbrs, baseline, candidates, rule=None, sequential=None
    ):
        """:meth:`explain` under its own name, for the examples' cache."""
        return self.explain(text, model, method, strategy, steps, factor, nbrs, baseline, candidates, rule, sequential)

    def tokenizer(self, name: str) -> Any:
        """The tokenizer of model ``name`` (loading the model once, as its first explanation would)."""
        return self.service.registry.model(name)[1]

    @readable_errors
    def words(self, text, model):
        """The words of ``text`` as the path view's choices (tokenizer only, no attribution).

        Runs on every edit of the text and when a link is restored, so it leaves the chosen word alone (the
        browser clears it when the user edits the text or the model, so a link's word survives), and without a
        usable model the list is empty (the Show-the-path button then reports the problem).
        """
        if text is None or (isinstance(text, str) and not text.strip()):
            return gr.Dropdown(choices=[])
        text = self.config.limits.text("text", text, [])
        try:
            tokenizer = self.tokenizer(self.config.model_name(model, "classification"))
        except Exception as error:  # noqa: BLE001
            logger.info("no word list: %s", error)
            return gr.Dropdown(choices=[])
        return gr.Dropdown(choices=views.word_choices(views.text_words(text, tokenizer, self.config.limits.max_tokens)))

    # -- other tabs --

    @readable_errors
    def explain_qa(
        self,
        question,
        context,
        model,
        method,
        strategy,
        steps,
        factor,
        nbrs,
        baseline,
        candidates,
        rule=None,
        sequential=None,
    ):
        """QA: answer, start and end highlights, legend, scores, runtime."""
        settings = self.config.settings(method, strategy, steps, factor, nbrs, baseline, candidates, rule, sequential)
        notices: list[str] = []
        question = _clip(self.config.limits, "question", question, notices)
        context = _clip(self.config.limits, "context", context, notices)
        name = self.config.model_name(model, "qa")
        if not model_at_hand(name) and hub_usable():
            gr.Info(
                as_text(f"Downloading {name} from the Hugging Face Hub for its first use: about a minute."),
                title="First use",
            )
        return views.qa(self.service.compute("qa", name, {"question": question, "context": context}, settings, notices))

    @readable_errors
    def compare(self, text, model, strategy, steps, factor, nbrs, candidates, rule=None):
        """IG, DIG, UDIG and SIG on one input: highlights on one colour scale, a score table, a bar chart."""
        return views.comparison(
            *self._path_methods(text, model, strategy, steps, factor, nbrs, candidates, rule, PATH_METHODS)
        )

    @readable_errors
    def path(self, text, model, word, strategy, steps, factor, nbrs, candidates, rule=None):
        """The anchors a word's path passes through (input -> baseline) and its distance to real words.

        An empty ``word`` picks the most influential word by UDIG.
        """
        results, _ = self._path_methods(
            text, model, strategy, steps, factor, nbrs, candidates, rule, views.JOINT_METHODS, need_path=True
        )
        chosen = render.word_at(render.words(results["udig"].explanation), word)
        vocab = self.service.registry.explainer(self.config.model_name(model, "classification")).vocab_
        return views.path(results, chosen, vocab)

    def cost(self, text, model, method, steps, factor, sequential=None) -> str:
        """What a sequential run on a sentiment text will cost, shown before it runs (see :meth:`_cost`)."""
        return self._cost({"text": text}, "classification", model, method, steps, factor, sequential)

    def cost_qa(self, question, context, model, method, steps, factor, sequential=None) -> str:
        """The QA tab's :meth:`cost`: every word of the question and the context moves."""
        return self._cost({"question": question, "context": context}, "qa", model, method, steps, factor, sequential)

    def _cost(self, fields: dict[str, Any], task: str, model, method, steps, factor, sequential) -> str:
        """Words x path points against the demo's cap; empty for a joint path (its cap is the steps slider's
        range). Shown as the controls change, so it never raises: a bad value is a line of text, and a model
        that does not load says so when it runs."""
        if any(value is None or not str(value).strip() for value in fields.values()):
            return ""
        try:
            settings = self.config.settings(method, None, steps, factor, None, PAPER_DEFAULT, None, None, sequential)
            if not settings.sequential:
                return ""
            inputs = {name: self.config.limits.text(name, value, []) for name, value in fields.items()}
            _, words = sizes(self.service.registry.explainer(self.config.model_name(model, task)), inputs)
        except (ValueError, TypeError) as error:
            return f"⚠️ {views.literal(_message(error))}"
        except Exception as error:  # noqa: BLE001 - the run reports the model's problem
            logger.info("no cost estimate: %s", error)
            return ""
        limit = self.config.limits.max_points
        verdict = (
            f"within this demo's cap of {limit}"
            if not self.config.limits.over_cap(settings, words)
            else (f"**more than this demo allows ({limit})**: lower the steps or shorten the text")
        )
        return f"⏱️ {sequential_cost(settings, words)}, {verdict}."

    # -- share and export --

    @readable_errors
    def share_sentiment(
        self, text, model, method, strategy, steps, factor, nbrs, baseline, candidates, rule=None, sequential=None
    ):
        """A link to this sentiment explanation (fields checked and cut as the UI's)."""
        return links.share(
            self.config,
            "sentiment",
            text=text,
            model=model,
            method=method,
            strategy=strategy,
            steps=steps,
            factor=factor,
            nbrs=nbrs,
            baseline=baseline,
            candidates=candidates,
            rule=rule,
            sequential=sequential,
        )

    @readable_errors
    def share_qa(
        self,
        question,
        context,
        model,
        method,
        strategy,
        steps,
        factor,
        nbrs,
        baseline,
        candidates,
        rule=None,
        sequential=None,
    ):
        return links.share(
            self.config,
            "qa",
            question=question,
            context=context,
            model=model,
            method=method,
            strategy=strategy,
            steps=steps,
            factor=factor,
            nbrs=nbrs,
            baseline=baseline,
            candidates=candidates,
            rule=rule,
            sequential=sequential,
        )

    @readable_errors
    def share_compare(self, text, model, strategy, steps, factor, nbrs, candidates, rule=None):
        return links.share(
            self.config,
            "compare",
            text=text,
            model=model,
            strategy=strategy,
            steps=steps,
            factor=factor,
            nbrs=nbrs,
            candidates=candidates,
            rule=rule,
        )

    @readable_errors
    def share_path(self, text, model, word, strategy, steps, factor, nbrs, candidates, rule=None):
        return links.share(
            self.config,
            "path",
            text=text,
            model=model,
            word=word,
            strategy=strategy,
            steps=steps,
            factor=factor,
            nbrs=nbrs,
            candidates=candidates,
            rule=rule,
        )

    @readable_errors
    def export(
        self, text, model, method, strategy, steps, factor, nbrs, baseline, candidates, rule=None, sequential=None
    ):
        """Files for the current sentiment explanation: JSON, CSV, standalone HTML, model-card snippets, images.

        The Markdown card embeds the PNG (card renderers may strip the HTML's inline colours) and links back
        to the demo with this example's share link: a full address on a Space (``SPACE_HOST``), else relative.
        """
        settings = self.config.settings(method, strategy, steps, factor, nbrs, baseline, candidates, rule, sequential)
        result = self._sentiment(text, model, settings)
        e, scores = result.explanation, result.scores[""]
        inputs = {"text": e.text, "model": self.config.model_name(model, "classification"), **asdict(settings)}
        link = (self.config.public_url or "") + self.share_sentiment(
            text, model, method, strategy, steps, factor, nbrs, baseline, candidates, rule, sequential
        )
        stem = f"udig-{e.method}"
        image = f"{stem}.png"
        files: dict[str, str | bytes] = {
            f"{stem}.json": render.to_json(e, metrics=scores, inputs=inputs),
            f"{stem}.csv": render.to_csv(e),
            f"{stem}.html": render.standalone_html(e, metrics=scores),
            f"{stem}-model-card.md": render.model_card(e, metrics=scores, fmt="markdown", image=image, link=link),
            f"{stem}-model-card.html": render.model_card(e, metrics=scores, fmt="html", image=image, link=link),
            **{f"{stem}.{fmt}": render.highlight_image(e, fmt) for fmt in render.IMAGE_FORMATS},
        }
        folder = self._export_folder()
        for name, content in files.items():
            if isinstance(content, bytes):
                (folder / name).write_bytes(content)
            else:
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
