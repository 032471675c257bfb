"""HTML and Markdown: the highlighted text, its legend, a standalone page and a model-card snippet.

Everything user-typed is escaped wherever HTML or Markdown is produced, and links in a card are limited to
relative, http and https targets.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Sequence
from typing import Any

from ..explanation import Explanation
from .exports import card_text, content_words, versions
from .tables import metric_rows
from .words import colour, highlight_value


def escape(text: Any) -> str:
    """HTML-escape anything (quotes included), so user text is always shown as text."""
    return html.escape(str(text), quote=True)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")


def escape_markdown(text: Any) -> str:
    """Escape Markdown syntax and HTML in user text for a Markdown context (newlines become spaces)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text).replace("\r", " ").replace("\n", " "))


_READER_ONLY = (  # in the accessibility tree, not on screen (nor in a mouse selection)
    "position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);"
    "white-space:nowrap;border:0;user-select:none"
)


def highlight_html(
    explanation: Explanation,
    *,
    scale: float | None = None,
    segment: str | None = None,
    attributions: Sequence[float] | None = None,
) -> str:
    """The highlighted text as inline-styled, escaped HTML (the demo, exports and model cards).

    Every word carries its scaled value as text, not only as colour: as its hover title, and after the word in
    text that only screen readers read (visually hidden by inline style; where a renderer strips styles, it
    shows in brackets).
    """
    parts = []
    for text, score in highlight_value(explanation, scale=scale, segment=segment, attributions=attributions):
        if score is None:
            parts.append(escape(text).replace("\n", "<br>"))
        else:
            value = f"{score:+.2f}"
            parts.append(
                f'<span class="udig-word" title="{value}" style="background:{colour(score)};color:#111;'
                f'border-radius:3px;padding:0 2px">{escape(text)}'
                f'<span class="udig-value" style="{_READER_ONLY}"> ({value})</span></span>'
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
        "<br><small>Per-word attribution, summed over sub-words, scaled to [−1, 1] by the largest |score|; "
        "hover a word for its value.</small>"
        "</div>"
    )


def describe(explanation: Explanation) -> str:
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


_PAGE_CSS = (  # the standalone page's whole style
    "body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.7;color:#111}\n"
    ".udig-text{font-size:1.15rem;border:1px solid #ddd;border-radius:6px;padding:.8rem 1rem}\n"
    "table{border-collapse:collapse;margin-top:1rem;font-size:.9rem} "
    "td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}\n"
    ".udig-legend{margin:.6rem 0;font-size:.9rem} footer{margin-top:1.5rem;color:#666;font-size:.8rem}\n"
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
{_PAGE_CSS}</style></head><body>
<h1>{escape(title)}</h1>
<p>Model <code>{escape(model)}</code> · explained label <b>{escape(explanation.target_label)}</b>{escape(prediction)} ·
method {escape(describe(explanation))} · completeness error Δ = {explanation.delta:+.4f}</p>
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
    word_list = sorted(content_words(explanation), key=lambda w: -abs(w.attribution))[:top]
    model = explanation.settings.get("model", "")
    alt = f"Word attributions for the label {explanation.target_label}: red pushes toward it, blue away from it"
    demo = "Open this example in the udig demo"
    if fmt == "html":
        top_html = ", ".join(f"<code>{card_text(w.text)}</code> ({w.attribution:+.3f})" for w in word_list)
        picture = f'<p><img src="{escape(_link_target(image))}" alt="{card_text(alt)}"></p>\n' if image else ""
        back = f'<p><a href="{escape(_link_target(link))}">{demo}</a></p>\n' if link else ""
        return (
            f"<h3>Model examination</h3>\n<h4>Example explanation ({escape(describe(explanation))})</h4>\n{picture}"
            f"<p>Model <code>{card_text(model)}</code>, label <b>{card_text(explanation.target_label)}</b>. "
            "Red pushes toward the label, blue away from it.</p>\n"
            f'<p style="line-height:1.8">{highlight_html(explanation)}</p>\n'
            f"<p>Most influential words: {top_html}</p>\n{_metrics_html(metrics)}\n{back}"
        )
    lines = ["### Model examination", "", f"#### Example explanation ({escape_markdown(describe(explanation))})", ""]
    if image:
        lines += [f"![{card_text(alt)}]({_link_target(image)})", ""]
    if link:
        lines += [f"[{demo}]({_link_target(link)})", ""]
    lines += [
        f"Model {card_text(model)}, explained label **{card_text(explanation.target_label)}**, "
        f"completeness error Δ = {explanation.delta:+.4f}.",
        "",
        f"> {card_text(explanation.text)}",
        "",
        "| word | attribution |",
        "| --- | ---: |",
        *[f"| {card_text(w.text)} | {w.attribution:+.4f} |" for w in word_list],
    ]
    if metrics:
        lines += ["", "| score | value | better |", "| --- | ---: | --- |"]
        lines += [
            f"| {name.replace('|', chr(92) + '|')} | {'—' if value is None else f'{value:.4f}'} | {better} |"
            for name, value, better, _ in metric_rows(metrics)
        ]
    lines += ["", "_Attributions computed with udig (Uniform Discretized Integrated Gradients, Roy & Kundu 2024)._", ""]
    return "\n".join(lines)
