"""The files an evaluation summary is written to: ``summary.json``, ``results.csv``, ``table.md`` and ``chart.png``.

Pure functions of the summary :func:`udig.evaluation.summary.summarize` returns; labels and directions come
from the metric metadata in :mod:`udig.metrics`.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np

from ..metrics import DIAGNOSTICS, FAITHFULNESS_KEYS, METRIC_INFO
from ..paths import STRATEGIES


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}".replace("-", "−")


def _interval(entry: dict) -> str:
    return f"{_fmt(entry['mean'])} [{_fmt(entry['low'])}, {_fmt(entry['high'])}]"


def _keys(summary: dict) -> list[str]:
    """The faithfulness metrics the summary holds (runs recorded before AOPC existed have the first three only)."""
    entries = list(summary["methods"].values())
    return [key for key in FAITHFULNESS_KEYS if not entries or key in entries[0]]


def _metric_headers(keys: list[str]) -> str:
    return " | ".join(f"{METRIC_INFO[key].name} {METRIC_INFO[key].arrow}" for key in keys)


def markdown_table(summary: dict) -> str:
    """The per-method table and the paired comparisons, as Markdown."""
    keys = _keys(summary)
    head = [
        f"| Method | n | {_metric_headers(keys)} | mean \\|Δ\\| "
        "| \\|Δ\\|/\\|F(x)−F(x′)\\| mean (median) "
        "| WAE (all rows) | WAE (real words) | real-word anchors | s / example |",
        "|---|--:|" + "---|" * len(keys) + "--:|" * 6,
    ]
    lines = []
    for name in summary["methods_order"]:
        m = summary["methods"][name]
        share = m["real_word_share"]
        lines.append(
            f"| {name} | {m['n']} | {' | '.join(_interval(m[key]) for key in keys)} | {_fmt(m['delta'], 4)} "
            f"| {_fmt(m['relative_delta'])} ({_fmt(m['relative_delta_median'])}) "
            f"| {_fmt(m['wae'])} | {_fmt(m['wae_words'])} | {'–' if share is None else f'{share:.1%}'} "
            f"| {_fmt(m['seconds'], 2)} |"
        )
    text = "\n".join(head + lines) + "\n"
    if summary["comparisons"]:
        text += (
            "\nPaired differences (method minus rival, same sentences; 95 % bootstrap interval; "
            "better/worse for the method only when the interval excludes 0):\n\n"
            f"| method | versus | {_metric_headers(keys)} |\n|---|---|" + "---|" * len(keys) + "\n"
        )
        grouped: dict[tuple[str, str], dict[str, dict]] = {}
        for c in summary["comparisons"]:
            grouped.setdefault((c["method"], c["versus"]), {})[c["metric"]] = c
        for (method, versus), cells in grouped.items():
            row = [
                f"{_fmt(c['difference'])} [{_fmt(c['low'])}, {_fmt(c['high'])}] {c['verdict']}"
                for c in (cells[name] for name in keys)
            ]
            text += f"| {method} | {versus} | " + " | ".join(row) + " |\n"
    return text


def write_csv(path: Path, summary: dict) -> None:
    keys = _keys(summary)
    columns = ["method", "n", "errors"]
    for name in keys:
        columns += [name, f"{name}_low", f"{name}_high"]
    columns += [*DIAGNOSTICS, "relative_delta_median", "seconds", "metric_seconds"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for name in summary["methods_order"]:
            m = summary["methods"][name]
            row = [name, m["n"], m["errors"]]
            for metric in keys:
                row += [m[metric]["mean"], m[metric]["low"], m[metric]["high"]]
            row += [m[d] for d in (*DIAGNOSTICS, "relative_delta_median", "seconds", "metric_seconds")]
            writer.writerow(["" if v is None else v for v in row])


def _family(name: str) -> str:
    """A method name without strategy, candidates, baseline or rule: ``seq-udig-maxcount:words@pad`` -> ``seq-udig``."""
    base = re.split(r"[:@/]", name)[0]
    for strategy in STRATEGIES:
        base = base.removesuffix(f"-{strategy}")
    return base


def write_chart(path: Path, summary: dict) -> None:
    """Bars of the faithfulness metrics per method with their bootstrap intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = summary["methods_order"]
    family = {
        "ig": "#7f7f7f",
        "sig": "#55a868",
        "dig": "#4c72b0",
        "udig": "#dd8452",
        "seq-dig": "#8172b2",
        "seq-udig": "#c44e52",
        "random": "#c7c7c7",
        "grad-input": "#a6a6a6",
    }
    colours = [family.get(_family(n), "#999999") for n in names]
    hatches = ["//" if n.endswith(":words") else "" for n in names]
    keys = _keys(summary)
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 0.42 * len(names) + 1.6), sharey=True)
    positions = np.arange(len(names))
    for ax, metric in zip(axes, keys):
        entries = [summary["methods"][n][metric] for n in names]
        means = np.array([e["mean"] if e["mean"] is not None else np.nan for e in entries])
        errors = np.array([[m - e["low"], e["high"] - m] for m, e in zip(means, entries)]).T
        bars = ax.barh(positions, means, xerr=errors, color=colours, capsize=3, edgecolor="black", linewidth=0.4)
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_title(f"{METRIC_INFO[metric].name} {METRIC_INFO[metric].arrow}")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(positions, names)
    axes[0].invert_yaxis()
    config = summary["config"]
    fig.suptitle(
        f"{config['model']} on {config['dataset']}: {summary['n_examples']} examples, top-{config['topk']} %, "
        f"steps {config['steps']}, factor {config['factor']} (95 % bootstrap intervals; hatched: real-word candidates)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(out: Path, summary: dict) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    write_csv(out / "results.csv", summary)
    (out / "table.md").write_text(markdown_table(summary))
    write_chart(out / "chart.png", summary)
