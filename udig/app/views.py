"""What each tab shows, as plain values for its components: pure functions of computed results.

No Gradio event logic here: :mod:`udig.app.handlers` computes the results, these functions turn them into
Markdown, highlight HTML and data frames, with every user-typed string shown as text (:func:`literal`, and
:func:`udig.render.highlight_html`'s escaping).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from .. import render
from ..explanation import Explanation, QAExplanation
from ..methods import PATH_METHODS, REGISTRY
from ..metrics import SCORES
from ..vocab import VocabIndex
from .content import QA_MEANINGS, RULE_LABELS
from .service import Result

METHOD_NAMES = {name: REGISTRY[name].title for name in PATH_METHODS}  # "ig" -> "IG", ...
JOINT_METHODS = tuple(
    name for name in PATH_METHODS if not REGISTRY[name].fixed.get("sequential")
)  # SIG reuses IG's line
_COLOURS = {"ig": "#64748b", "dig": "#f59e0b", "udig": "#6366f1", "sig": "#10b981"}  # grey, amber, indigo, green
METHOD_COLOURS = {METHOD_NAMES[name]: colour for name, colour in _COLOURS.items()}  # by title, as the plots label them
BAR_ORDER = [f"{score.short} {title}" for score in SCORES for title in METHOD_NAMES.values()]
PATH_COLUMNS = ["position", "distance", "method"]


def literal(text: Any) -> str:
    """User text for a Markdown component, shown character for character: every character but letters, digits
    and spaces becomes a numeric character reference, which Markdown neither parses as syntax nor turns into a
    link (backslash escapes leave ``https://...`` a live link, with the backslashes showing)."""
    return "".join(
        c if c.isalnum() or c == " " else f"&#{ord(c)};" for c in str(text).replace("\r", " ").replace("\n", " ")
    )


def notices_markdown(notices: Iterable[str]) -> str:
    """One warning line per notice, escaped (notices quote user input)."""
    return "  \n".join(f"⚠️ {literal(notice)}" for notice in notices)


def runtime(result: Result) -> str:
    """The method, path size, wall time with its parts, the completeness error, then every notice."""
    e, timings = result.main, result.main.timings
    words = len(e.tokens) - sum(e.special_mask)
    facts = [
        f"**{METHOD_NAMES[e.method]}**" + (f" ({e.strategy})" if e.strategy else ""),
        f"{e.settings.get('n_points')} path points"
        + (f" × {words} words (sequential)" if e.settings.get("sequential") else "")
        + f", {RULE_LABELS.get(e.settings.get('rule'), 'no path')}, "
        f"{e.settings.get('n_evaluations')} gradient evaluations",
        f"{len(e.tokens)} tokens",
        f"baseline {literal(e.baseline_token)}",
        ("remembered from an identical recent request, which took " if result.remembered else "")
        + f"**{result.seconds:.2f} s** (path {timings.get('path', 0):.2f} s, "
        f"gradients {timings.get('gradients', 0):.2f} s, scores {timings.get('scores', 0):.2f} s)",
        f"completeness error Δ = {result.explanation.delta:+.4f}" + _relative(result.explanation),
    ]
    warnings = list(e.warnings)
    if e.truncated and not any("truncated" in w for w in warnings):
        warnings.append("input truncated to the token limit")
    notices = notices_markdown([*result.notices, *warnings])
    return " · ".join(facts) + (f"  \n{notices}" if notices else "")


def _relative(explanation) -> str:
    """Δ as a share of F(x) - F(x'), per part (QA: start, end); empty where it is not defined."""
    shares = [part.relative_delta for part in explanation.parts.values() if part.relative_delta is not None]
    return f" ({' / '.join(f'{share:.0%}' for share in shares)} of F(x) − F(x′))" if shares else ""


def sentiment(result: Result) -> tuple:
    """Sentiment tab: label, per-word highlight, legend, token table, scores, runtime."""
    e = result.explanation
    return (
        render.label_value(e, result.labels),
        render.highlight_html(e),
        render.legend_html(e.target_label),
        pd.DataFrame(render.token_rows(e), columns=render.TOKEN_HEADERS),
        pd.DataFrame(render.metric_rows(result.scores[""]), columns=["score", "value", "better", "meaning"]),
        runtime(result),
    )


def qa(result: Result) -> tuple:
    """QA tab: answer, start and end highlights, legend, scores of both, runtime."""
    answer: QAExplanation = result.explanation
    start, end = answer.answer_span
    summary = (
        f"**Answer:** {literal(answer.answer) or '(empty span)'}  \n"
        f"<small>characters {start}–{end} of the context · "
        f"start token {answer.start.target}, end token {answer.end.target} · "
        f"p(start) = {answer.start.prediction:.3f}, p(end) = {answer.end.prediction:.3f}</small>"
    )
    scores = pd.DataFrame(
        [
            [
                s.name,
                _round(result.scores["start"][s.key]),
                _round(result.scores["end"][s.key]),
                s.better,
                QA_MEANINGS.get(s.key, s.meaning),
            ]
            for s in SCORES
        ],
        columns=["score", "start logit", "end logit", "better", "meaning"],
    )
    legend = render.legend_html("the predicted start / end position") + (
        "<small>QA scores replace the top tokens by [MASK] (positions stay comparable) "
        "and use the softmax over positions.</small>"
    )
    return (
        summary,
        render.highlight_html(answer.start),
        render.highlight_html(answer.end),
        legend,
        scores,
        runtime(result),
    )


def comparison(results: Mapping[str, Result], notices: Sequence[str] = ()) -> tuple:
    """Compare tab, for results by method: one highlight per method of :data:`METHOD_NAMES` on a shared scale (empty
    for a method left out, ``notices`` saying why), legend, table, bars, summary."""
    explanations = [r.explanation for r in results.values()]
    scale = render.shared_scale(explanations)
    highlights = [
        render.highlight_html(results[m].explanation, scale=scale) if m in results else "" for m in METHOD_NAMES
    ]
    scores = {method: r.scores[""] for method, r in results.items()}
    first = explanations[0]
    summary = (
        f"Explained label **{literal(first.target_label)}** (p = {first.prediction:.3f}). "
        "One colour scale for all methods (the largest |word score| among them). "
        "★ marks the best method per score. "
        + " · ".join(
            f"{METHOD_NAMES[m]} {r.seconds:.2f} s" + (" (remembered)" if r.remembered else "")
            for m, r in results.items()
        )
    )
    notices = [*notices, *sorted({n for r in results.values() for n in (*r.notices, *r.explanation.warnings)})]
    if notices:
        summary += "\n\n" + notices_markdown(notices)
    table = _score_table(scores, {m: r.seconds for m, r in results.items()})
    return (*highlights, render.legend_html(first.target_label), table, _score_bars(scores), summary)


def _score_table(scores: Mapping[str, Mapping[str, float | None]], seconds: Mapping[str, float]) -> pd.DataFrame:
    """One row per method, ★ on the best value of each score."""
    best = render.winners(dict(scores))
    rows = [
        [
            METHOD_NAMES[method],
            *(
                "—"
                if values[s.key] is None
                else f"{values[s.key]:.4f}" + (" ★" if method in best.get(s.key, []) else "")
                for s in SCORES
            ),
            f"{seconds[method]:.2f}",
        ]
        for method, values in scores.items()
    ]
    return pd.DataFrame(rows, columns=["method", *(f"{s.name} ({s.better})" for s in SCORES), "seconds"])


def _score_bars(scores: Mapping[str, Mapping[str, float | None]]) -> pd.DataFrame:
    """The bar chart's rows: one per (score, method), labelled as in :data:`BAR_ORDER`."""
    rows = [
        {"score": f"{s.short} {METHOD_NAMES[method]}", "method": METHOD_NAMES[method], "value": float(values[s.key])}
        for s in SCORES
        for method, values in scores.items()
        if values[s.key] is not None
    ]
    return pd.DataFrame(rows, columns=["score", "method", "value"])


def path(results: Mapping[str, Result], word: render.Word, vocab: VocabIndex) -> tuple:
    """Path tab for one word: summary, its anchors (input word first) and each path point's distance to a real word."""
    distances, notes = [], []
    for method, result in results.items():
        e = result.explanation
        if e.path is None:
            raise ValueError("this result has no path points; explain it again")
        mean = _distance_to_words(e.path[:, list(word.tokens)], vocab).flip(0)  # (N,), input first
        positions = torch.linspace(0.0, 1.0, len(mean))
        distances += [
            {"position": float(x), "distance": float(d), "method": METHOD_NAMES[method]}
            for x, d in zip(positions, mean)
        ]
        note = f"{METHOD_NAMES[method]}: mean distance {float(mean.mean()):.3f}"
        if e.anchor_tokens[word.tokens[0]] is None:
            notes.append(note + " (a straight line, no anchors)")
        else:
            share = e.real_word_share
            notes.append(note + ("" if share is None else f", {share:.0%} of anchors are real words"))
    tokens = " ".join(next(iter(results.values())).explanation.tokens[i] for i in word.tokens)
    summary = (
        f"Word **{literal(word.text)}** (tokens: {literal(tokens)}). "
        "Anchors run from the input word (step 0) toward the baseline word (last). "
        "The plot shows each path point's Euclidean distance to the nearest real vocabulary word "
        "(0 = on a word; lower means the path stays among words). " + " · ".join(notes)
    )
    return summary, _anchor_table(results, word.tokens[0]), pd.DataFrame(distances, columns=PATH_COLUMNS)


def _distance_to_words(points: torch.Tensor, vocab: VocabIndex) -> torch.Tensor:
    """Mean over a word's tokens of each path point's distance to the nearest real word: ``(N, T, d) -> (N,)``."""
    n, t, d = points.shape
    nearest = vocab.nearest_distances(points.float().reshape(n * t, d), ("words",))["words"]
    return nearest.reshape(n, t).mean(1)


def _anchor_table(results: Mapping[str, Result], token: int) -> pd.DataFrame:
    """The anchors of one token's path per anchored method (DIG, UDIG), step 0 being the input word."""
    chains = {
        m: r.explanation.anchor_tokens[token]
        for m, r in results.items()
        if r.explanation.anchor_tokens[token] is not None
    }
    length = max((len(chain) for chain in chains.values()), default=0)
    rows = [[step, *(_at(chain, step) for chain in chains.values())] for step in range(length)]
    return pd.DataFrame(rows, columns=["step (0 = input word)", *(f"{METHOD_NAMES[m]} anchor" for m in chains)])


def text_words(text: str, tokenizer: Any, max_tokens: int) -> list[render.Word]:
    """The words of ``text`` as the model reads them (tokenizer only, attributions 0): the path view's choices."""
    encoded = tokenizer(
        text, return_offsets_mapping=True, return_special_tokens_mask=True, truncation=True, max_length=max_tokens
    )
    n = len(encoded["input_ids"])
    tokens_only = Explanation(  # zero attributions: render.words needs only the text, offsets and specials
        task="classification",
        method="ig",
        strategy=None,
        text=text,
        tokens=[""] * n,
        input_ids=list(encoded["input_ids"]),
        offsets=[tuple(o) for o in encoded["offset_mapping"]],
        special_mask=[bool(s) for s in encoded["special_tokens_mask"]],
        attributions=[0.0] * n,
        target=0,
        target_label="",
        output="logits",
        probs=[1.0],
        f_input=0.0,
        f_baseline=0.0,
        delta=0.0,
        anchors=[None] * n,
        anchor_tokens=[None] * n,
        real_word_share=None,
        baseline_token="",
        settings={},
        timings={},
    )
    return render.words(tokens_only)


def word_choices(words: Iterable[render.Word]) -> list[str]:
    """The path view's word choices, ``"index: word"``."""
    return [f"{w.index}: {w.text}" for w in words]


def _at(values: Sequence[str], i: int) -> str:
    return values[i] if i < len(values) else ""


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
