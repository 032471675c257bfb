"""The sequential methods against each other and against every joint-path method of the same run: paired 95 %
bootstrap intervals (2,000 resamples, seeded) of method minus rival on the same sentences, for the top-20 %
scores and the AOPC ones. ``table.md`` has each method against IG and against its own joint twin; this adds
the comparisons that decide which method to pick.

    PYTHONPATH=. python docs/evaluation-sequential/ordering.py   # writes ordering.md beside this file
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from udig import evaluation
from udig.metrics import FAITHFULNESS_KEYS, METRIC_INFO

HERE = Path(__file__).resolve().parent
SEQUENTIAL = ["sig", "seq-dig-greedy:words", "seq-udig-greedy:words"]

summary, rows = evaluation.read_run(HERE)  # per method: its records by sentence id
methods = summary["methods_order"]


def cell(method: str, rival: str, metric: str, offset: int) -> str:
    d = evaluation.paired_difference(rows[method], rows[rival], metric, np.random.default_rng([0, offset]))
    verdict = evaluation.verdict(metric, d["low"], d["high"])
    return f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] {verdict}"


headers = " | ".join(f"{METRIC_INFO[m].short} {METRIC_INFO[m].arrow}" for m in FAITHFULNESS_KEYS)
lines = [
    f"# Sequential methods against each other and every joint path ({len(rows['ig'])} sentences)",
    "",
    "Method minus rival, paired over the same sentences; better/worse for the method only when the 95 % "
    "interval excludes 0.",
    "",
    f"| method | versus | {headers} |",
    "|---|---|" + "---|" * len(FAITHFULNESS_KEYS),
]
pairs = [(a, b) for i, a in enumerate(SEQUENTIAL) for b in SEQUENTIAL[i + 1 :]]
pairs += [(a, b) for a in SEQUENTIAL for b in methods if b not in SEQUENTIAL]
for a, b in pairs:
    cells = [cell(a, b, m, 100 + k) for k, m in enumerate(FAITHFULNESS_KEYS)]
    lines.append(f"| {a} | {b} | " + " | ".join(cells) + " |")
(HERE / "ordering.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
