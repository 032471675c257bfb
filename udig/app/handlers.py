"""The demo's event handlers: one method of :class:`Demo` per app event, each callable without a browser.

``app.py`` lays the components out and wires them to these methods by name (Gradio's ``inputs_kwargs``): a
handler takes its tab's fields as keywords (``text``, ``model`` and the settings of :mod:`udig.settings`,
named as the table names them), so no handler restates the list of controls and the API's inputs keep the
page's names and order. A handler checks its inputs, asks the :class:`~udig.app.service.Service` for results
and hands them to :mod:`udig.app.views`. Errors reach the user as readable ``gr.Error`` messages shown as text
(:func:`shown_as_text`), never tracebacks (those go to the server log).
"""

from __future__ import annotations

import functools
import html
import logging
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gradio as gr

from .. import render
from ..explanation import Explanation
from ..hub import ModelRefused
from ..methods import PATH_METHODS
from ..models import ModelLoadError
from ..provenance import check_differences, recomputed_check
from ..settings import PARAMETERS, Settings, quoted
from ..version import __version__
from ..vocab import hold_int8_screen
from ..vocab import warm_up as compile_kernels
from . import evaluation, links, memory, views
from .config import (
    AppConfig,
    Limits,
    OverCap,
    hub_usable,
    model_at_hand,
    sequential_cost,
    valid_text,
)
from .service import BUILDING_GRAPH, COMPILING_KERNELS, LOADING_MODEL, Result, Service

logger = logging.getLogger(__name__)

KEPT_EXPORTS = 64  # export folders kept on disk; older ones are deleted
LATER_FIELDS = frozenset(
    {"rule", "sequential"}
)  # controls added after the API was published: a call may leave them off
Fields = Mapping[str, Any]  # one tab's values by field name, as app.py lays the tab out
START_UP_STAGES = (LOADING_MODEL, COMPILING_KERNELS, BUILDING_GRAPH)  # in the warm-up's order
OVER_CAP_MARK = "more than this demo allows"  # in a cost line (:meth:`Demo.cost`) that the run would be refused
TAB_INPUTS = {"sentiment": ("text",), "qa": ("question", "context"), "compare": ("text",), "path": ("text",)}
TAB_HANDLERS = {"sentiment": "explain", "qa": "explain_qa", "compare": "compare", "path": "path"}  # by tab
TAB_METHODS = {"compare": PATH_METHODS, "path": views.JOINT_METHODS}  # the methods a tab runs (else the chosen one)


def as_text(message: str) -> str:
    """A pop-up's message escaped. Gradio renders ``gr.Error`` and ``gr.Info`` messages as HTML, and messages
    quote user input (a link's or an API call's too): escaped, markup shows as text."""
    return html.escape(message, quote=False)


def shown_as_text(message: str, title: str = "Check the input") -> gr.Error:
    """The error every handler failure becomes (:func:`readable_errors`)."""
    return gr.Error(as_text(message), title=title)


def readable_errors(fn: Callable) -> Callable:
    """Turn every failure of a :class:`Demo` handler into a :func:`shown_as_text` error; log unexpected ones."""

    @functools.wraps(fn)
    def wrapper(demo: Demo, *args: Any, **fields: Any) -> Any:
        try:
            return fn(demo, *args, **fields)
        except gr.Error:  # from a handler called by this one: already shown as text
            raise
        except ModelLoadError as error:
            raise shown_as_text(
                _model_message(error, demo.config, fields.get("model")), "Model not available"
            ) from None
        except ModelRefused as error:  # vetting's sentence, written for visitors: shown as it is
            raise shown_as_text(str(error), "Model not available") from None
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
        except Exception:  # noqa: BLE001 - the details go to the server's log, not to the visitor
            logger.exception("handler %s failed", fn.__name__)
            raise shown_as_text(
                "Something went wrong on the server while explaining this. Try fewer steps or a shorter text; "
                "if it persists, report it with the link (🔗 Copy link).",
                "Error",
            ) from None

    return wrapper


def positional(handler: Callable[..., Any], names: Sequence[str]) -> Callable[..., Any]:
    """``handler`` (fields by name) as a function of values in ``names``' order: ``gr.Examples`` calls its
    function with positional values only. It keeps the handler's name with ``_example`` added."""

    def by_position(*values: Any) -> Any:
        return handler(**dict(zip(names, values, strict=True)))

    by_position.__name__ = by_position.__qualname__ = f"{handler.__name__}_example"
    return by_position


def _message(error: BaseException) -> str:
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return text[:1].upper() + text[1:] if text else type(error).__name__


def _model_message(error: ModelLoadError, config: AppConfig, model: Any) -> str:
    """A load failure in a visitor's words; the loader's own message goes to the log. The loader names
    functions, environment variables and resolved folders, which mean nothing to a visitor and would let one
    probe the server's folders (UDIG_ALLOW_ANY_MODEL): a visitor's own model's message names only what they
    typed, the same whether or not such a folder exists."""
    name = model.strip() if isinstance(model, str) else ""
    logger.info("model %r not loaded: %s", name, error)
    if not name or any(name in offered for offered in config.models.values()):
        shown = name or "the default model"
        return f"The model {shown} cannot be loaded on this server right now; pick another model from the list."
    why = (
        "check the spelling"
        if hub_usable()
        else "this server cannot reach the Hugging Face Hub, so only models it already has load"
    )
    return (
        f"Could not load the model {name!r}. Give the id of a Hugging Face Hub model with a sequence-classification "
        f"or question-answering head ({why})."
    )


class ReadableBlocks(gr.Blocks):
    """``gr.Blocks`` that answers an API call with too few inputs readably: Gradio's own message names its
    internals, and an API caller gets only "the upstream app raised an exception". Controls added later (the
    integration rule, sequential: :data:`LATER_FIELDS`) may be left off the end of a call by name: an older
    call still works, and the handler uses the control's default."""

    def validate_inputs(self, block_fn: Any, inputs: list[Any]) -> None:
        missing = len(block_fn.inputs) - len(inputs)
        names = list(getattr(block_fn, "input_keyword_names", None) or [])
        if 0 < missing <= len(names) and set(names[-missing:]) <= LATER_FIELDS:
            inputs.extend([None] * missing)
        if len(inputs) < len(block_fn.inputs):
            labels = ", ".join(
                str(getattr(block, "label", None) or block.get_block_name()) for block in block_fn.inputs
            )
            raise shown_as_text(
                f"This endpoint takes {len(block_fn.inputs)} values ({labels}); the call gave {len(inputs)}."
            )
        super().validate_inputs(block_fn, inputs)


def _texts(
    limits: Limits, fields: Fields, inputs: Sequence[str], notices: list[str], others: Sequence[str] = ()
) -> dict[str, str]:
    """The text ``inputs`` of one tab's ``fields`` within the demo's limits (:meth:`~udig.app.config.Limits.text`),
    an empty one refused; a field that is neither these, ``others``, the model nor a setting is refused too (a
    typo in a Python call would otherwise fall back to a default)."""
    unknown = sorted(set(fields) - {*inputs, *others, "model", *PARAMETERS})
    if unknown:
        raise TypeError(
            f"unknown field {quoted(unknown[0])}; this tab takes {', '.join((*inputs, *others))}, model and the "
            f"settings ({', '.join(PARAMETERS)})"
        )
    texts = {}
    for name in inputs:
        texts[name] = limits.text(name, "" if fields.get(name) is None else fields[name], notices)
        if not texts[name].strip():
            raise ValueError(f"the {name} is empty: type something to explain")
    return texts


def _wait_for(compiler: subprocess.Popen | None, part: str) -> None:
    """Wait until ``compiler`` (``python -m udig.vocab``) prints that ``part``'s kernels are compiled (a line
    starting with its name), or ends; at once without one."""
    if compiler is None or compiler.stdout is None:
        return
    for line in compiler.stdout:
        if line.split()[:1] == [part]:
            return


def _compiled(compiler: subprocess.Popen | None, part: str) -> None:
    """Compile ``part`` of the kernels here, or, where ``compiler`` compiles it, wait for it to say so and load it
    from numba's disk cache (:func:`udig.vocab.warm_up` either way)."""
    _wait_for(compiler, part)
    compile_kernels([part])


class Demo:
    """Every handler of the app, over one configuration and one service. Each handler takes its tab's fields
    by name (:data:`Fields`); a field left out (or None) is the control's default."""

    def __init__(self, config: AppConfig | None = None) -> None:
        self.config = config or AppConfig.from_env()
        self.service = Service(self.config)
        self._exports: list[Path] = []
        self._exports_lock = threading.Lock()

    def start_warm_up(self, compiler: subprocess.Popen | None = None) -> threading.Thread | None:
        """Prepare in the background what a first request needs (:meth:`warm_up`), unless ``config.warmup`` is
        off. The kernels' stage is announced before this returns: a request that needs it waits for it,
        showing the stage, instead of compiling the same kernels beside it. ``compiler``: a ``python -m
        udig.vocab`` process already compiling the kernels (app.py starts one before its imports)."""
        if self.config.warmup == "off":
            return None
        self.service.start_up.expect(COMPILING_KERNELS)
        thread = threading.Thread(target=self.warm_up, args=(compiler,), name="udig-warm-up", daemon=True)
        thread.start()
        return thread

    def warm_up(self, compiler: subprocess.Popen | None = None) -> None:
        """What a first request needs, as stages of :attr:`Service.start_up <udig.app.service.Service.start_up>`
        (requests show the one they wait on): load the default model; index the model's real words and search
        rows, and compile UDIG's kernels; with ``config.warmup == "full"`` (the default), load or build DIG's graph
        for the default settings and compile DIG's kernels; last, UDIG's int8 screen (the rows' codes and its
        kernel), which UDIG's searches skip until then (:func:`udig.vocab.hold_int8_screen`: the same words, a
        little slower on long texts). Where ``compiler`` (``python -m udig.vocab``) compiles the kernels, this
        waits for it to say each part (:data:`udig.vocab.COMPILE_ORDER`) is written and then only loads it from
        numba's disk cache; if it fails, they compile here. So the real words are indexed while UDIG's kernels
        compile, and DIG's graph is built while DIG's chains compile."""
        started, start_up, defaults = time.perf_counter(), self.service.start_up, self.config.defaults
        hold_int8_screen(True)
        try:
            with start_up.doing(LOADING_MODEL):
                explainer = self.service.registry.explainer(self.config.sentiment_models[0])
            vocab, device = explainer.vocab_, explainer.model.get_input_embeddings().weight.device
            with start_up.doing(COMPILING_KERNELS):
                vocab.prepare([defaults.candidates], device=device, screen=False)
                _compiled(compiler, "udig-search")  # loaded while the compiler still compiles the chains
                _compiled(compiler, "udig-chains")
            if self.config.warmup == "full":
                with start_up.doing(BUILDING_GRAPH):
                    _compiled(compiler, "dig-graph")
                    explainer.prepare(defaults.replace(method="dig"))
                    _compiled(compiler, "dig-chains")
            vocab.prepare([defaults.candidates], device=device)  # the screen's int8 codes
            _compiled(compiler, "udig-screen")
        except Exception as error:  # noqa: BLE001 - the first request will report it properly
            logger.warning("warm-up failed: %s", error)
            return
        finally:
            hold_int8_screen(False)  # loaded now (after a failure, it compiles on first use at worst)
            start_up.end(COMPILING_KERNELS)  # announced by start_warm_up: never left pending
            if compiler is not None:
                compiler.communicate()  # whatever it has left to do, then reaped
            memory.trim()
        logger.info("warm-up done in %.1f s", time.perf_counter() - started)

    @staticmethod
    def show_stage(stage: str) -> None:
        """Tell the visitor whose request runs in this thread what it waits for: Gradio's progress bar, at the
        stage's place among :data:`START_UP_STAGES` (a no-op outside a Gradio event)."""
        done = START_UP_STAGES.index(stage)
        gr.Progress()((done, len(START_UP_STAGES)), desc=f"{stage[:1].upper()}{stage[1:]}", unit="start-up stages")

    @staticmethod
    def show_points(prefix: str, done: int, total: int) -> None:
        """Tell the visitor how far the path's gradients are: "gradients at N of M points" in Gradio's progress
        bar, after ``prefix`` (the method, on the Compare and path tabs; a no-op outside a Gradio event). Not
        "path points": the finished runtime line says that, and the page's tests wait for it."""
        gr.Progress()((done, total), desc=f"{prefix}gradients at {done} of {total} points", unit="points")

    def _sentiment(
        self,
        fields: Fields,
        settings: Settings,
        need_path: bool = False,
        others: Sequence[str] = (),
        references: tuple[str, ...] = (),
        doing: str = "",
    ) -> Result:
        """The explanation of the text of one tab's ``fields`` under ``settings`` (with the ``references``' scores,
        see :meth:`Service.compute <udig.app.service.Service.compute>`); ``doing`` leads its progress message."""
        notices: list[str] = []
        texts = _texts(self.config.limits, fields, ("text",), notices, others)
        return self.service.compute(
            "classification",
            fields.get("model"),
            texts,
            settings,
            notices,
            need_path,
            report=self.show_stage,
            references=references,
            count=functools.partial(self.show_points, doing),
        )

    def _path_methods(
        self, fields: Fields, methods: tuple[str, ...], need_path: bool = False
    ) -> tuple[dict[str, Result], list[str]]:
        """``methods`` on one text, each with its paper's baseline; a sequential one whose cost is above the demo's
        cap is left out with a notice (the others still run). The visitor sees which method runs (Gradio's
        progress bar: "SIG, method 4 of 4"; a no-op outside a Gradio event)."""
        results, notices = {}, []
        for done, method in enumerate(methods):
            title = views.METHOD_NAMES[method]
            doing = f"{title}, method {done + 1} of {len(methods)}"
            gr.Progress()((done, len(methods)), desc=doing, unit="methods")
            settings = self.config.settings({**fields, "method": method, "baseline": None})
            try:
                results[method] = self._sentiment(fields, settings, need_path, others=("word",), doing=f"{doing}: ")
            except OverCap as error:
                notices.append(f"{title} left out: {error}.")
        return results, notices

    # -- Sentiment and QA tabs --

    @readable_errors
    def explain(self, **fields: Any) -> tuple:
        """Sentiment: label, per-word highlight, legend with how to read the scores (with the sanity baselines'
        scores on the same input, and what the evaluation found), token table, scores, runtime."""
        settings = self.config.settings(fields)
        result = self._sentiment(fields, settings, references=evaluation.REFERENCES)
        name = self.config.model_name(fields.get("model"), "classification")
        return views.sentiment(result, evaluation.finding_lines(name, settings, views.method_title(settings)))

    @readable_errors
    def explain_qa(self, **fields: Any) -> tuple:
        """QA: answer, start and end highlights, legend, scores, runtime."""
        settings = self.config.settings(fields)
        notices: list[str] = []
        texts = _texts(self.config.limits, fields, ("question", "context"), notices)
        name = self.config.model_name(fields.get("model"), "qa")
        listed = name in self.config.qa_models  # a visitor's own model is vetted first: its load says what it does
        if listed and not model_at_hand(name) and hub_usable():
            gr.Info(
                as_text(f"Downloading {name} from the Hugging Face Hub for its first use: about a minute."),
                title="First use",
            )
        count = functools.partial(self.show_points, "")
        return views.qa(self.service.compute("qa", name, texts, settings, notices, report=self.show_stage, count=count))

    def tokenizer(self, name: str) -> Any:
        """The tokenizer of model ``name`` (loading the model once, as its first explanation would)."""
        return self.service.registry.model(name)[1]

    @readable_errors
    def words(self, text: Any, model: Any) -> gr.Dropdown:
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

    # -- a visitor's own Hub model (UDIG_ALLOW_ANY_MODEL) --

    @readable_errors
    def load_sentiment_model(self, name: Any = None, revision: Any = None) -> tuple:
        """The Sentiment tab's own-model field: see :meth:`_load_own_model`."""
        return self._load_own_model("classification", name, revision)

    @readable_errors
    def load_qa_model(self, name: Any = None, revision: Any = None) -> tuple:
        """The QA tab's own-model field: see :meth:`_load_own_model`."""
        return self._load_own_model("qa", name, revision)

    def _load_own_model(self, task: str, name: Any, revision: Any) -> tuple:
        """Load Hub model ``name`` at ``revision`` (empty: its main branch) for ``task``'s tab, vetted before any
        download (:meth:`Registry.load_visitor <udig.app.service.Registry.load_visitor>`): the model picker with it
        chosen, as ``owner/name@commit`` (a link to it reopens that commit), and a status line; a refusal is that
        status line, vetting's sentence as it is, and the picker stays."""
        if not self.config.allow_any_model:
            raise ValueError("this demo explains only the models in its list")
        name = valid_text("model name", "" if name is None else name).strip()
        revision = valid_text("revision", "" if revision is None else revision).strip() or None
        if not name:
            raise ValueError("the model name is empty: write it as owner/name, as on the Hugging Face Hub")
        try:
            _, _, key = self.service.registry.load_visitor(name, revision, task)
        except ModelRefused as refused:
            return gr.skip(), f"⚠️ {views.literal(str(refused))}"
        offered = self.config.models[task]
        return (
            gr.Dropdown(choices=[*offered, key], value=key),
            f"✅ Loaded {views.literal(key)}: it is now this tab's model.",
        )

    # -- Compare and path tabs --

    @readable_errors
    def compare(self, **fields: Any) -> tuple:
        """IG, DIG, UDIG and SIG on one input: highlights on one colour scale, a score table, a bar chart."""
        return views.comparison(*self._path_methods(fields, PATH_METHODS))

    @readable_errors
    def path(self, **fields: Any) -> tuple:
        """The anchors a word's path passes through (input -> baseline) and its distance to real words.

        An empty ``word`` picks the most influential word by UDIG.
        """
        results, _ = self._path_methods(fields, views.JOINT_METHODS, need_path=True)
        chosen = render.word_at(render.words(results["udig"].explanation), fields.get("word"))
        vocab = self.service.registry.explainer(self.config.model_name(fields.get("model"), "classification")).vocab_
        return views.path(results, chosen, vocab)

    # -- what a sequential run costs, shown before it runs --

    def cost(self, **fields: Any) -> str:
        """What a sequential run on a sentiment text will cost (see :meth:`_cost`)."""
        return self._cost("classification", fields, ("text",))

    def cost_qa(self, **fields: Any) -> str:
        """The QA tab's :meth:`cost`: every word of the question and the context moves."""
        return self._cost("qa", fields, ("question", "context"))

    def _cost(self, task: str, fields: Fields, inputs: Sequence[str]) -> str:
        """Words x path points against the demo's cap; empty for a joint path (its cap is the steps slider's
        range). Shown as the controls change, so it never raises: a bad value is a line of text, and a model
        that does not load says so when it runs."""
        if any(fields.get(name) is None or not str(fields[name]).strip() for name in inputs):
            return ""
        try:
            settings = self.config.settings({**fields, "baseline": None})
            if not settings.sequential:
                return ""
            texts = _texts(self.config.limits, fields, inputs, [])
            explainer = self.service.registry.explainer(self.config.model_name(fields.get("model"), task))
            words = explainer.size(**texts, settings=settings).words
        except (ValueError, TypeError) as error:
            return f"⚠️ {views.literal(_message(error))}"
        except Exception as error:  # noqa: BLE001 - the run reports the model's problem
            logger.info("no cost estimate: %s", error)
            return ""
        limit = self.config.limits.max_points
        verdict = (
            f"within this demo's cap of {limit}"
            if not self.config.limits.over_cap(settings, words)
            else (f"**{OVER_CAP_MARK} ({limit})**: lower the steps or shorten the text")
        )
        return f"⏱️ {sequential_cost(settings, words)}, {verdict}."

    @staticmethod
    def run_button(cost: str | None) -> gr.Button:
        """A tab's run button after its cost line changed: disabled while the line says the run is over the cap
        (it would be refused), enabled otherwise."""
        return gr.Button(interactive=OVER_CAP_MARK not in (cost or ""))

    # -- share and export --

    def _remembered(self, tab: str, fields: Fields) -> dict[str, Result]:
        """The results ``tab`` shows for ``fields``, by part ("" for one result, else each method), as the cache
        holds them: nothing is computed, so a link copied before a run (or after a change) has none."""
        texts = _texts(self.config.limits, fields, TAB_INPUTS[tab], [], others=("word",))
        task, model = links.TAB_TASKS[tab], fields.get("model")
        if tab not in TAB_METHODS:
            found = self.service.remembered(task, model, texts, self.config.settings(fields))
            return {"": found} if found else {}
        by_method = {
            method: self.service.remembered(
                task, model, texts, self.config.settings({**fields, "method": method, "baseline": None})
            )
            for method in TAB_METHODS[tab]
        }
        return {method: result for method, result in by_method.items() if result is not None}

    def _check(self, tab: str, fields: Fields) -> dict[str, Any] | None:
        """:func:`udig.provenance.recomputed_check` of what ``tab`` shows for ``fields`` (None when it is not at
        hand): QA's answer with its start and end words, else the label with each result's words."""
        try:
            results = self._remembered(tab, fields)
        except (ValueError, TypeError) as error:  # inputs no run takes: there is no result to check
            logger.info("no check for a %s link: %s", tab, error)
            return None
        if not results:
            return None
        if tab == "qa":
            answer = results[""].explanation
            return recomputed_check(answer.answer, answer.parts)
        parts: dict[str, Explanation] = {part: result.explanation for part, result in results.items()}
        return recomputed_check(next(iter(parts.values())).target_label, parts)

    def _made(self, tab: str, fields: Fields) -> dict[str, Any]:
        """What made the result a link to ``tab`` with ``fields`` shows: the udig version, the model's revision and
        a check of the result (when it is at hand: the one on the page)."""
        name = self.config.model_name(fields.get("model"), links.TAB_TASKS[tab])
        made: dict[str, Any] = {"udig": __version__, "revision": self.service.registry.revision(name)}
        check = self._check(tab, fields)
        if check is not None:
            made["check"] = {key: value for key, value in check.items() if key != "all"}
        return made

    @readable_errors
    def share_sentiment(self, **fields: Any) -> str:
        """A link to this sentiment explanation (fields checked and cut as the UI's), saying what made it."""
        return links.share(self.config, "sentiment", self._made("sentiment", fields), **fields)

    @readable_errors
    def share_qa(self, **fields: Any) -> str:
        return links.share(self.config, "qa", self._made("qa", fields), **fields)

    @readable_errors
    def share_compare(self, **fields: Any) -> str:
        return links.share(self.config, "compare", self._made("compare", fields), **fields)

    @readable_errors
    def share_path(self, **fields: Any) -> str:
        return links.share(self.config, "path", self._made("path", fields), **fields)

    @readable_errors
    def open_link(self, tab: str, link: Any = None, **fields: Any) -> tuple:
        """A shared link's run: ``tab``'s handler on the link's fields, then the page's link notice saying what
        made the link and whether this server's udig version, the model's revision and the recomputed result
        agree with it (``link``: :func:`udig.app.links.link_value`, set when the page loaded)."""
        outputs = getattr(self, TAB_HANDLERS[tab])(**fields)
        made, notices = links.read_link_value(link)
        lines = links.made_lines(made)
        if made:
            name = self.config.model_name(fields.get("model"), links.TAB_TASKS[tab])
            here = self._check(tab, fields)
            if "check" not in made:
                differences: list[str] = []
            elif here is None:
                differences = ["the result was not kept long enough to be compared; run it again"]
            else:
                differences = check_differences(made["check"], here)
            lines = links.made_lines(made, self.service.registry.revision(name), differences)
        notice = "  \n".join(line for line in (*lines, views.notices_markdown(notices)) if line)
        return (*outputs, gr.Markdown(notice, visible=True))

    def link_run(self, tab: str) -> Callable[..., tuple]:
        """:meth:`open_link` for ``tab``, named as the tab's handler (the queue and the log name events by it)."""

        def run(link: Any = None, **fields: Any) -> tuple:
            return self.open_link(tab, link, **fields)

        run.__name__ = run.__qualname__ = TAB_HANDLERS[tab]
        return run

    def _write_export(self, files: dict[str, str | bytes]) -> list[str]:
        """``files`` (name -> content) written into a fresh export folder; their paths."""
        folder = self._export_folder()
        for name, content in files.items():
            if isinstance(content, bytes):
                (folder / name).write_bytes(content)
            else:
                (folder / name).write_text(content, encoding="utf-8")
        return [str(folder / name) for name in files]

    def _export_inputs(self, tab: str, fields: Fields, settings: Settings) -> dict[str, Any]:
        """What an exported JSON file says made it: the tab's inputs and settings, the model and its revision, the
        udig version and the share link (relative, or the Space's full address)."""
        task = links.TAB_TASKS[tab]
        name = self.config.model_name(fields.get("model"), task)
        texts = _texts(self.config.limits, fields, TAB_INPUTS[tab], [], others=("word",))
        return {
            **texts,
            "model": name,
            "model_revision": self.service.registry.revision(name),
            "udig": __version__,
            "link": (self.config.public_url or "") + links.share(self.config, tab, self._made(tab, fields), **fields),
            **asdict(settings),
        }

    def _part_files(
        self, stem: str, explanation: Explanation, scores: Mapping[str, float | None], inputs: Mapping[str, Any]
    ) -> dict[str, str | bytes]:
        """One explanation's files: JSON (with ``inputs``), per-token CSV, PNG and SVG highlights."""
        return {
            f"{stem}.json": render.to_json(explanation, metrics=dict(scores), inputs=dict(inputs)),
            f"{stem}.csv": render.to_csv(explanation),
            **{f"{stem}.{fmt}": render.highlight_image(explanation, fmt) for fmt in render.IMAGE_FORMATS},
        }

    @readable_errors
    def export(self, **fields: Any) -> tuple[list[str], str]:
        """Files for the current sentiment explanation: JSON, CSV, standalone HTML, model-card snippets, images.

        The Markdown card embeds the PNG (card renderers may strip the HTML's inline colours) and links back
        to the demo with this example's share link: a full address on a Space (``SPACE_HOST``), else relative.
        """
        settings = self.config.settings(fields)
        result = self._sentiment(fields, settings)
        e, scores = result.explanation, result.scores[""]
        inputs = self._export_inputs("sentiment", fields, settings)
        link = inputs["link"]
        stem = f"udig-{e.method}"
        image = f"{stem}.png"
        parts = self._part_files(stem, e, scores, inputs)
        files: dict[str, str | bytes] = {
            f"{stem}.json": parts.pop(f"{stem}.json"),
            f"{stem}.csv": parts.pop(f"{stem}.csv"),
            f"{stem}.html": render.standalone_html(e, metrics=scores),
            f"{stem}-model-card.md": render.model_card(e, metrics=scores, fmt="markdown", image=image, link=link),
            f"{stem}-model-card.html": render.model_card(e, metrics=scores, fmt="html", image=image, link=link),
            **parts,
        }
        return self._write_export(files), files[f"{stem}-model-card.md"]

    @readable_errors
    def export_qa(self, **fields: Any) -> list[str]:
        """Files for the current QA explanation: JSON, CSV, PNG and SVG for its start and for its end."""
        settings = self.config.settings(fields)
        texts = _texts(self.config.limits, fields, TAB_INPUTS["qa"], [])
        result = self.service.compute("qa", fields.get("model"), texts, settings, report=self.show_stage)
        inputs = self._export_inputs("qa", fields, settings)
        answer = {"answer": result.explanation.answer}
        files: dict[str, str | bytes] = {}
        for part, explanation in result.explanation.parts.items():
            files |= self._part_files(
                f"udig-qa-{explanation.method}-{part}", explanation, result.scores[part], {**inputs, **answer}
            )
        return self._write_export(files)

    @readable_errors
    def export_compare(self, **fields: Any) -> list[str]:
        """Files for the current comparison: JSON, CSV, PNG and SVG per method."""
        return self._export_methods("compare", fields, PATH_METHODS)

    @readable_errors
    def export_path(self, **fields: Any) -> list[str]:
        """Files for the current path view: JSON (with each token's anchors), CSV, PNG and SVG per method."""
        return self._export_methods("path", fields, views.JOINT_METHODS)

    def _export_methods(self, tab: str, fields: Fields, methods: tuple[str, ...]) -> list[str]:
        """:meth:`export_compare` and :meth:`export_path`: each method's files, with its own settings."""
        results, _ = self._path_methods(fields, methods)
        base = self._export_inputs(tab, fields, self.config.settings(fields))
        files: dict[str, str | bytes] = {}
        for method, result in results.items():
            settings = self.config.settings({**fields, "method": method, "baseline": None})
            inputs = {**base, **asdict(settings)}
            files |= self._part_files(f"udig-{tab}-{method}", result.explanation, result.scores[""], inputs)
        return self._write_export(files)

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
