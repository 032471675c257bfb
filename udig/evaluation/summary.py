"""The summary of an evaluation's records: per-method means with intervals, and paired comparisons.

Per method, the mean of each metric with a seeded percentile-bootstrap 95 % interval; per comparison, the
mean difference over the examples both methods have, with its own interval and the verdict it supports.
The summary is a pure function of the records, the examples and the seed, so a committed table can be
recomputed from its ``records.jsonl`` alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..methods import REGISTRY
from ..metrics import AOPC_KEYS, DIAGNOSTICS, FAITHFULNESS_KEYS, METRIC_INFO
from .items import Item, load_items
from .records import RECORDS, read_records
from .spec import SEQUENTIAL, MethodSpec, parse_methods

BOOTSTRAP_RESAMPLES = 2000
CONVENTIONS = (
    "k = floor(L * topk / 100) with L counting special tokens; top-k = largest signed attributions. "
    "Log-odds: top-k replaced by [PAD] in place; comprehensiveness: top-k deleted; sufficiency: only "
    "top-k kept (no [CLS]/[SEP] added back), 0 when k = 0. p = softmax probability of the class "
    "predicted on the original input. QA: [MASK] replacement, softmax over positions. "
    f"Intervals: percentile bootstrap, {BOOTSTRAP_RESAMPLES} resamples, seeded."
)


def bootstrap_interval(
    values: np.ndarray, rng: np.random.Generator, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of the mean."""
    if len(values) == 0:
        return math.nan, math.nan
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def paired_difference(
    rows: dict[str, dict], rival_rows: dict[str, dict], metric: str, rng: np.random.Generator
) -> dict[str, Any]:
    """Mean of ``metric`` differences (rows minus rival) over the examples both have, its bootstrap 95 %
    interval, and the verdict it supports: pairing removes the examples' own spread from the comparison."""
    common = sorted(set(rows) & set(rival_rows))
    diff = np.array([rows[i][metric] - rival_rows[i][metric] for i in common], dtype=float)
    low, high = bootstrap_interval(diff, rng)
    return {
        "n": len(common),
        "difference": _mean(diff),
        "low": low,
        "high": high,
        "verdict": verdict(metric, low, high),
    }


def summarize(
    records: dict[str, dict], items: list[Item], methods: list[MethodSpec], config: dict, *, seed: int = 0
) -> dict:
    """Per-method means with bootstrap intervals, paired comparisons (:func:`rivals`), accuracy and run time."""
    keys = [k for k in FAITHFULNESS_KEYS if k not in AOPC_KEYS or any(k in r for r in records.values())]  # old: no AOPC
    per_method: dict[str, dict] = {}
    rows_by_method: dict[str, dict[str, dict]] = {}
    for spec in methods:
        rows = {item.id: records.get(f"{item.id}|{spec.name}") for item in items}
        rows_by_method[spec.name] = _good(rows)
        per_method[spec.name] = _method_entry(rows, keys, seed)
    first = next(iter(rows_by_method.values()), {})
    labelled = [(r["label"], r["pred"]) for r in first.values() if r.get("label") is not None and "pred" in r]
    pairs = [r for rows in rows_by_method.values() for r in rows.values()]
    return {
        "config": config,
        "n_examples": len(items),
        "methods_order": [spec.name for spec in methods],
        "accuracy": (sum(a == b for a, b in labelled) / len(labelled)) if labelled else None,
        "mean_tokens": _mean(np.array([r["length"] for r in first.values()], dtype=float)),
        "methods": per_method,
        "comparisons": _comparisons(rows_by_method, methods, keys, seed),
        "runtime": {
            "attribution_seconds": float(sum(r["seconds"] for r in pairs)),
            "metric_seconds": float(sum(r["metric_seconds"] for r in pairs)),
        },
        "conventions": CONVENTIONS,
    }


def read_run(out: Path) -> tuple[dict, dict[str, dict[str, dict]]]:
    """A finished run's ``summary.json`` and, per method of it, its records without errors over the run's
    examples, by example id: what an analysis of a committed folder starts from."""
    summary = json.loads((out / "summary.json").read_text())
    config = summary["config"]
    items = load_items(config["dataset"], config["seed"])[: summary["n_examples"]]
    records = read_records(out / RECORDS)
    rows = {m: _good({i.id: records.get(f"{i.id}|{m}") for i in items}) for m in summary["methods_order"]}
    return summary, rows


def _good(rows: dict[str, dict | None]) -> dict[str, dict]:
    """The rows that exist and hold no error."""
    return {i: r for i, r in rows.items() if r is not None and "error" not in r}


def _method_entry(rows: dict[str, dict | None], keys: list[str], seed: int) -> dict[str, Any]:
    """One method's counts, metric means with intervals, diagnostics and times, from its row per example
    (None where missing)."""
    good = list(_good(rows).values())
    errors = sum(r is not None and "error" in r for r in rows.values())
    entry: dict[str, Any] = {"n": len(good), "missing": sum(r is None for r in rows.values()), "errors": errors}
    for offset, name in enumerate(keys):
        values = np.array([r[name] for r in good if r.get(name) is not None], dtype=float)
        low, high = bootstrap_interval(values, np.random.default_rng([seed, offset]))
        entry[name] = {"mean": _mean(values), "low": low, "high": high}
    for name in DIAGNOSTICS:
        values = np.array([r[name] for r in good if r.get(name) is not None], dtype=float)
        entry[name] = _mean(values)
        if name == "relative_delta":
            entry["relative_delta_median"] = float(np.median(values)) if len(values) else None
    entry["seconds"] = _mean(np.array([r["seconds"] for r in good], dtype=float))
    entry["metric_seconds"] = _mean(np.array([r["metric_seconds"] for r in good], dtype=float))
    return entry


def _comparisons(
    rows_by_method: dict[str, dict[str, dict]], methods: list[MethodSpec], keys: list[str], seed: int
) -> list[dict[str, Any]]:
    """Every paired difference of a method against each of its :func:`rivals` in the run, metric by metric."""
    comparisons = []
    for spec in methods:
        for rival in (r for r in rivals(spec) if r in rows_by_method):
            for offset, metric in enumerate(keys):
                ours, theirs = (
                    {i: r for i, r in rows_by_method[m].items() if r.get(metric) is not None}
                    for m in (spec.name, rival)
                )
                difference = paired_difference(ours, theirs, metric, np.random.default_rng([seed, 100 + offset]))
                comparisons.append({"method": spec.name, "versus": rival, "metric": metric, **difference})
    return comparisons


def rivals(spec: MethodSpec) -> list[str]:
    """The methods a paired comparison sets ``spec`` against, each for the question it answers; UDIG's and the
    sequential methods' only."""
    if spec.sequential or spec.method == "sig":  # against IG, and against the same paths integrated jointly
        if spec.sequential:
            joint = spec.name[len(SEQUENTIAL) :]
        else:  # SIG's joint path is IG's line from SIG's baseline
            suffix = (f"/{spec.rule}" if spec.rule else "") + (f"+{spec.objective}" if spec.objective else "")
            joint = parse_methods(f"ig@{spec.baseline or REGISTRY['sig'].paper_baseline}{suffix}")[0].name
        return list(dict.fromkeys(["ig", joint]))
    if spec.method != "udig":
        return []
    found = ["ig", f"dig-{spec.strategy}:{spec.candidates}"]  # the papers' question
    if spec.objective:
        found.append(spec.name.rpartition("+")[0])  # the same method explaining the input's target: does F matter?
    elif spec.rule:
        found.append(spec.name.rpartition("/")[0])  # the same method with the papers' left sum: does the rule matter?
    elif spec.baseline:
        found.append(f"udig-{spec.strategy}:{spec.candidates}")  # does the baseline token matter?
    else:
        if spec.candidates == "words":
            found.append(f"udig-{spec.strategy}:all")  # does the real-word candidate set help?
        if spec.strategy == "maxcount":
            found.append(f"udig-greedy:{spec.candidates}")  # which strategy?
    return found


def verdict(metric: str, low: float, high: float) -> str:
    """ "better", "worse" or "tie" from a difference interval (method minus rival)."""
    if math.isnan(low) or low <= 0 <= high:
        return "tie"
    lower_is_better = METRIC_INFO[metric].better == "lower"
    return "better" if (high < 0) == lower_is_better else "worse"


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None
