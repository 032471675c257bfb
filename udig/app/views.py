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
from ..metrics import AOPC_CUTOFFS, DEFAULT_TOPK, SCORES, top_k_count, top_k_positions
from ..settings import Settings
from ..vocab import VocabIndex
from .content import CANDIDATE_LABELS, QA_MEANINGS, RULE_LABELS, STRATEGY_LABELS
from .service import Result

METHOD_NAMES = {name: REGISTRY[name].title for name in PATH_METHODS}  # "ig" -> "IG", ...
JOINT_METHODS = tuple(
    name for name in PATH_METHODS if not REGISTRY[name].fixed.get("sequential")
)  # SIG reuses IG's line
_COLOURS = {"ig": "#64748b", "dig": "#f59e0b", "udig": "#6366f1", "sig": "#10b981"}  # grey, amber, indigo, green
ANCHOR_SERIES = " anchor words"  # a method's anchors in the path plot: "DIG anchor words"
_ANCHOR_COLOURS = {"dig": "#b45309", "udig": "#312e81"}  # darker amber and indigo: the anchor words themselves
METHOD_COLOURS = {  # by series title, as the path plot labels them
    **{METHOD_NAMES[name]: colour for name, colour in _COLOURS.items()},
    **{METHOD_NAMES[name] + ANCHOR_SERIES: colour for name, colour in _ANCHOR_COLOURS.items()},
}
PATH_COLUMNS = ["position", "distance", "method"]
REFERENCE_COLUMNS = {"random": "random", "grad-input": "grad × input"}  # the sanity baselines, as the page names them
TOP_SHARE = f"top {DEFAULT_TOPK} %"  # as the scores' meanings write it
BETTER_WORDS = {"lower": "lower is better ↓", "higher": "higher is better ↑", "closer to 0": "closer to 0 is better"}


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


def sentiment(result: Result, finding: Sequence[str] = ()) -> tuple:
    """Sentiment tab: label, per-word highlight, legend with how to read the scores, token table, scores,
    runtime. Under the legend: the scores beside those of the result's sanity baselines on the same input
    (:func:`yardstick_html`), and ``finding``, what the evaluation found for this method."""
    e = result.explanation
    notes = reading_notes(len(e.tokens), finding, yardstick=yardstick_html(result))
    return (
        render.label_value(e, result.labels),
        render.highlight_html(e),
        render.legend_html(e.target_label) + notes,
        pd.DataFrame(render.token_rows(e), columns=render.TOKEN_HEADERS),
        faithfulness_table(result),
        runtime(result),
    )


def method_title(settings: Settings) -> str:
    """A method as the page names it: ``UDIG (MaxCount, real words only, sequential)``."""
    method = REGISTRY[settings.method]
    details = [
        *([STRATEGY_LABELS[settings.strategy]] if "strategy" in method.uses and settings.strategy else []),
        *([CANDIDATE_LABELS[settings.candidates]] if "candidates" in method.uses else []),
        *(["sequential"] if settings.sequential and "sequential" in method.uses else []),
    ]
    return method.title + (f" ({', '.join(details)})" if details else "")


def top_share_words(length: int) -> str:
    """What "top 20 %" is on an input of ``length`` tokens: ``"2 of 10 tokens"``."""
    return f"{top_k_count(length)} of {length} tokens"


def faithfulness_table(result: Result) -> pd.DataFrame:
    """The method's scores; each meaning says how many tokens "top 20 %" is on this input."""
    scores, length = result.scores[""], len(result.explanation.tokens)
    rows = [
        [
            s.name,
            _round(scores[s.key]),
            s.better,
            s.meaning.replace(TOP_SHARE, f"{TOP_SHARE} (here {top_share_words(length)})"),
        ]
        for s in SCORES
    ]
    return pd.DataFrame(rows, columns=["score", "value", "better", "meaning"])


def yardstick_html(result: Result) -> str:
    """A small table: the method's faithfulness scores beside its sanity baselines' (``result.references``) on
    the same input (the scores those have: no path, no completeness error); empty without them."""
    references = {m: scores[""] for m, scores in result.references.items()}
    shown = [m for m in REFERENCE_COLUMNS if m in references]
    if not shown:
        return ""
    cell = 'style="padding:1px 6px;text-align:right;font-variant-numeric:tabular-nums"'
    rows = "".join(
        f"<tr><td>{s.short} {s.arrow}</td>"
        + "".join(f"<td {cell}>{_signed(v[s.key])}</td>" for v in (result.scores[""], *(references[m] for m in shown)))
        + "</tr>"
        for s in SCORES
        if all(references[m].get(s.key) is not None for m in shown)
    )
    head = "".join(f"<th {cell}>{title}</th>" for title in ("this method", *(REFERENCE_COLUMNS[m] for m in shown)))
    return (
        '<table class="udig-yardstick" style="border-collapse:collapse;margin:4px 0;font-size:0.85rem">'
        f"<thead><tr><th></th>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}".replace("-", "−")


def reading_notes(length: int, finding: Sequence[str] = (), same_top: Sequence[str] = (), yardstick: str = "") -> str:
    """How to read the scores of an input of ``length`` tokens, as HTML under the colour legend: how many
    tokens "top 20 %" is here (and that few tokens make methods tie), the ``yardstick`` table
    (:func:`yardstick_html`) and ``finding``'s lines. ``same_top``: the methods that rank the same top tokens
    first (Compare), which then score alike."""
    k, cuts = top_k_count(length), ", ".join(str(top_k_count(length, cut)) for cut in AOPC_CUTOFFS)
    notes = [
        f"Here &ldquo;{TOP_SHARE}&rdquo; is <b>{top_share_words(length)}</b> ([CLS] and [SEP] count). "
        + (
            "So log-odds, comprehensiveness and sufficiency remove or keep nothing and say nothing here. "
            if k == 0
            else f"{', '.join(same_top[:-1])} and {same_top[-1]} put the same {k} first, so their log-odds, "
            "comprehensiveness and sufficiency are identical: that is the short input, not a broken score. "
            if len(same_top) > 1
            else f"With so few, methods that put the same {k} first get identical log-odds, comprehensiveness and "
            "sufficiency. "
            if k <= 3
            else ""
        )
        + f"The AOPC scores average over the top {', '.join(map(str, AOPC_CUTOFFS))} % ({cuts} tokens here) "
        "and tell methods apart more often."
    ]
    if yardstick:
        notes.append(
            "Beside the sanity baselines on this same input (<b>random</b> scores; <b>grad × input</b>, one "
            "gradient times the input): an explanation is informative where it beats them." + yardstick
        )
    if finding:  # a heading, then one line per method
        notes += [f"<b>{render.escape(finding[0])}</b>", *(render.escape(line) for line in finding[1:])]
    return '<div class="udig-notes"><small>' + "<br>".join(notes) + "</small></div>"


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
    for a method left out, ``notices`` saying why), legend with how to read the scores, table, bars, summary."""
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
    length = len(first.tokens)
    legend = render.legend_html(first.target_label) + reading_notes(length, same_top=same_top(results))
    table = _score_table(scores, {m: r.seconds for m, r in results.items()})
    return (*highlights, legend, table, score_bars(scores), summary)


def same_top(results: Mapping[str, Result]) -> list[str]:
    """The methods' titles when all of them rank the same top-20 % tokens first (so that log-odds,
    comprehensiveness and sufficiency cannot tell them apart), else none."""
    tops = {
        METHOD_NAMES[m]: tuple(top_k_positions(r.explanation.attributions, top_k_count(len(r.explanation.tokens))))
        for m, r in results.items()
    }
    return list(tops) if len(tops) > 1 and len(set(tops.values())) == 1 else []


def _score_table(scores: Mapping[str, Mapping[str, float | None]], seconds: Mapping[str, float]) -> pd.DataFrame:
    """One row per score (its direction in its name), one column per method, ★ on the best value of each score:
    a phone shows every column."""
    best = render.winners(dict(scores))
    rows = [
        [
            f"{s.short} {s.arrow or '→ 0'}",
            *(
                "—"
                if values[s.key] is None
                else f"{values[s.key]:.3f}" + (" ★" if method in best.get(s.key, []) else "")
                for method, values in scores.items()
            ),
        ]
        for s in SCORES
    ]
    rows.append(["seconds", *(f"{seconds[method]:.2f}" for method in scores)])
    return pd.DataFrame(rows, columns=["score", *(METHOD_NAMES[m] for m in scores)])


def score_bars(scores: Mapping[str, Mapping[str, float | None]]) -> str:
    """The Compare chart as HTML: one group per score, headed by its name and which way is better, one bar per
    method (bar length: the value's size relative to the group's largest; the signed value and the method's
    name written beside it, ★ on the best). Percent widths: it fits any screen, and nothing is clipped."""
    best = render.winners(dict(scores))
    groups = []
    for s in SCORES:
        values = {m: v[s.key] for m, v in scores.items()}
        largest = max((abs(v) for v in values.values() if v is not None), default=0.0) or 1.0
        bars = []
        for method, value in values.items():
            width = 0.0 if value is None else 100 * abs(value) / largest
            shown = "—" if value is None else f"{value:+.3f}".replace("-", "−")
            star = " ★" if method in best.get(s.key, []) else ""
            bars.append(
                '<div style="display:flex;align-items:center;gap:6px;margin:2px 0">'
                f'<span style="flex:0 0 3.2em">{METHOD_NAMES[method]}</span>'
                '<span style="flex:1 1 auto;background:#f1f5f9;height:14px;border-radius:2px">'
                f'<span style="display:block;height:14px;width:{width:.1f}%;background:{_COLOURS[method]};'
                'border-radius:2px"></span></span>'
                f'<span style="flex:0 0 5.5em;text-align:right;font-variant-numeric:tabular-nums">{shown}{star}</span>'
                "</div>"
            )
        groups.append(
            '<div class="udig-bar-group" style="flex:1 1 300px;min-width:0">'
            f"<b>{s.name}</b> <small>{BETTER_WORDS[s.better]}</small>{''.join(bars)}</div>"
        )
    return (
        '<div class="udig-bars" style="display:flex;flex-wrap:wrap;gap:12px 24px">' + "".join(groups) + "</div>"
        "<small>Bar length: the score's size relative to the largest among the methods; its sign is written.</small>"
    )


def path(results: Mapping[str, Result], word: render.Word, vocab: VocabIndex) -> tuple:
    """Path tab for one word: summary, its anchors (input word first) and distances to the nearest real word, of
    each path point (where the gradient is taken) and, for DIG and UDIG, of each anchor word itself.

    The two differ: an anchored path does not pass through its anchor words but through the anchors *made
    monotone* (every coordinate that would move away from the baseline is moved toward it instead), which can
    put a point far from any word even when every anchor is one; the plot shows both, and the summary says so.
    """
    distances, notes = [], []
    for method, result in results.items():
        e, title = result.explanation, METHOD_NAMES[method]
        if e.path is None:
            raise ValueError("this result has no path points; explain it again")
        mean = _distance_to_words(e.path[:, list(word.tokens)], vocab).flip(0)  # (N,), input first
        distances += _series(title, torch.linspace(0.0, 1.0, len(mean)), mean)
        note = f"{title}: path points {float(mean.mean()):.3f} on average"
        chains = [e.anchors[i] for i in word.tokens]
        if any(chain is None for chain in chains):
            notes.append(note + " (a straight line, no anchors)")
            continue
        ids = torch.tensor(chains, dtype=torch.long).T  # (m + 1, T): the input word first
        at_anchors = _distance_to_words(vocab.embeddings[ids], vocab)
        distances += _series(title + ANCHOR_SERIES, torch.arange(len(ids)) / len(ids), at_anchors)
        share = "" if e.real_word_share is None else f", {e.real_word_share:.0%} of them real words"
        notes.append(note + f", its anchor words {float(at_anchors.mean()):.3f}{share}")
    tokens = " ".join(next(iter(results.values())).explanation.tokens[i] for i in word.tokens)
    summary = (
        f"Word **{literal(word.text)}** (tokens: {literal(tokens)}). "
        "Anchors run from the input word (step 0) toward the baseline word (last). "
        "The plot shows the Euclidean distance to the nearest real vocabulary word (0 = on a word) of each "
        "**path point**, where the gradient is taken, and of each **anchor word**. DIG and UDIG do not pass "
        "through their anchor words but through the anchors *made monotone*: every coordinate that would move "
        "away from the baseline is moved toward it instead. So a path can stray far from words although its "
        "anchors are words: DIG's graph neighbours typically need the most moving, UDIG's anchors, chosen near the "
        "straight line, less. Mean distances: " + " · ".join(notes) + ". In the plot, anchor words that are "
        "real words lie along 0."
    )
    return summary, _anchor_table(results, word.tokens[0]), pd.DataFrame(distances, columns=PATH_COLUMNS)


def path_legend_html() -> str:
    """The path plot's colour key, as HTML under the plot: Gradio cuts the plot's own legend off below its axis.
    A swatch for each line the path tab draws: the path points of IG, DIG and UDIG, then DIG's and UDIG's anchor
    words (the series' names, as the plot's tooltips give them)."""
    drawn = [METHOD_NAMES[method] for method in JOINT_METHODS]
    keys = "".join(
        f'<span class="udig-key"><span class="udig-swatch" style="background:{colour}"></span>'
        f"{name if name.endswith(ANCHOR_SERIES) else name + ' path points'}</span>"
        for name, colour in METHOD_COLOURS.items()
        if name.removesuffix(ANCHOR_SERIES) in drawn
    )
    return f'<div class="udig-legend udig-keys">{keys}</div>'


def _series(name: str, positions: torch.Tensor, distances: torch.Tensor) -> list[dict[str, Any]]:
    """Rows of the path plot: one series, ``name``, of distances at positions from 0 (input word) to 1."""
    return [{"position": float(x), "distance": float(d), "method": name} for x, d in zip(positions, distances)]


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
