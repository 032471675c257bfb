"""explain() speed of this working tree against an earlier revision, measured in the same run.

    python benchmarks/bench_revisions.py --before ed48951 [--rounds 5]

For refactors that must not slow the engine down. The revision is exported with ``git archive`` into a
temporary folder; each round runs one fresh child process per tree, alternating (before, after, before,
...), so the drifts of a shared 2-core machine hit both alike. Each child loads the offline default model,
warms up, and times every configuration against a bare forward+backward of the same number of points in the
same process; the table prints those ratios (median over rounds) and after/before. Both trees share one
vocabulary cache, so DIG's graph is built once, untimed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from machine import processor  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
SENTENCE = "the film is a gorgeous, moving and deeply felt portrait of a family in crisis."  # 19 tokens
CONFIGS = {  # name -> explain() keywords; every one runs 32 path points, 31 of them through the model
    "IG": dict(method="ig", steps=31),
    "UDIG MaxCount all": dict(method="udig", strategy="maxcount", candidates="all"),
    "UDIG MaxCount words": dict(method="udig", strategy="maxcount", candidates="words"),
    "DIG MaxCount all": dict(method="dig", strategy="maxcount", candidates="all"),
    "DIG Greedy words": dict(method="dig", strategy="greedy", candidates="words"),
}

CHILD = """
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import torch
from udig import Explainer
from udig.models import load_model

configs, repeats, sentence = json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
model, tokenizer = load_model()
explainer = Explainer(model, tokenizer)
encoded = tokenizer(sentence, return_tensors="pt")
embeddings = model.get_input_embeddings().weight.detach()[encoded["input_ids"][0]]

def bare(n):
    points = embeddings.expand(n, -1, -1).clone().requires_grad_(True)
    extras = {k: v.expand(n, -1) for k, v in encoded.items() if k != "input_ids"}
    torch.autograd.grad(model(inputs_embeds=points, **extras).logits[:, 1].sum(), points)

def seconds(run):
    start = time.perf_counter(); run(); return time.perf_counter() - start

out = {}
for name, kwargs in configs.items():
    explainer.explain(sentence, **{"steps": 30, **kwargs}); bare(31)  # warm-up (graph, kernels)
    pairs = [(seconds(lambda: bare(31)), seconds(lambda: explainer.explain(sentence, **{"steps": 30, **kwargs})))
             for _ in range(repeats)]
    out[name] = statistics.median(e / b for b, e in pairs)
print(json.dumps(out))
"""


def export(revision: str, folder: Path) -> Path:
    """The revision's files (no .git) in ``folder``."""
    archive = folder / "tree.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), revision], check=True)
    tree = folder / "tree"
    with tarfile.open(archive) as handle:
        handle.extractall(tree, filter="data")
    return tree


def measure(tree: Path, repeats: int, env: dict) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), json.dumps(CONFIGS), str(repeats), SENTENCE],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="a git revision, e.g. a commit before the change")
    parser.add_argument("--rounds", type=int, default=5, help="child processes per tree (default 5)")
    parser.add_argument("--repeats", type=int, default=5, help="timed explain() calls per child and configuration")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="udig-revisions-") as scratch:
        before = export(args.before, Path(scratch))
        env = {**os.environ, "HF_HOME": str(Path(scratch) / "hf"), "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
        results: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
        for _ in range(args.rounds):
            results["before"].append(measure(before, args.repeats, env))
            results["after"].append(measure(ROOT, args.repeats, env))
    print(
        f"explain() / bare forward+backward at 32 points, 19 tokens; median of {args.rounds} alternating "
        f"processes per tree x {args.repeats} calls; {processor()}, {os.cpu_count()} cores\n"
    )
    print(f"| configuration | before ({args.before}) | after (working tree) | after / before |\n|---|--:|--:|--:|")
    for name in CONFIGS:
        old = statistics.median(r[name] for r in results["before"])
        new = statistics.median(r[name] for r in results["after"])
        print(f"| {name} | {old:.2f} | {new:.2f} | {new / old:.2f} |")


if __name__ == "__main__":
    main()
