"""Rows for the demo's tables: class probabilities, one row per token, faithfulness scores and their winners."""

from __future__ import annotations

import math

from ..explanation import Explanation
from ..metrics import METRIC_INFO, SCORES
from .words import max_abs, scaled, words


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
                round(scaled(attribution, scale), 3),
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
