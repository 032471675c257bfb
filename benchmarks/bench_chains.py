"""Remembered anchor chains over a stream of reviews: a path's time when its sentence's words are searched
from nothing, and when the chains found for earlier sentences are remembered.

    python benchmarks/bench_chains.py [--sentences 40] [--out benchmarks/chains_results.md]

The first N sentences of the offline Rotten Tomatoes test split, explained in order at 32 points for each
anchored method, strategy and candidate set: once as a stream (nothing remembered at its start, every
chain found kept for the sentences after it) and once cold (every chain forgotten before each sentence).
The two passes of a case run one after the other, the stream first in every other case; the path is timed
inside explain(). Each ratio is the median over sentences of stream / cold path time, with its
distribution-free 95 % interval; "remembered" is the share of each pass's word tokens whose word an
earlier sentence of the stream already had.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from bench_engine import median_interval  # noqa: E402 - benchmarks/, beside this script
from machine import processor  # noqa: E402

from udig import Explainer  # noqa: E402
from udig.data import load_split  # noqa: E402
from udig.models import load_model  # noqa: E402

CASES = list(itertools.product(("udig", "dig"), ("maxcount", "greedy"), ("all", "words")))


def path_times(explainer: Explainer, texts: list[str], remember: bool, **options) -> tuple[list[float], list[float]]:
    """Seconds of each sentence's path and whole explain(), in order; with ``remember`` the chains found
    for one sentence stay for the next (the memory is emptied at the start either way)."""
    explainer.vocab_.forget_chains()
    paths, totals = [], []
    for text in texts:
        if not remember:
            explainer.vocab_.forget_chains()
        timings = explainer.explain(text, **options).timings
        paths.append(timings["path"])
        totals.append(timings["total"])
    return paths, totals


def remembered_share(tokenizer, texts: list[str]) -> float:
    """The share of the stream's word tokens whose word was in an earlier sentence."""
    seen: set[int] = set()
    found = total = 0
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=126)["input_ids"]
        found += sum(token in seen for token in ids)
        total += len(ids)
        seen.update(ids)
    return found / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=40, help="the first N test sentences, in order")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "chains_results.md")
    args = parser.parse_args()
    model, tokenizer = load_model()
    explainer = Explainer(model, tokenizer)
    texts = [example.text for example in load_split("test")[: args.sentences]]
    machine = processor()
    load_before = os.getloadavg()
    print(
        f"{machine}; torch {torch.__version__}, {torch.get_num_threads()} threads; load average {load_before[0]:.2f}",
        flush=True,
    )
    for method, strategy, rule in CASES:  # warm-up: the vocabulary index, the graphs, numba's caches
        explainer.explain(texts[0], method=method, strategy=strategy, candidates=rule)
    share = remembered_share(tokenizer, texts)
    rows = []
    for number, (method, strategy, rule) in enumerate(CASES):
        options = dict(method=method, strategy=strategy, candidates=rule)
        order = (True, False) if number % 2 == 0 else (False, True)
        runs = {remember: path_times(explainer, texts, remember, **options) for remember in order}
        (stream, stream_total), (cold, cold_total) = runs[True], runs[False]
        ratios = [s / c for s, c in zip(stream, cold)]
        low, high = median_interval(ratios)
        row = (
            f"{method}-{strategy}, {rule}",
            1000 * statistics.mean(cold),
            1000 * statistics.mean(stream),
            statistics.median(ratios),
            (low, high),
            1000 * statistics.mean(cold_total),
            1000 * statistics.mean(stream_total),
        )
        rows.append(row)
        print(
            f"{row[0]:24s} path cold {row[1]:6.1f} ms, stream {row[2]:6.1f} ms, "
            f"ratio {row[3]:.3f} [{low:.3f}, {high:.3f}]; "
            f"explain() {row[5]:6.1f} -> {row[6]:6.1f} ms",
            flush=True,
        )
    load_after = os.getloadavg()
    lines = [
        f"Measured on {machine}, torch {torch.__version__}, {torch.get_num_threads()} threads; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after. The first {len(texts)} Rotten Tomatoes test "
        f"sentences in order, 32 points, m = 30; {100 * share:.0f} % of their word tokens repeat a word of an "
        "earlier sentence.",
        "",
        "| method, candidates | path, cold (mean ms) | path, stream (mean ms) | stream / cold, median over sentences "
        "| 95 % interval | explain(), cold (mean ms) | explain(), stream (mean ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[
            f"| {name} | {cold:.1f} | {stream:.1f} | {ratio:.3f} | {low:.3f}–{high:.3f} "
            f"| {cold_total:.0f} | {stream_total:.0f} |"
            for name, cold, stream, ratio, (low, high), cold_total, stream_total in rows
        ],
        "",
        "Cold: every chain forgotten before each sentence (each path searched from nothing). Stream: nothing",
        "remembered at the first sentence, then every chain found kept for the sentences after it. The two passes",
        "of a case ran one after the other, the stream first in every other case.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
