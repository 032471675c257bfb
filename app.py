"""udig demo: explain a sentiment or question-answering model with IG, DIG and UDIG.

Layout and wiring only; the handlers, views and configuration live in :mod:`udig.app`. Run ``python app.py``
(offline on udig's built-in sentiment model) and open http://127.0.0.1:7860.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Waiting OpenMP threads sleep instead of spinning: on a small shared CPU (2 cores, Spaces cpu-basic) the
# default busy-wait made attributions 5-18x slower whenever another process held a core (measured).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from collections.abc import MutableMapping  # noqa: E402
from pathlib import Path  # noqa: E402


def keep_caches_in_persistent_storage(environ: MutableMapping[str, str] | None = None) -> Path | None:
    """Where a Space has persistent storage (``/data``, or the folder in UDIG_PERSISTENT_DIR) that this
    process may write, keep there what a start otherwise redoes: numba's compiled kernels (NUMBA_CACHE_DIR)
    and huggingface_hub's assets, DIG's graphs among them (HF_ASSETS_CACHE). Variables already set win. It
    runs before numba and huggingface_hub are imported, since they read these variables once. ``environ``:
    the process's environment unless a test gives another."""
    environ = os.environ if environ is None else environ
    root = Path(environ.get("UDIG_PERSISTENT_DIR") or "/data")
    if not (root.is_dir() and os.access(root, os.W_OK)):
        return None
    environ.setdefault("NUMBA_CACHE_DIR", str(root / "udig" / "numba"))
    environ.setdefault("HF_ASSETS_CACHE", str(root / "udig" / "assets"))
    return root


WARMUP_OFF = frozenset({"0", "false", "no", "off"})  # UDIG_WARMUP's words for off (udig.app.config reads the same)


def start_compiling_kernels(environ: MutableMapping[str, str] | None = None) -> subprocess.Popen | None:
    """Compile udig's kernels in another process (``python -m udig.vocab``) from the very start, so that numba's
    compilation (10-15 s from an empty cache) runs on another core while this process imports Gradio, loads the
    model and starts serving; the warm-up then loads the kernels from numba's disk cache
    (:meth:`Demo.warm_up <udig.app.handlers.Demo.warm_up>`). None where ``UDIG_WARMUP`` turns the warm-up off."""
    environ = os.environ if environ is None else environ
    if environ.get("UDIG_WARMUP", "").strip().lower() in WARMUP_OFF:
        return None
    command = [sys.executable, "-m", "udig.vocab"]
    return subprocess.Popen(command, cwd=Path(__file__).parent, env=dict(environ), stdout=subprocess.PIPE, text=True)


keep_caches_in_persistent_storage()
KERNEL_COMPILER = start_compiling_kernels() if __name__ == "__main__" else None  # `python app.py`, as Spaces runs it

import gradio as gr  # noqa: E402

from udig.app import PAPER_DEFAULT, AppConfig, Demo, qa_notice  # noqa: E402
from udig.app.config import MAX_MODEL_CHARS, hub_usable  # noqa: E402
from udig.app.content import (  # noqa: E402
    ABOUT,
    CANDIDATE_LABELS,
    EXAMPLES,
    INTRO,
    OWN_MODEL_HELP,
    OWN_MODEL_OFFLINE,
    QA_EXAMPLE,
    RULE_LABELS,
    STRATEGY_LABELS,
    TITLE,
)
from udig.app.evaluation import about_markdown, evaluated_name  # noqa: E402
from udig.app.handlers import ReadableBlocks, positional  # noqa: E402
from udig.app.links import COPY_LINK_JS, load_values  # noqa: E402
from udig.app.memory import hand_back_freed_memory  # noqa: E402
from udig.app.service import DEMO_LIMITS  # noqa: E402
from udig.app.views import METHOD_COLOURS, METHOD_NAMES, method_title, path_legend_html  # noqa: E402
from udig.app.waiting import install as install_queue_rules  # noqa: E402
from udig.integrate import SEGMENT_RULES  # noqa: E402
from udig.settings import BASELINES  # noqa: E402

ROOT = Path(__file__).resolve().parent
ATTRIBUTION_QUEUES = ("classifier", "qa")  # concurrency ids of the attribution events: places per visitor count these
CTRL_ENTER_RUNS_JS = """() => document.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || event.defaultPrevented) return;
  if (event.target.tagName !== "TEXTAREA") return;
  const run = event.target.closest("[role=tabpanel]")?.querySelector(".udig-run");
  if (run && !run.disabled) { event.preventDefault(); run.click(); }
})"""  # Ctrl+Enter (⌘+Enter) in a multi-line box presses its tab's run button; one-line boxes run on Enter
STALE_NOTE = "⚠️ Changed since this result: run again to update it."
PHONE_CSS = """@media (max-width: 640px) {
  #compare-table :is(th, [role=gridcell]) * { font-family: var(--font); font-size: 0.8rem; }
  #compare-table :is(th, [role=gridcell]) .cell-wrap { padding-left: 4px; padding-right: 4px; }
}"""  # the Compare table on a phone as assets/style.css sets the faithfulness tables: every column on screen
MAX_UPLOAD = "1mb"  # the page uploads nothing; Gradio's upload route still exists, so it takes no more than this


def _settings(demo: Demo, *, method: bool = True, baseline: bool = True) -> dict[str, gr.components.Component]:
    """Method, strategy and the Advanced accordion; returns the components by field name."""
    bounds, defaults = demo.config.limits.bounds(), demo.config.defaults
    controls: dict[str, gr.components.Component] = {}

    def slider(name: str, label: str, info: str) -> gr.Slider:
        low, high = bounds.range(name)
        return gr.Slider(low, high, value=getattr(defaults, name), step=1, label=label, info=info)

    with gr.Row():
        if method:
            controls["method"] = gr.Radio(
                [(title, name) for name, title in METHOD_NAMES.items()], value=defaults.method, label="Method"
            )
        controls["strategy"] = gr.Radio(
            [(label, strategy) for strategy, label in STRATEGY_LABELS.items()],
            value=defaults.strategy,
            label="Anchor strategy (DIG, UDIG)",
        )
    with gr.Accordion("Advanced", open=False):
        with gr.Row():
            controls["steps"] = slider("steps", "Steps", "IG: Riemann steps; DIG/UDIG: anchors m per word")
            controls["factor"] = slider("factor", "Upscaling factor", "DIG/UDIG: 2^factor·(m+1)+1 points")
            controls["nbrs"] = slider("nbrs", "Neighbours", "UDIG: candidate words per reference point")
        with gr.Row():
            if baseline:
                controls["baseline"] = gr.Dropdown(
                    [PAPER_DEFAULT, *BASELINES],
                    value=PAPER_DEFAULT,
                    allow_custom_value=True,
                    label="Baseline token",
                    info="paper default: [PAD] for IG/DIG, [MASK] for UDIG; or type a token",
                )
            controls["candidates"] = gr.Radio(
                [(label, rule) for rule, label in CANDIDATE_LABELS.items()],
                value=defaults.candidates,
                label="Anchor candidates",
            )
        rules = RULE_LABELS if method else {k: v for k, v in RULE_LABELS.items() if k in SEGMENT_RULES}  # DIG/UDIG too
        controls["rule"] = gr.Radio(
            [(label, rule) for rule, label in rules.items()],
            value=defaults.rule,
            label="Integration rule",
            info="where each path segment's gradient is taken; the trapezoid and midpoint add up more closely",
        )
        if method:
            controls["sequential"] = gr.Checkbox(
                value=defaults.sequential,
                label="Sequential (DIG, UDIG; SIG always is)",
                info="each word moves along its own path while the others stay as typed: one path per word",
            )
    return controls


def _example_rows(fields: dict[str, gr.components.Component]) -> list[list]:
    """The sentiment examples as values of the tab's ``fields``, in their order: each control as it starts."""
    return [[text if name == "text" else control.value for name, control in fields.items()] for text in EXAMPLES]


def _text_box(value: str, config: AppConfig, **options) -> gr.Textbox:
    """A tab's text: one line that grows with the text, so that Enter runs (Shift+Enter starts a new line)."""
    return gr.Textbox(value, lines=1, max_lines=6, label="Text", max_length=config.limits.max_chars, **options)


def _run_button(label: str, elem_id: str) -> gr.Button:
    """A tab's run button: what Enter in a one-line box, and Ctrl+Enter in any box of its tab, press."""
    return gr.Button(label, variant="primary", elem_id=elem_id, elem_classes="udig-run")


def _highlight(label: str, elem_id: str) -> gr.HTML:
    """Highlighted words (:func:`udig.render.highlight_html`: each word's value in its title and for screen
    readers), styled alike in every pane by the ``udig-highlight`` class."""
    return gr.HTML(
        label=label,
        show_label=True,
        container=True,
        js_on_load=None,
        elem_id=elem_id,
        elem_classes="udig-highlight",
    )


def _model_picker(demo: Demo, choices: tuple[str, ...], label: str) -> gr.Dropdown:
    info = "or a Hub model of your own (owner/name): see below" if demo.config.allow_any_model else None
    return gr.Dropdown(
        list(choices), value=choices[0], label=label, allow_custom_value=demo.config.allow_any_model, info=info
    )


def _own_model(demo: Demo, tab: str, picker: gr.Dropdown, fn, api_name: str) -> None:
    """The field that loads a visitor's Hub model, vetted before any download, into ``picker`` (only where
    UDIG_ALLOW_ANY_MODEL is on). Offline it says so up front; loads run one at a time."""
    if not demo.config.allow_any_model:
        return
    with gr.Accordion("Your own model from the Hugging Face Hub", open=False, elem_id=f"{tab}-own-model"):
        with gr.Row():
            name = gr.Textbox(
                label="Hub model", placeholder="owner/name", max_length=MAX_MODEL_CHARS, scale=3, elem_id=f"{tab}-hub"
            )
            revision = gr.Textbox(label="Revision (optional)", placeholder="branch, tag or commit", scale=2)
        help_text = OWN_MODEL_HELP.format(millions=DEMO_LIMITS.max_parameters // 10**6)
        gr.Markdown(help_text if hub_usable() else OWN_MODEL_OFFLINE, elem_id=f"{tab}-hub-help")
        button = gr.Button("Load the model", size="sm", elem_id=f"{tab}-hub-load")
        status = gr.Markdown(elem_id=f"{tab}-hub-status")
    gr.on(
        [button.click, name.submit, revision.submit],
        fn,
        inputs_kwargs={"name": name, "revision": revision},
        outputs=[picker, status],
        api_name=api_name,
        concurrency_id="hub-load",  # one load at a time; the next waits in the queue
        concurrency_limit=1,
        preprocess=False,
    )


def _stale_note(elem_id: str) -> gr.Markdown:
    """Where a tab says that a control changed since its result was computed (:func:`_mark_stale`)."""
    return gr.Markdown(elem_id=elem_id, elem_classes="udig-stale")


def _mark_stale(fields: dict[str, gr.components.Component], result: gr.components.Component, note: gr.Markdown):
    """In the browser only: a change of any of ``fields`` after a run shows :data:`STALE_NOTE` (nothing before the
    first run, while ``result`` is empty); the next result, as it arrives, clears it."""
    gr.on(
        [control.change for control in fields.values()],
        None,
        result,
        note,
        js=f"(result) => result ? {json.dumps(STALE_NOTE)} : ''",
        show_progress="hidden",
        queue=False,
    )
    result.change(None, None, note, js="() => ''", show_progress="hidden", queue=False)


def _share_row(demo: Demo, fn, fields: dict, api_name: str) -> None:
    with gr.Row():
        button = gr.Button("🔗 Copy link", size="sm", scale=0, min_width=130)
        link = gr.Textbox(
            label="Link",
            show_label=False,
            placeholder="a link that reopens this explanation",
            buttons=["copy"],
            scale=4,
        )
    button.click(
        fn, inputs_kwargs=fields, outputs=link, api_name=api_name, concurrency_limit=None, preprocess=False
    ).then(None, link, link, js=COPY_LINK_JS)


def _export_row(demo: Demo, fn, fields: dict, api_name: str, queue: str) -> None:
    """A tab's export: JSON (inputs, settings, model revision, udig version, share link), CSV, PNG and SVG."""
    with gr.Row():
        button = gr.Button("Export JSON, CSV and images", size="sm", scale=0, min_width=130)
        files = gr.File(  # shown by the first export: empty, it stood a screen tall under the results
            file_count="multiple",
            label="Downloads",
            scale=4,
            visible=False,
            elem_id=f"{api_name.removeprefix('export_')}-downloads",
        )
    button.click(
        fn,
        inputs_kwargs=fields,
        outputs=files,
        api_name=api_name,
        concurrency_id=queue,
        concurrency_limit=demo.config.concurrency,
        preprocess=False,
    ).success(lambda: gr.File(visible=True), None, files, queue=False, api_visibility="private")


def build_demo(config: AppConfig | None = None, demo: Demo | None = None) -> gr.Blocks:
    """The app; ``config``/``demo`` let tests and deployments choose the models.

    Every handler gets its tab's fields by name (``inputs_kwargs``: the API's inputs are the fields in the
    page's order) and as sent (``preprocess=False``), and checks them itself, so that an API call with a wrong
    value gets the same readable message as the UI, not Gradio's internal one.
    """
    demo = demo or Demo(config)
    config = demo.config
    attribution = dict(concurrency_limit=config.concurrency, preprocess=False)
    layout: list[tuple[str, str]] = []
    components: list[gr.components.Component] = []

    def remember(tab: str, fields: dict) -> dict:
        for name, component in fields.items():
            layout.append((tab, name))
            components.append(component)
        return fields

    with ReadableBlocks(title=TITLE, delete_cache=(3600, 3600)) as blocks:
        gr.Markdown(INTRO)
        link_notice = gr.Markdown(visible=False, elem_id="link-notice")
        link_made = gr.Textbox(visible="hidden")  # what made an opened link, for its run (links.link_value)
        runs = {tab: gr.Textbox(visible="hidden") for tab in ("sentiment", "qa", "compare", "path")}  # a link's run
        with gr.Tabs(overflow_behavior="wrap") as tabs:  # every tab's name on a phone, never a bare "⋯" menu
            # ---------------------------------------------------------------- Sentiment
            with gr.Tab("Sentiment", id="sentiment"):
                with gr.Row():
                    with gr.Column(scale=3):
                        s = {"text": _text_box(EXAMPLES[0], config, elem_id="sentiment-text")}
                        s["model"] = _model_picker(demo, config.sentiment_models, "Sentiment model")
                        _own_model(demo, "sentiment", s["model"], demo.load_sentiment_model, "load_sentiment_model")
                        s |= _settings(demo)
                        s_cost = gr.Markdown(elem_id="sentiment-cost")
                        s_button = _run_button("Explain", "sentiment-explain")
                        s_stale = _stale_note("sentiment-stale")
                    with gr.Column(scale=2):
                        s_label = gr.Label(label="Prediction", num_top_classes=5, elem_id="sentiment-label")
                        s_runtime = gr.Markdown(label="Runtime and notices", elem_id="sentiment-runtime")
                s_highlight = _highlight(
                    "Word attributions (red: toward the predicted label, blue: away from it)", "sentiment-highlight"
                )
                s_legend = gr.HTML(label="Colour legend and how to read the scores", elem_id="sentiment-legend")
                s_scores = gr.Dataframe(
                    label="Faithfulness",
                    wrap=True,
                    column_widths=["28%", "19%", "17%", "36%"],  # score, value, better, meaning: fits a phone
                    max_height=1000,  # all six rows, no scroll box inside the page
                    elem_id="sentiment-scores",
                )
                with gr.Accordion("Per-token table", open=False):
                    s_tokens = gr.Dataframe(
                        label="Per-token table", show_label=False, wrap=True, elem_id="sentiment-tokens"
                    )
                s_inputs = remember("sentiment", s)
                s_outputs = [s_label, s_highlight, s_legend, s_tokens, s_scores, s_runtime]
                gr.Examples(
                    _example_rows(s_inputs),
                    list(s_inputs.values()),
                    s_outputs,
                    fn=positional(demo.explain, list(s_inputs)),
                    cache_examples=config.cache_examples,
                    cache_mode="lazy",
                    visible_columns=[0],
                )
                with gr.Accordion("Share and export", open=False):
                    _share_row(demo, demo.share_sentiment, s_inputs, "share_sentiment")
                    e_button = gr.Button("Export JSON, CSV, HTML and model-card snippets", size="sm")
                    e_files = gr.File(file_count="multiple", label="Downloads")
                    e_card = gr.Code(language="markdown", label="Model-card snippet (Markdown)")
                gr.on(
                    [s_button.click, s["text"].submit],
                    demo.explain,
                    inputs_kwargs=s_inputs,
                    outputs=s_outputs,
                    api_name="explain",
                    concurrency_id="classifier",
                    **attribution,
                )
                e_button.click(
                    demo.export,
                    inputs_kwargs=s_inputs,
                    outputs=[e_files, e_card],
                    api_name="export",
                    concurrency_id="classifier",
                    **attribution,
                )
                s_costed = {name: s[name] for name in ("text", "model", "method", "steps", "factor", "sequential")}
                gr.on(
                    [control.change for control in s_costed.values()],
                    demo.cost,
                    inputs_kwargs=s_costed,
                    outputs=s_cost,
                    api_name="cost",
                    trigger_mode="always_last",
                    show_progress="hidden",
                    queue=False,
                    preprocess=False,
                ).then(  # a tokenizer count: never waits behind a run, nor delays one
                    demo.run_button, s_cost, s_button, queue=False, show_progress="hidden", api_visibility="private"
                )
                _mark_stale(s_inputs, s_runtime, s_stale)

            # ---------------------------------------------------------------- Question answering
            with gr.Tab("Question answering", id="qa"):
                notice = qa_notice(config)
                gr.Markdown(notice, visible=bool(notice), elem_id="qa-notice")
                with gr.Row():
                    with gr.Column(scale=3):
                        q = {
                            "question": gr.Textbox(
                                QA_EXAMPLE[0], label="Question", max_length=config.limits.max_question_chars
                            ),
                            "context": gr.Textbox(
                                QA_EXAMPLE[1],
                                lines=5,
                                label="Context",
                                info="Ctrl+Enter (⌘+Enter) runs",
                                max_length=config.limits.max_chars,
                            ),
                        }
                        q["model"] = _model_picker(demo, config.qa_models, "QA model")
                        _own_model(demo, "qa", q["model"], demo.load_qa_model, "load_qa_model")
                        q |= _settings(demo)
                        q_cost = gr.Markdown(elem_id="qa-cost")
                        q_button = _run_button("Explain", "qa-explain")
                        q_stale = _stale_note("qa-stale")
                    with gr.Column(scale=2):
                        q_answer = gr.Markdown(label="Answer", elem_id="qa-answer")
                        q_runtime = gr.Markdown(label="Runtime and notices")
                q_start = _highlight("Start logit attributions", "qa-start")
                q_end = _highlight("End logit attributions", "qa-end")
                q_legend = gr.HTML(label="Colour legend")
                q_scores = gr.Dataframe(
                    label="Faithfulness",
                    wrap=True,
                    column_widths=["22%", "17%", "17%", "15%", "29%"],  # score, start, end, better, meaning
                    max_height=1000,
                    elem_id="qa-scores",
                )
                q_inputs = remember("qa", q)
                q_outputs = [q_answer, q_start, q_end, q_legend, q_scores, q_runtime]
                _share_row(demo, demo.share_qa, q_inputs, "share_qa")
                _export_row(demo, demo.export_qa, q_inputs, "export_qa", "qa")
                gr.on(
                    [q_button.click, q["question"].submit],
                    demo.explain_qa,
                    inputs_kwargs=q_inputs,
                    outputs=q_outputs,
                    api_name="explain_qa",
                    concurrency_id="qa",
                    **attribution,
                )
                q_costed = {
                    name: q[name]
                    for name in ("question", "context", "model", "method", "steps", "factor", "sequential")
                }
                gr.on(
                    [control.change for control in q_costed.values()],
                    demo.cost_qa,
                    inputs_kwargs=q_costed,
                    outputs=q_cost,
                    api_name="cost_qa",
                    trigger_mode="always_last",
                    show_progress="hidden",
                    queue=False,
                    preprocess=False,
                ).then(demo.run_button, q_cost, q_button, queue=False, show_progress="hidden", api_visibility="private")
                _mark_stale(q_inputs, q_runtime, q_stale)

            # ---------------------------------------------------------------- Compare methods
            with gr.Tab("Compare methods", id="compare"):
                c = {"text": _text_box(EXAMPLES[2], config)}
                c["model"] = _model_picker(demo, config.sentiment_models, "Sentiment model")
                c |= _settings(demo, method=False, baseline=False)
                *others, last = METHOD_NAMES.values()
                c_cost = gr.Markdown(elem_id="compare-cost")
                c_button = _run_button(f"Compare {', '.join(others)} and {last}", "compare-run")
                c_stale = _stale_note("compare-stale")
                c_summary = gr.Markdown(label="Summary", elem_id="compare-summary")
                c_highlights = []
                with gr.Row():  # side by side where they fit, one under another on a phone
                    for name, title in METHOD_NAMES.items():
                        with gr.Column(min_width=160):
                            c_highlights.append(_highlight(title, f"compare-{name}"))
                c_legend = gr.HTML(label="Colour legend and how to read the scores", elem_id="compare-legend")
                c_table = gr.Dataframe(
                    label="Scores (★ best per score; ↓ lower is better, ↑ higher, → 0 closest to 0)",
                    wrap=True,
                    column_widths=["28%", "18%", "18%", "18%", "18%"],  # score, then each method: fits a phone
                    max_height=1000,
                    elem_id="compare-table",
                )
                c_bars = gr.HTML(
                    label="Scores by method (which way is better: beside each score's name)",
                    show_label=True,
                    container=True,
                    elem_id="compare-bars",
                    elem_classes="udig-highlight",  # as the highlight panes: the label above, not over, the bars
                )
                c_inputs = remember("compare", c)
                c_outputs = [*c_highlights, c_legend, c_table, c_bars, c_summary]
                _share_row(demo, demo.share_compare, c_inputs, "share_compare")
                _export_row(demo, demo.export_compare, c_inputs, "export_compare", "classifier")
                gr.on(
                    [c_button.click, c["text"].submit],
                    demo.compare,
                    inputs_kwargs=c_inputs,
                    outputs=c_outputs,
                    api_name="compare",
                    concurrency_id="classifier",
                    **attribution,
                )
                _mark_stale(c_inputs, c_summary, c_stale)
                c_costed = {name: c[name] for name in ("text", "model", "steps")}  # SIG's line, as IG's steps
                gr.on(
                    [control.change for control in c_costed.values()],
                    lambda **fields: demo.cost(**fields, method="sig", factor=0),
                    inputs_kwargs=c_costed,
                    outputs=c_cost,
                    trigger_mode="always_last",
                    show_progress="hidden",
                    queue=False,
                    preprocess=False,
                    api_visibility="private",
                )

            # ---------------------------------------------------------------- See the path
            with gr.Tab("See the path", id="path"):
                gr.Markdown(
                    "Pick a word: its path from the input word to the baseline, for DIG and UDIG, and how far "
                    "each method's path points (where gradients are taken) and anchor words stay from real words. "
                    "A *sequential* method (SIG, or DIG/UDIG "
                    "with Sequential ticked) moves each word along this same path alone, every other word "
                    "staying as typed."
                )
                p = {"text": _text_box(EXAMPLES[0], config)}
                p["model"] = _model_picker(demo, config.sentiment_models, "Sentiment model")
                p["word"] = gr.Dropdown(
                    [],
                    value=None,
                    allow_custom_value=True,
                    label="Word",
                    info="empty: the most influential word (by UDIG)",
                )
                p |= _settings(demo, method=False, baseline=False)
                p_button = _run_button("Show the path", "path-run")
                p_stale = _stale_note("path-stale")
                p_summary = gr.Markdown(label="Summary", elem_id="path-summary")
                with gr.Row():
                    p_anchors = gr.Dataframe(
                        label="Anchors, input word → baseline",
                        wrap=True,
                        column_widths=["28%", "36%", "36%"],  # step, DIG, UDIG: both methods on a phone
                        elem_id="path-anchors",
                    )
                    with gr.Column():
                        p_plot = gr.LinePlot(
                            x="position",
                            y="distance",
                            color="method",
                            color_map=METHOD_COLOURS,
                            label="Distance to the nearest word",  # one line on a phone: the chart keeps its axis
                            color_title="series",  # its legend is cut off by Gradio: path_legend_html says it
                            x_title="0 = input word → 1 = baseline",
                            y_title="distance",
                            height=420,
                        )
                        gr.HTML(path_legend_html(), elem_id="path-legend")
                p_inputs = remember("path", p)
                p_outputs = [p_summary, p_anchors, p_plot]
                _share_row(demo, demo.share_path, p_inputs, "share_path")
                _export_row(demo, demo.export_path, p_inputs, "export_path", "classifier")
                gr.on(
                    [p_button.click, p["text"].submit],
                    demo.path,
                    inputs_kwargs=p_inputs,
                    outputs=p_outputs,
                    api_name="path",
                    concurrency_id="classifier",
                    **attribution,
                )
                gr.on(
                    [p["text"].change, p["model"].change],
                    demo.words,
                    [p["text"], p["model"]],
                    p["word"],
                    api_name="words",
                    trigger_mode="always_last",
                    show_progress="hidden",
                    concurrency_limit=None,
                    preprocess=False,
                )
                gr.on(
                    [p["text"].input, p["model"].input], None, None, p["word"], js="() => ''"
                )  # a user's edit: pick again
                _mark_stale(p_inputs, p_summary, p_stale)

            with gr.Tab("About", id="about"):
                gr.Markdown(ABOUT)
                evaluated = {m: demo.config.settings({"method": m}) for m in METHOD_NAMES}
                gr.Markdown(
                    about_markdown({evaluated_name(s): method_title(s) for s in evaluated.values()}),
                    elem_id="about-evaluation",
                )

        # ---------------------------------------------------------------- shared links
        # Restoring is not queued, and each tab's run waits on its hidden trigger, which only a link to that tab
        # changes: a plain visit costs the queue nothing, and a link is restored even when the queue is full.
        def on_load(request: gr.Request):
            return load_values(config, layout, list(runs), dict(request.query_params), demo.tokenizer)

        blocks.load(
            on_load,
            None,
            [tabs, link_notice, *components, *runs.values(), link_made],
            queue=False,
            api_visibility="private",
        )
        blocks.load(None, js=CTRL_ENTER_RUNS_JS)  # in the browser only
        for tab, inputs, outputs in (
            ("sentiment", s_inputs, s_outputs),
            ("qa", q_inputs, q_outputs),
            ("compare", c_inputs, c_outputs),
            ("path", p_inputs, p_outputs),
        ):
            runs[tab].change(  # the link's run, then what the page says about the link (demo.open_link)
                demo.link_run(tab),
                inputs_kwargs={**inputs, "link": link_made},
                outputs=[*outputs, link_notice],
                api_visibility="private",
                concurrency_id="qa" if tab == "qa" else "classifier",
                **attribution,
            )
    blocks.queue(default_concurrency_limit=config.concurrency, max_size=config.queue_size)
    install_queue_rules(blocks, demo.service.start_up, config.places_per_client, ATTRIBUTION_QUEUES)
    return blocks


def launch_kwargs(config: AppConfig | None = None) -> dict:
    """Where and how to serve: 127.0.0.1:7860 unless the configuration says otherwise (Spaces sets 0.0.0.0)."""
    config = config or AppConfig.from_env()
    return dict(
        server_name=config.server_name,
        server_port=config.server_port,
        css_paths=[ROOT / "assets" / "style.css"],
        css=PHONE_CSS,
        theme=gr.themes.Soft(),
        max_file_size=MAX_UPLOAD,
    )


def main() -> None:
    """Serve the app. Unless UDIG_WARMUP=0, what a first request needs is prepared meanwhile, in the background
    (:meth:`Demo.start_warm_up <udig.app.handlers.Demo.start_warm_up>`); freed memory goes back to the system."""
    hand_back_freed_memory()
    demo = Demo()
    demo.start_warm_up(KERNEL_COMPILER)
    build_demo(demo=demo).launch(**launch_kwargs(demo.config))


if __name__ == "__main__":
    main()
