"""Gradient evaluations needed to reach a completeness target: adaptive refinement against uniform upscaling.

    python benchmarks/bench_completeness.py [--sentences 20] [--target 0.05]

For each of the first N sentences of the evaluation's seeded order (udig's offline Rotten Tomatoes test set,
offline default model, real-word anchors, m = 30) and each configuration, two ways to reach
|Δ| <= target |F(x) - F(x')|:

- adaptive: ``explain(max_delta=target, max_points=CAP)``, which splits only the segments whose integral is
  least exact (udig.integrate.refine_path); its cost is the forward+backward passes it reports;
- uniform: the smallest budget of the usual kind that meets the target, tried in order: IG with 30, 60,
  120, ... steps; DIG/UDIG with factor 0, 1, 2, ... (32, 63, 125, ... points). Its cost counts only the
  budget that succeeded, as if it had been known in advance (the fairest case for uniform upscaling).

Printed: the median evaluations of each (over sentences where both met the target within CAP points), their
ratio, and how many sentences missed the target within the cap. Evaluations are counts, not seconds, so the
result does not depend on the machine; the processor is named anyway.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from machine import processor  # noqa: E402 - benchmarks/machine.py

from udig import Explainer  # noqa: E402
from udig.evaluation import load_items  # noqa: E402
from udig.models import load_model  # noqa: E402

CAP = 512  # path points
CONFIGS = {
    "IG (left)": dict(method="ig"),
    "DIG MaxCount (left)": dict(method="dig", strategy="maxcount"),
    "UDIG MaxCount (left)": dict(method="udig", strategy="maxcount"),
    "DIG MaxCount (trapezoid)": dict(method="dig", strategy="maxcount", rule="riemann_trapezoid"),
    "UDIG MaxCount (trapezoid)": dict(method="udig", strategy="maxcount", rule="riemann_trapezoid"),
}


def uniform(explainer: Explainer, text: str, config: dict, target: float) -> int | None:
    """Evaluations of the smallest uniform budget meeting the target; None if none within CAP points."""
    for level in range(10):
        budget = dict(steps=30 * 2**level) if config["method"] == "ig" else dict(factor=level)
        explanation = explainer.explain(text, **config, **budget)
        if explanation.settings["n_points"] > CAP:
            return None
        if explanation.relative_delta is not None and explanation.relative_delta <= target:
            return explanation.settings["n_evaluations"]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=20)
    parser.add_argument("--target", type=float, default=0.05)
    args = parser.parse_args()
    explainer = Explainer(*load_model(), candidates="words")
    texts = [item.text for item in load_items("rt-offline", seed=0)[: args.sentences]]
    print(
        f"Gradient evaluations to reach |Δ| <= {args.target} |F(x) - F(x')| on {len(texts)} sentences "
        f"(cap {CAP} points); {processor()}\n"
    )
    print("| configuration | adaptive (median) | uniform (median) | adaptive / uniform | missed: adaptive / uniform |")
    print("|---|--:|--:|--:|--:|")
    for name, config in CONFIGS.items():
        pairs, missed_adaptive, missed_uniform = [], 0, 0
        for text in texts:
            adaptive = explainer.explain(text, **config, max_delta=args.target, max_points=CAP)
            needed = uniform(explainer, text, config, args.target)
            missed_adaptive += not adaptive.delta_target_met
            missed_uniform += needed is None
            if adaptive.delta_target_met and needed is not None:
                pairs.append((adaptive.settings["n_evaluations"], needed))
        if pairs:
            ours, theirs = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
            ratio = statistics.median(p[0] / p[1] for p in pairs)
            print(
                f"| {name} | {ours:.0f} | {theirs:.0f} | {ratio:.2f} | {missed_adaptive} / {missed_uniform} |",
                flush=True,
            )
        else:
            print(f"| {name} | – | – | – | {missed_adaptive} / {missed_uniform} |", flush=True)


if __name__ == "__main__":
    main()
