"""Turning an :class:`~udig.explanation.Explanation` into things people read: words, colours, HTML, files.

Plain functions over plain data; no Gradio here (the app passes these values to its components).

- **Words, not word pieces.** Scores are shown per word: the attributions of a word's sub-word tokens are
  summed, and the word is located in the original text through the tokenizer's character offsets, so a
  highlight is always an exact slice of the input. Tokens whose spans touch are one word when the characters
  on both sides of the seam are word characters (letters, digits, ``'``, ``-``, ``_``): ``un ##believ ##able``
  and ``isn ' t`` are one word each, ``gorgeous ,`` is two.
- **Colours** are max-abs scaled to [-1, 1] (the HighlightedText score convention, red = +, purple = -):
  positive pushes the model *toward* the explained label, negative *away* from it.
- **Images** of the highlight (PNG, SVG; matplotlib without pyplot) for model cards, whose renderers may
  strip the HTML's inline colours; they use the same words and colours as the HTML.
- **Everything user-typed is escaped** wherever HTML or Markdown is produced; CSV cells that a spreadsheet
  would run as a formula are neutralised.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import platform
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .explanation import Explanation
from .metrics import METRIC_INFO, SCORES
from .settings import quoted
from .version import __version__

__all__ = [
    "Word",
    "words",
    "word_at",
    "max_abs",
    "shared_scale",
    "highlight_value",
    "highlight_html",
    "legend_html",
    "highlight_image",
    "IMAGE_FORMATS",
    "label_value",
    "token_rows",
    "TOKEN_HEADERS",
    "metric_rows",
    "winners",
    "standalone_html",
    "model_card",
    "to_json",
    "to_csv",
    "versions",
    "escape",
    "escape_markdown",
    "colour",
]

_WORD_CHAR = re.compile(r"[\w'’\-]")


def escape(text: Any) -> str:
    """HTML-escape anything (quotes included), so user text is always shown as text."""
    return html.escape(str(text), quote=True)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")


def escape_markdown(text: Any) -> str:
    """Escape Markdown syntax and HTML in user text for a Markdown context (newlines become spaces)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text).replace("\r", " ").replace("\n", " "))


# -- words --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Word:
    """One word of the input: its character span, the tokens it is made of and their summed attribution."""

    index: int
    start: int
    end: int
    text: str
    tokens: tuple[int, ...]
    attribution: float


def _joins(text: str, left_end: int, right_start: int) -> bool:
    if left_end != right_start or left_end <= 0 or right_start >= len(text):
        return False
    return bool(_WORD_CHAR.match(text[left_end - 1]) and _WORD_CHAR.match(text[right_start]))


def words(
    explanation: Explanation,
    attributions: Sequence[float] | None = None,
    *,
    segment: str | None = None,
) -> list[Word]:
    """The input's words with their summed attributions, in text order.

    attributions: per-token values to sum (default: the explanation's own; QA passes start + end).
    segment: QA only, "question" or "context": keep the words of that part (spans stay in ``text``).
    """
    values = list(explanation.attributions if attributions is None else attributions)
    if len(values) != len(explanation.tokens):
        raise ValueError(f"{len(values)} attributions for {len(explanation.tokens)} tokens")
    low, high = 0, len(explanation.text)
    if segment is not None:
        if segment not in explanation.segments:
            raise ValueError(f"unknown segment {segment!r}; this explanation has {sorted(explanation.segments)}")
        low, high = explanation.segments[segment]
    spans = [
        (i, int(a), int(b))
        for i, ((a, b), special) in enumerate(zip(explanation.offsets, explanation.special_mask))
        if not special and b > a and low <= a and b <= high
    ]
    spans.sort(key=lambda s: (s[1], s[2]))
    groups: list[list[tuple[int, int, int]]] = []
    for span in spans:
        if groups and _joins(explanation.text, groups[-1][-1][2], span[1]):
            groups[-1].append(span)
        elif groups and span[1] < groups[-1][-1][2]:  # overlapping pieces (byte-level BPE): same word
            groups[-1].append(span)
        else:
            groups.append([span])
    result = []
    for n, group in enumerate(groups):
        start, end = group[0][1], max(s[2] for s in group)
        ids = tuple(s[0] for s in group)
        result.append(Word(n, start, end, explanation.text[start:end], ids, float(sum(values[i] for i in ids))))
    return result


def word_at(word_list: Sequence[Word], choice: str | int | None) -> Word:
    """Pick a word by index, by ``"index: word"`` (the app's dropdown), or by its text (first match).

    None or "" picks the word with the largest absolute attribution.
    """
    if not word_list:
        raise ValueError("the input has no words to show a path for")
    if choice is None or (isinstance(choice, str) and not choice.strip()):
        return max(word_list, key=lambda w: abs(w.attribution))
    if isinstance(choice, int) and not isinstance(choice, bool):
        if 0 <= choice < len(word_list):
            return word_list[choice]
        raise ValueError(f"word index {choice} is out of range: the input has {len(word_list)} words")
    choice = str(choice).strip()
    head, sep, rest = choice.partition(":")
    if sep and re.fullmatch(r"[0-9]{1,9}", head.strip()):  # not str.isdigit: it takes '²' and any length
        index = int(head)
        if 0 <= index < len(word_list) and word_list[index].text == rest.strip():
            return word_list[index]
        choice = rest.strip() or choice
    for word in word_list:
        if word.text == choice:
            return word
    for word in word_list:
        if word.text.lower() == choice.lower():
            return word
    raise ValueError(f"the word {quoted(choice)} is not in the input; pick one of its words")


def max_abs(values: Iterable[float]) -> float:
    """The largest absolute value (0.0 for nothing or all zeros)."""
    return max((abs(v) for v in values if math.isfinite(v)), default=0.0)


def shared_scale(explanations: Sequence[Explanation], *, segment: str | None = None) -> float:
    """One colour scale for several explanations of the same input (compare view): the max |word score|."""
    return max((max_abs(w.attribution for w in words(e, segment=segment)) for e in explanations), default=0.0)


def _scaled(value: float, scale: float) -> float:
    if scale <= 0 or not math.isfinite(value):
        return 0.0
    return max(-1.0, min(1.0, value / scale))


def _pieces(explanation: Explanation, word_list: list[Word], scale: float, segment: str | None):
    """(text, scaled score or None) covering the displayed text exactly once, in order."""
    low, high = (0, len(explanation.text)) if segment is None else explanation.segments[segment]
    cursor = low
    for word in word_list:
        if word.start > cursor:
            yield explanation.text[cursor : word.start], None
        yield word.text, _scaled(word.attribution, scale)
        cursor = word.end
    if cursor < high:
        yield explanation.text[cursor:high], None


def highlight_value(
    explanation: Explanation,
    *,
    scale: float | None = None,
    segment: str | None = None,
    attributions: Sequence[float] | None = None,
) -> list[tuple[str, float | None]]:
    """A HighlightedText value: ``(text, score)`` per word, score max-abs scaled to [-1, 1], gaps ``None``.

    scale: divide by this instead of the explanation's own max |word score| (a shared scale).
    """
    word_list = words(explanation, attributions, segment=segment)
    if scale is None:
        scale = max_abs(w.attribution for w in word_list)
    return [
        (text, None if score is None else round(score, 4))
        for text, score in _pieces(explanation, word_list, scale, segment)
    ]


def colour(score: float) -> str:
    """CSS colour for a scaled score in [-1, 1], as Gradio's HighlightedText draws it: red +, purple -."""
    score = max(-1.0, min(1.0, float(score))) if math.isfinite(score) else 0.0
    rgb = "239, 68, 60" if score >= 0 else "128, 90, 213"
    return f"rgba({rgb}, {abs(score):.3f})"


def highlight_html(
    explanation: Explanation,
    *,
    scale: float | None = None,
    segment: str | None = None,
    attributions: Sequence[float] | None = None,
) -> str:
    """The highlighted text as inline-styled, escaped HTML (for exports and model cards)."""
    parts = []
    for text, score in highlight_value(explanation, scale=scale, segment=segment, attributions=attributions):
        if score is None:
            parts.append(escape(text).replace("\n", "<br>"))
        else:
            parts.append(
                f'<span title="{score:+.3f}" style="background:{colour(score)};'
                f'border-radius:3px;padding:0 2px">{escape(text)}</span>'
            )
    return "".join(parts)


def legend_html(label: str) -> str:
    """A colour legend naming the explained label."""
    stops = "".join(
        f'<span style="display:inline-block;width:14px;height:12px;background:{colour(s / 4)}"></span>'
        for s in range(-4, 5)
    )
    return (
        '<div class="udig-legend">'
        f"<span>− away from <b>{escape(label)}</b></span> {stops} "
        f"<span>toward <b>{escape(label)}</b> +</span>"
        "<br><small>Per-word attribution, summed over sub-words, scaled to [−1, 1] by the largest |score|.</small>"
        "</div>"
    )


# -- images -------------------------------------------------------------------------------------------

IMAGE_FORMATS = ("png", "svg")
_WIDTH_IN, _MARGIN_IN, _PNG_DPI = 8.0, 0.3, 150
_TEXT_PT, _SMALL_PT = 14.0, 9.5
_PAD = 0.18  # box padding around a word, in font sizes (as matplotlib's boxstyle pad)
_SVG_AS_TEXT = threading.Lock()  # svg.fonttype is a process-wide rcParam: set for one drawing at a time


def _rgba(css: str) -> tuple[float, float, float, float]:
    """A :func:`colour` value (``rgba(r, g, b, a)``) as matplotlib's 0-1 tuple."""
    r, g, b, a = (float(v) for v in css[css.index("(") + 1 : css.rindex(")")].split(","))
    return r / 255, g / 255, b / 255, a


def _clipped(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


Placed = tuple[float, int, str, "float | None"]  # x (inches), line, text, scaled score (None: not a word)


def _wrap(
    pieces: Iterable[tuple[str, float | None]], width: Callable[[str], float], usable: float, pad: float
) -> tuple[list[Placed], int]:
    """Words (and the visible text between them) placed left to right in lines ``usable`` inches wide.

    width(text) measures in inches; each word takes its width plus ``pad`` on both sides. Lines break at
    newlines in the text and before a word that would overflow; returns the placements and the line count.
    """
    space = width("a a") - width("aa")
    placed: list[Placed] = []
    x, line = 0.0, 0
    for text, score in pieces:
        for part in [text] if score is not None else re.findall(r"\n|[^\S\n]+|\S+", text):
            if part == "\n":
                x, line = 0.0, line + 1
            elif part.isspace():
                x += space if x else 0.0
            else:
                advance = width(part) + 2 * pad
                if x and x + advance > usable:
                    x, line = 0.0, line + 1
                placed.append((x, line, part, score))
                x += advance
    return placed, line + 1


def highlight_image(
    explanation: Explanation, fmt: str = "png", *, attributions: Sequence[float] | None = None
) -> bytes:
    """The highlight as a PNG or SVG image: wrapped words coloured by :func:`colour`, legend, model, label.

    For model cards: the Hub's card renderer and other sanitisers may strip the inline colours of
    :func:`highlight_html`, but not an image. Drawn on a bare :class:`matplotlib.figure.Figure` (no pyplot,
    so concurrent requests share no figure state); matplotlib's parser for ``$...$`` is off, and the SVG
    keeps the words as ``<text>``, escaped by matplotlib's XML writer.
    """
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; choose png or svg")
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import Rectangle

    figure = Figure(figsize=(_WIDTH_IN, 1.0), dpi=_PNG_DPI)
    renderer = FigureCanvasAgg(figure).get_renderer()

    def width(text: str, size: float = _TEXT_PT) -> float:  # inches
        return renderer.get_text_width_height_descent(text, FontProperties(size=size), ismath=False)[0] / figure.dpi

    pad, usable = _PAD * _TEXT_PT / 72, _WIDTH_IN - 2 * _MARGIN_IN
    placed, lines = _wrap(highlight_value(explanation, attributions=attributions), width, usable, pad)

    small, row = _SMALL_PT / 72 * 1.6, _TEXT_PT / 72 * 1.9  # line heights, inches
    label = _clipped(explanation.target_label, 40)
    probability = f" (p = {explanation.probs[explanation.target]:.3f})" if explanation.output == "logits" else ""

    def fit(text: str) -> str:  # a header line cut to the drawing's width
        text = _clipped(text, 160)
        while len(text) > 1 and width(text, _SMALL_PT) > usable:
            text = text[:-2] + "…"
        return text

    header = [
        fit(f"Model {explanation.settings.get('model', '')} · explained label {label}{probability}"),
        fit(f"{_describe(explanation)} · completeness error Δ = {explanation.delta:+.4f}"),
    ]
    text_top = _MARGIN_IN + len(header) * small + 0.1
    legend_top = text_top + lines * row + 0.1
    height = legend_top + 2 * small + _MARGIN_IN
    figure.set_size_inches(_WIDTH_IN, height)

    def at(x_in: float, y_in: float) -> tuple[float, float]:  # inches from the top left -> figure fraction
        return (_MARGIN_IN + x_in) / _WIDTH_IN, 1 - y_in / height

    def write(x_in: float, y_in: float, text: str, size: float = _SMALL_PT, **style: Any) -> None:
        figure.text(*at(x_in, y_in), text, fontsize=size, va="center", parse_math=False, **style)

    for n, text in enumerate(header):
        write(0, _MARGIN_IN + (n + 0.5) * small, text, color="#444444")
    for x_in, line_no, text, score in placed:
        box = (
            None
            if score is None
            else {"boxstyle": f"round,pad={_PAD}", "facecolor": _rgba(colour(score)), "edgecolor": "none"}
        )
        write(x_in + pad, text_top + (line_no + 0.5) * row, text, _TEXT_PT, color="#111111", bbox=box)
    y = legend_top + 0.5 * small
    away = f"− away from {label}"
    write(0, y, away)
    x_in, swatch = width(away, _SMALL_PT) + 0.1, 0.22
    for stop in range(-4, 5):
        corner = at(x_in, y + 0.07)
        figure.add_artist(
            Rectangle(
                corner,
                swatch / _WIDTH_IN,
                0.14 / height,
                transform=figure.transFigure,
                facecolor=_rgba(colour(stop / 4)),
                edgecolor="none",
            )
        )
        x_in += swatch
    write(x_in + 0.1, y, f"toward {label} +")
    write(
        0,
        y + small,
        "Per-word attribution, summed over sub-words, scaled to [−1, 1] by the largest |score|. Made with udig.",
        color="#666666",
    )

    buffer = io.BytesIO()
    if fmt == "svg":
        with _SVG_AS_TEXT, matplotlib.rc_context({"svg.fonttype": "none"}):  # words as <text>, not glyph paths
            figure.savefig(buffer, format="svg", metadata={"Date": None})
    else:
        figure.savefig(buffer, format="png", dpi=_PNG_DPI)
    return buffer.getvalue()


# -- tables -------------------------------------------------------------------------------------------


def label_value(explanation: Explanation, labels: dict[int, str] | None = None) -> dict[str, float]:
    """A Label value: class name -> probability (classification)."""
    names = dict(labels or {})
    names[explanation.target] = explanation.target_label
    return {names.get(i, f"class {i}"): float(p) for i, p in enumerate(explanation.probs)}


TOKEN_HEADERS = ["#", "token", "word", "attribution", "score (L2)", "colour (max-abs)", "path anchors"]


def token_rows(explanation: Explanation, *, max_anchors: int = 6) -> list[list]:
    """One row per token for the per-token table (special tokens included, with 0 attribution)."""
    word_of = {}
    for word in words(explanation):
        for i in word.tokens:
            word_of[i] = word.text
    scale = max_abs(explanation.attributions)
    rows = []
    for i, (token, attribution, score) in enumerate(
        zip(explanation.tokens, explanation.attributions, explanation.scores)
    ):
        anchors = explanation.anchor_tokens[i] if explanation.anchor_tokens else None
        if anchors:
            shown = [a for a in anchors[1:] if a is not None]
            text = " → ".join(shown[:max_anchors]) + (" → …" if len(shown) > max_anchors else "")
        else:
            text = ""
        rows.append(
            [
                i,
                token,
                word_of.get(i, ""),
                round(attribution, 5),
                round(score, 4),
                round(_scaled(attribution, scale), 3),
                text,
            ]
        )
    return rows


def metric_rows(metrics: dict[str, float | None]) -> list[list]:
    """Rows (score, value, better, meaning) for the faithfulness table."""
    rows = []
    for metric in SCORES:
        if metric.key in metrics:
            value = metrics[metric.key]
            rows.append([metric.name, None if value is None else round(float(value), 4), metric.better, metric.meaning])
    return rows


def _goodness(key: str, value: float) -> float:
    better = METRIC_INFO[key].better
    if better == "lower":
        return -value
    if better == "higher":
        return value
    return -abs(value)


def winners(results: dict[str, dict[str, float | None]]) -> dict[str, list[str]]:
    """For each metric, the method(s) with the best value (ties share the win)."""
    best: dict[str, list[str]] = {}
    for metric in SCORES:
        values = {
            m: s[metric.key]
            for m, s in results.items()
            if s.get(metric.key) is not None and math.isfinite(s[metric.key])
        }
        if not values:
            continue
        top = max(_goodness(metric.key, v) for v in values.values())
        best[metric.key] = [m for m, v in values.items() if abs(_goodness(metric.key, v) - top) <= 1e-9]
    return best


# -- exports ------------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    """Versions of everything that shapes a result, for exports."""
    import torch
    import transformers

    return {
        "udig": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def _describe(explanation: Explanation) -> str:
    settings = explanation.settings
    parts = [explanation.method.upper()]
    if explanation.strategy:
        parts.append(explanation.strategy)
    parts.append(f"{settings.get('n_points', '?')} points")
    parts.append(f"baseline {explanation.baseline_token}")
    return ", ".join(parts)


def _metrics_html(metrics: dict[str, float | None] | None) -> str:
    if not metrics:
        return ""
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{'—' if value is None else f'{value:.4f}'}</td><td>{escape(better)}</td>"
        f"<td>{escape(meaning)}</td></tr>"
        for name, value, better, meaning in metric_rows(metrics)
    )
    return (
        "<table><thead><tr><th>score</th><th>value</th><th>better</th><th>meaning</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def standalone_html(
    explanation: Explanation,
    *,
    metrics: dict[str, float | None] | None = None,
    title: str = "udig explanation",
    attributions: Sequence[float] | None = None,
) -> str:
    """A self-contained HTML page (inline CSS, no scripts) with the highlighted text, legend and scores."""
    probability = explanation.probs[explanation.target] if explanation.output == "logits" else None
    prediction = f" (p = {probability:.3f})" if probability is not None else ""
    model = explanation.settings.get("model", "")
    body_text = highlight_html(explanation, attributions=attributions)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;line-height:1.7;color:#111}}
.udig-text{{font-size:1.15rem;border:1px solid #ddd;border-radius:6px;padding:.8rem 1rem}}
table{{border-collapse:collapse;margin-top:1rem;font-size:.9rem}} td,th{{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}}
.udig-legend{{margin:.6rem 0;font-size:.9rem}} footer{{margin-top:1.5rem;color:#666;font-size:.8rem}}
</style></head><body>
<h1>{escape(title)}</h1>
<p>Model <code>{escape(model)}</code> · explained label <b>{escape(explanation.target_label)}</b>{escape(prediction)} ·
method {escape(_describe(explanation))} · completeness error Δ = {explanation.delta:+.4f}</p>
<div class="udig-text">{body_text}</div>
{legend_html(explanation.target_label)}
{_metrics_html(metrics)}
<footer>Made with udig {escape(versions()["udig"])}: Integrated Gradients, Discretized IG and Uniform Discretized IG
(Roy &amp; Kundu 2024). {"Input truncated to the model limit. " if explanation.truncated else ""}</footer>
</body></html>
"""


_URL_SAFE = ":/?#@!$&'*+,;=%-._~"  # kept as typed; anything else (spaces, quotes, brackets, <>) is %-encoded


def _link_target(url: str) -> str:
    """``url`` percent-encoded for a Markdown or HTML link; only relative, http and https links are allowed."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("", "http", "https"):
        raise ValueError(
            f"refusing a {scheme}: link in a model card; give a file name, a relative link or an http(s) URL"
        )
    return urllib.parse.quote(url, safe=_URL_SAFE)


def model_card(
    explanation: Explanation,
    *,
    metrics: dict[str, float | None] | None = None,
    fmt: str = "markdown",
    top: int = 5,
    image: str | None = None,
    link: str | None = None,
) -> str:
    """A "Model examination" snippet for a model card: the example, its top words, the scores.

    fmt: "markdown" or "html". image: file name or URL of :func:`highlight_image`'s drawing, shown first
    (card renderers may strip the inline colours of the HTML highlight, not an image). link: the Space's
    share link (or a relative ``?s=...`` query) that reopens this example in the demo.
    """
    if fmt not in ("markdown", "html"):
        raise ValueError(f"unknown format {fmt!r}; choose markdown or html")
    word_list = sorted(words(explanation), key=lambda w: -abs(w.attribution))[:top]
    model = explanation.settings.get("model", "")
    alt = f"Word attributions for the label {explanation.target_label}: red pushes toward it, purple away from it"
    demo = "Open this example in the udig demo"
    if fmt == "html":
        top_html = ", ".join(f"<code>{escape(w.text)}</code> ({w.attribution:+.3f})" for w in word_list)
        picture = f'<p><img src="{escape(_link_target(image))}" alt="{escape(alt)}"></p>\n' if image else ""
        back = f'<p><a href="{escape(_link_target(link))}">{demo}</a></p>\n' if link else ""
        return (
            f"<h3>Model examination</h3>\n<h4>Example explanation ({escape(_describe(explanation))})</h4>\n{picture}"
            f"<p>Model <code>{escape(model)}</code>, label <b>{escape(explanation.target_label)}</b>. "
            "Red pushes toward the label, purple away from it.</p>\n"
            f'<p style="line-height:1.8">{highlight_html(explanation)}</p>\n'
            f"<p>Most influential words: {top_html}</p>\n{_metrics_html(metrics)}\n{back}"
        )
    lines = ["### Model examination", "", f"#### Example explanation ({escape_markdown(_describe(explanation))})", ""]
    if image:
        lines += [f"![{escape_markdown(alt)}]({_link_target(image)})", ""]
    if link:
        lines += [f"[{demo}]({_link_target(link)})", ""]
    lines += [
        f"Model `{model}`, explained label **{escape_markdown(explanation.target_label)}**, "
        f"completeness error Δ = {explanation.delta:+.4f}.",
        "",
        f"> {escape_markdown(explanation.text)}",
        "",
        "| word | attribution |",
        "| --- | ---: |",
        *[f"| {escape_markdown(w.text)} | {w.attribution:+.4f} |" for w in word_list],
    ]
    if metrics:
        lines += ["", "| score | value | better |", "| --- | ---: | --- |"]
        lines += [
            f"| {name.replace('|', chr(92) + '|')} | {'—' if value is None else f'{value:.4f}'} | {better} |"
            for name, value, better, _ in metric_rows(metrics)
        ]
    lines += ["", "_Attributions computed with udig (Uniform Discretized Integrated Gradients, Roy & Kundu 2024)._", ""]
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def to_json(
    explanation: Explanation,
    *,
    metrics: dict[str, float | None] | None = None,
    inputs: dict[str, Any] | None = None,
) -> str:
    """Inputs, tokens, offsets, attributions and scores, words, settings, metrics and versions as JSON."""
    document = {
        "format": "udig-explanation/1",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": inputs or {"text": explanation.text},
        "explanation": explanation.to_dict(),
        "words": [
            {
                "index": w.index,
                "text": w.text,
                "start": w.start,
                "end": w.end,
                "tokens": list(w.tokens),
                "attribution": w.attribution,
            }
            for w in words(explanation)
        ],
        "metrics": metrics or {},
        "versions": versions(),
    }
    return json.dumps(_jsonable(document), indent=1, ensure_ascii=False)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas in text cells (OWASP CSV injection); numbers pass unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(explanation: Explanation) -> str:
    """One row per token: position, token, character span, word, special flag, attribution, scores."""
    word_of = {}
    for word in words(explanation):
        for i in word.tokens:
            word_of[i] = (word.index, word.text)
    scale = max_abs(explanation.attributions)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "position",
            "token",
            "start",
            "end",
            "word_index",
            "word",
            "special",
            "attribution",
            "score_l2",
            "score_maxabs",
        ]
    )
    for i, (token, (start, end), special, attribution, score) in enumerate(
        zip(
            explanation.tokens,
            explanation.offsets,
            explanation.special_mask,
            explanation.attributions,
            explanation.scores,
        )
    ):
        index, text = word_of.get(i, ("", ""))
        writer.writerow(
            [
                i,
                _cell(token),
                start,
                end,
                index,
                _cell(text),
                int(bool(special)),
                f"{attribution:.6g}",
                f"{score:.6g}",
                f"{_scaled(attribution, scale):.4f}",
            ]
        )
    return out.getvalue()
