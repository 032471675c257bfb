"""Files: the explanation as JSON and CSV, with the versions of everything that shaped it."""

from __future__ import annotations

import csv
import io
import json
import math
import platform
from datetime import datetime, timezone
from typing import Any

from ..explanation import Explanation
from ..version import __version__
from .words import max_abs, scaled, words


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
                f"{scaled(attribution, scale):.4f}",
            ]
        )
    return out.getvalue()
