"""Do the Rotten Tomatoes findings hold on IMDb reviews ten times longer? Each method minus IG, paired over the
same texts with 95 % bootstrap intervals (2,000 resamples, seeded), on the reviews of this folder and on the
200 Rotten Tomatoes sentences of ``docs/evaluation-sequential/`` side by side (every method of the 500-sentence
table rerun with today's real-word rule, AOPCs included); then the three findings read off them, how the completeness
error grows with length, and what a review costs. Everything comes from the two folders' records.

    PYTHONPATH=. python docs/evaluation-imdb/findings.py   # writes findings.md beside this file
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from udig import evaluation
from udig.metrics import FAITHFULNESS_KEYS, METRIC_INFO

HERE = Path(__file__).resolve().parent
RT = HERE.parent / "evaluation-sequential"
YARDSTICKS = ["random", "grad-input"]
# the path methods of this run besides IG: DIG and UDIG, Greedy and MaxCount, real-word anchors, UDIG also from [PAD]
PATHS = [m for m in json.loads((HERE / "summary.json").read_text())["methods_order"] if m not in ("ig", *YARDSTICKS)]
KEYS = FAITHFULNESS_KEYS  # the top-20 % scores and both AOPCs
LENGTHS = [(0, 128), (129, 256), (257, 511), (512, 512)]  # tokens, [CLS] and [SEP] included


def paired(rows: dict[str, dict[str, dict]], method: str, rival: str, metric: str, offset: int) -> dict:
    return evaluation.paired_difference(rows[method], rows[rival], metric, np.random.default_rng([0, offset]))


def cell(difference: dict) -> str:
    d = difference
    return f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] {d['verdict']}"


def against_ig(rows: dict[str, dict[str, dict]]) -> dict[tuple[str, str], dict]:
    return {
        (method, metric): paired(rows, method, "ig", metric, 10 * k + j)
        for k, method in enumerate(PATHS + YARDSTICKS)
        for j, metric in enumerate(KEYS)
    }


def lines() -> list[str]:
    summary, imdb = evaluation.read_run(HERE)
    _, rt = evaluation.read_run(RT)
    ours, theirs = against_ig(imdb), against_ig(rt)
    n, n_rt = len(imdb["ig"]), len(rt["ig"])
    tokens = np.array([r["length"] for r in imdb["ig"].values()])
    rt_tokens = np.array([r["length"] for r in rt["ig"].values()])
    head = " | ".join(f"{METRIC_INFO[m].short} {METRIC_INFO[m].arrow}" for m in KEYS)
    out = [
        "# IMDb reviews against Rotten Tomatoes sentences: do the findings hold on long texts?",
        "",
        f"IMDb: {n} test reviews of udig's split in the seeded order, `udig/minilm-imdb` (512 tokens), tokens per "
        f"review median {np.median(tokens):.0f} (mean {tokens.mean():.0f}, {np.mean(tokens >= 512):.0%} cut at "
        f"512). Rotten Tomatoes: the {n_rt} sentences of `docs/evaluation-sequential/`, `udig/minilm-rotten-tomatoes`, "
        f"median {np.median(rt_tokens):.0f} tokens (mean {rt_tokens.mean():.0f}): the reviews are "
        f"{tokens.mean() / rt_tokens.mean():.0f}x longer on average. Same settings otherwise "
        f"(steps {summary['config']['steps']}, top {summary['config']['topk']} %).",
        "",
        "## Each method minus IG, paired over the same texts",
        "",
        "Mean difference [95 % paired bootstrap interval]; better/worse only when the interval excludes 0.",
        "",
        f"| method | data | {head} |",
        "|---|---|" + "---|" * len(KEYS),
    ]
    for method in PATHS + YARDSTICKS:
        for name, table in (("IMDb", ours), ("RT", theirs)):
            out.append(f"| {method} | {name} | " + " | ".join(cell(table[method, m]) for m in KEYS) + " |")
    out += ["", "## The three Rotten Tomatoes findings, read again on IMDb", ""]
    out += findings(imdb, rt, ours, theirs)
    out += ["", "## Completeness error and length", ""]
    out += completeness(imdb, rt)
    out += ["", "## Cost per review", ""]
    out += cost(imdb)
    return out


def verdicts(table: dict, methods: list[str], metric: str) -> str:
    return ", ".join(f"{m} {table[m, metric]['verdict']} ({table[m, metric]['difference']:+.3f})" for m in methods)


def findings(imdb: dict, rt: dict, ours: dict, theirs: dict) -> list[str]:
    """The three statements of docs/evaluation.md, each with its log-odds intervals on both data sets."""
    udig = ["udig-greedy:words", "udig-maxcount:words"]
    dig = ["dig-greedy:words", "dig-maxcount:words"]
    out = [
        "Change of each method's log-odds gap to IG from Rotten Tomatoes to IMDb (IMDb gap − RT gap; the two "
        "data sets resampled independently, 2,000 times, seeded): "
        + "; ".join(f"{m} {change_of_gap(imdb, rt, m, 'log_odds', 200 + k)}" for k, m in enumerate(PATHS))
        + ".",
        "",
        f"1. **UDIG behind IG** (log-odds, method − IG). RT: {verdicts(theirs, udig, 'log_odds')}. "
        f"IMDb: {verdicts(ours, udig, 'log_odds')}.",
        f"2. **DIG with real words tied with IG** (log-odds). RT: {verdicts(theirs, dig, 'log_odds')}. "
        f"IMDb: {verdicts(ours, dig, 'log_odds')}.",
        "3. **The [PAD] baseline closes most of UDIG's gap** (log-odds gap to IG from [MASK] and from [PAD]; "
        "the share closed is 1 − gap@pad / gap):",
    ]
    for method in udig:
        for name, rows, table in (("RT", rt, theirs), ("IMDb", imdb, ours)):
            gap, gap_pad = table[method, "log_odds"], table[f"{method}@pad", "log_odds"]
            change = paired(rows, f"{method}@pad", method, "log_odds", 99)
            closed = (  # only where there is a gap to close
                f"{1 - gap_pad['difference'] / gap['difference']:.0%}" if gap["verdict"] == "worse" else "no gap"
            )
            out.append(
                f"   - {method}, {name}: gap {cell(gap)}; from [PAD] {cell(gap_pad)}; share closed {closed}; "
                f"[PAD] − [MASK] {cell(change)}"
            )
    return out


def change_of_gap(imdb: dict, rt: dict, method: str, metric: str, offset: int) -> str:
    """(method − IG on IMDb) − (method − IG on RT): mean and a 95 % bootstrap interval that resamples the texts
    of each data set on its own (they are different texts, so nothing pairs them)."""
    rng = np.random.default_rng([0, offset])
    gaps = []
    for rows in (imdb, rt):
        common = sorted(set(rows[method]) & set(rows["ig"]))
        gaps.append(np.array([rows[method][e][metric] - rows["ig"][e][metric] for e in common]))
    draws = [g[rng.integers(0, len(g), size=(2000, len(g)))].mean(1) for g in gaps]
    low, high = np.percentile(draws[0] - draws[1], [2.5, 97.5])
    return f"{gaps[0].mean() - gaps[1].mean():+.3f} [{low:+.3f}, {high:+.3f}]"


def completeness(imdb: dict, rt: dict) -> list[str]:
    """|Σ attributions − (F(x) − F(x'))| and its size relative to |F(x) − F(x')|, by review length."""
    out = [
        "Median |Δ| (Δ = Σ attributions − (F(x) − F(x')), in the explained class's logit) and median "
        "relative |Δ| / |F(x) − F(x')|, by tokens per text; Spearman's ρ of |Δ| with length over the reviews.",
        "",
        "| method | RT sentences | " + " | ".join(f"IMDb {a}-{b} tokens" for a, b in LENGTHS) + " | ρ(length, |Δ|) |",
        "|---|---|" + "---|" * (len(LENGTHS) + 1),
    ]
    for method in ["ig", *PATHS]:
        rows = list(imdb[method].values())
        size = np.array([r["length"] for r in rows])
        error = np.abs([r["delta"] for r in rows])
        relative = np.array([r["relative_delta"] if r["relative_delta"] is not None else np.nan for r in rows])
        cells = []
        for low, high in LENGTHS:
            chosen = (size >= low) & (size <= high)
            cells.append(
                f"{np.median(error[chosen]):.3f} / {np.nanmedian(relative[chosen]):.2f} (n={chosen.sum()})"
                if chosen.any()
                else "-"
            )
        rt_rows = list(rt[method].values())
        rt_cell = (
            f"{np.median(np.abs([r['delta'] for r in rt_rows])):.3f} / "
            f"{np.nanmedian([r['relative_delta'] if r['relative_delta'] is not None else np.nan for r in rt_rows]):.2f}"
        )
        out.append(f"| {method} | {rt_cell} | " + " | ".join(cells) + f" | {spearman(size, error):+.2f} |")
    return out


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties)."""

    def ranks(v: np.ndarray) -> np.ndarray:
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for value in np.unique(v):  # ties share their mean rank
            tied = v == value
            r[tied] = r[tied].mean()
        return r

    return float(np.corrcoef(ranks(np.asarray(x, float)), ranks(np.asarray(y, float)))[0, 1])


def cost(imdb: dict) -> list[str]:
    """Seconds per review from the records (attribution and metrics, each method), by length."""
    methods = ["ig", *PATHS, *YARDSTICKS]
    total = {}
    for method in methods:
        for example, record in imdb[method].items():
            total[example] = total.get(example, 0.0) + record["seconds"] + record["metric_seconds"]
    size = {e: r["length"] for e, r in imdb["ig"].items()}
    out = [
        f"Wall seconds per review, all {len(methods)} methods with their metrics, as the records measured them "
        "(one worker process per core, one torch thread each):",
        "",
        "| tokens | reviews | median s | mean s |",
        "|---|---|---|---|",
    ]
    for low, high in [*LENGTHS, (0, 512)]:
        chosen = [total[e] for e in total if low <= size[e] <= high]
        if chosen:
            label = "all" if (low, high) == (0, 512) else f"{low}-{high}"
            out.append(f"| {label} | {len(chosen)} | {np.median(chosen):.1f} | {np.mean(chosen):.1f} |")
    per_method = {m: np.mean([r["seconds"] + r["metric_seconds"] for r in imdb[m].values()]) for m in methods}
    out += ["", "Mean seconds per review by method: " + ", ".join(f"{m} {s:.1f}" for m, s in per_method.items())]
    return out


if __name__ == "__main__":
    (HERE / "findings.md").write_text("\n".join(lines()) + "\n", encoding="utf-8")
