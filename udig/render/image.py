"""Images of the highlight (PNG, SVG) for model cards, whose renderers may strip the HTML's inline colours.

Drawn with matplotlib without pyplot, in the same words and colours as the HTML (:func:`udig.render.colour`).
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..explanation import Explanation
from .markup import describe
from .words import colour, highlight_value

IMAGE_FORMATS = ("png", "svg")
_WIDTH_IN, _MARGIN_IN, _PNG_DPI = 8.0, 0.3, 150
_TEXT_PT, _SMALL_PT = 14.0, 9.5
_PAD = 0.18  # box padding around a word, in font sizes (as matplotlib's boxstyle pad)
_SMALL_ROW, _TEXT_ROW = _SMALL_PT / 72 * 1.6, _TEXT_PT / 72 * 1.9  # line heights, inches
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


class _Canvas:
    """A bare :class:`matplotlib.figure.Figure` (no pyplot, so concurrent requests share no figure state),
    measured and written in inches from its top left corner; ``height`` is set once the content is known."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(_WIDTH_IN, 1.0), dpi=_PNG_DPI)
        self.renderer = FigureCanvasAgg(self.figure).get_renderer()
        self.usable = _WIDTH_IN - 2 * _MARGIN_IN
        self.height = 1.0

    def width(self, text: str, size: float = _TEXT_PT) -> float:
        """The width of ``text`` in inches."""
        from matplotlib.font_manager import FontProperties

        measured = self.renderer.get_text_width_height_descent(text, FontProperties(size=size), ismath=False)[0]
        return measured / self.figure.dpi

    def fit(self, text: str) -> str:
        """A header line cut to the drawing's width."""
        text = _clipped(text, 160)
        while len(text) > 1 and self.width(text, _SMALL_PT) > self.usable:
            text = text[:-2] + "…"
        return text

    def resize(self, height: float) -> None:
        self.height = height
        self.figure.set_size_inches(_WIDTH_IN, height)

    def at(self, x_in: float, y_in: float) -> tuple[float, float]:
        """Inches from the top left -> figure fraction."""
        return (_MARGIN_IN + x_in) / _WIDTH_IN, 1 - y_in / self.height

    def write(self, x_in: float, y_in: float, text: str, size: float = _SMALL_PT, **style: Any) -> None:
        """Text whose ``$...$`` is never parsed as mathematics."""
        self.figure.text(*self.at(x_in, y_in), text, fontsize=size, va="center", parse_math=False, **style)


def highlight_image(
    explanation: Explanation, fmt: str = "png", *, attributions: Sequence[float] | None = None
) -> bytes:
    """The highlight as a PNG or SVG image: wrapped words coloured by :func:`colour`, legend, model, label.

    For model cards: the Hub's card renderer and other sanitisers may strip the inline colours of
    :func:`udig.render.highlight_html`, but not an image. matplotlib's parser for ``$...$`` is off, and the
    SVG keeps the words as ``<text>``, escaped by matplotlib's XML writer.
    """
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; choose png or svg")
    canvas = _Canvas()
    pad = _PAD * _TEXT_PT / 72
    placed, lines = _wrap(highlight_value(explanation, attributions=attributions), canvas.width, canvas.usable, pad)
    label = _clipped(explanation.target_label, 40)
    probability = f" (p = {explanation.probs[explanation.target]:.3f})" if explanation.output == "logits" else ""
    header = [
        canvas.fit(f"Model {explanation.settings.get('model', '')} · explained label {label}{probability}"),
        canvas.fit(f"{describe(explanation)} · completeness error Δ = {explanation.delta:+.4f}"),
    ]
    text_top = _MARGIN_IN + len(header) * _SMALL_ROW + 0.1
    legend_top = text_top + lines * _TEXT_ROW + 0.1
    canvas.resize(legend_top + 2 * _SMALL_ROW + _MARGIN_IN)
    for n, text in enumerate(header):
        canvas.write(0, _MARGIN_IN + (n + 0.5) * _SMALL_ROW, text, color="#444444")
    for x_in, line_no, text, score in placed:
        box = (
            None
            if score is None
            else {"boxstyle": f"round,pad={_PAD}", "facecolor": _rgba(colour(score)), "edgecolor": "none"}
        )
        canvas.write(x_in + pad, text_top + (line_no + 0.5) * _TEXT_ROW, text, _TEXT_PT, color="#111111", bbox=box)
    _legend(canvas, label, legend_top + 0.5 * _SMALL_ROW)
    return _saved(canvas.figure, fmt)


def _legend(canvas: _Canvas, label: str, y: float) -> None:
    """The colour scale from "away from" to "toward" the label at height ``y``, and a note under it."""
    from matplotlib.patches import Rectangle

    away = f"− away from {label}"
    canvas.write(0, y, away)
    x_in, swatch = canvas.width(away, _SMALL_PT) + 0.1, 0.22
    for stop in range(-4, 5):
        corner = canvas.at(x_in, y + 0.07)
        canvas.figure.add_artist(
            Rectangle(
                corner,
                swatch / _WIDTH_IN,
                0.14 / canvas.height,
                transform=canvas.figure.transFigure,
                facecolor=_rgba(colour(stop / 4)),
                edgecolor="none",
            )
        )
        x_in += swatch
    canvas.write(x_in + 0.1, y, f"toward {label} +")
    canvas.write(
        0,
        y + _SMALL_ROW,
        "Per-word attribution, summed over sub-words, scaled to [−1, 1] by the largest |score|. Made with udig.",
        color="#666666",
    )


def _saved(figure, fmt: str) -> bytes:
    """The figure's PNG, or its SVG with the words kept as ``<text>`` (not glyph paths) and no date."""
    import matplotlib

    buffer = io.BytesIO()
    if fmt == "svg":
        with _SVG_AS_TEXT, matplotlib.rc_context({"svg.fonttype": "none"}):
            figure.savefig(buffer, format="svg", metadata={"Date": None})
    else:
        figure.savefig(buffer, format="png", dpi=_PNG_DPI)
    return buffer.getvalue()
