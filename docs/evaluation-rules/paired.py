"""Paired differences of the integration-rule run: each rule against its left-sum twin, each method against IG
with the same rule (mean difference and 95 % paired bootstrap interval, 2,000 resamples, seeded)."""

from pathlib import Path

import numpy as np

from udig import evaluation

out = Path(__file__).resolve().parent  # python docs/evaluation-rules/paired.py > docs/evaluation-rules/paired.md
records = evaluation.read_records(out / "records.jsonl")
items = evaluation.load_items("rt-offline", 0)[:300]
ids = [i.id for i in items]
M = ["log_odds", "comprehensiveness", "sufficiency"]


def rows(name):
    return {i: records.get(f"{i}|{name}") for i in ids}


def good(name):
    return {i: r for i, r in rows(name).items() if r and "error" not in r}


def paired(a, b, metric, off):
    d = evaluation.paired_difference(good(a), good(b), metric, np.random.default_rng([0, off]))
    return f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


bases = [
    "ig",
    "dig-greedy:words",
    "dig-maxcount:words",
    "udig-greedy:words",
    "udig-maxcount:words",
    "udig-greedy:words@pad",
    "udig-maxcount:words@pad",
]
print("| method | rule | log-odds | comp | suff | median rel|Δ| |")
for b in bases:
    for rule in ["", "/riemann_middle", "/riemann_trapezoid"]:
        name = b + rule
        r = [x for x in rows(name).values() if x and "error" not in x]
        means = [np.mean([x[m] for x in r]) for m in M]
        rel = np.median([x["relative_delta"] for x in r if x.get("relative_delta") is not None])
        print(f"| {name} | n={len(r)} | " + " | ".join(f"{v:.3f}" for v in means) + f" | {rel:.3f} |")
print()
print("paired vs left-sum twin (rule - left):")
for b in bases:
    for rule in ["/riemann_middle", "/riemann_trapezoid"]:
        print(b + rule, " | ".join(paired(b + rule, b, m, k) for k, m in enumerate(M)))
print()
print("paired vs IG with the same rule (method - IG):")
for b in bases[1:]:
    for rule in ["", "/riemann_middle", "/riemann_trapezoid"]:
        print(b + rule, " | ".join(paired(b + rule, "ig" + rule, m, 10 + k) for k, m in enumerate(M)))
