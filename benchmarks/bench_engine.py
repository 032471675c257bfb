"""Speed and memory of the engine, as ratios against references measured in the same run.

    python benchmarks/bench_engine.py [--repeats 9] [--out benchmarks/results.md]

References (measured here, same process, same sentence): a bare forward+backward of the same N path
points through the model, and captum's LayerIntegratedGradients with the same number of steps. Targets
come from the engine issue: path construction <= 10 % of forward+backward, a whole explain() <= 1.3x
forward+backward and <= 1.2x captum IG, the MiniLM KNN graph (30,522 x 384, K = 500) built in <= 10 s
and loaded from its cache in <= 0.5 s. Run it on an otherwise idle machine: 2 cores are easily disturbed.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from udig import Explainer  # noqa: E402
from udig.models import load_model  # noqa: E402
from udig.tasks import TASKS, max_tokens  # noqa: E402

SENTENCE = "the film is a gorgeous, moving and deeply felt portrait of a family in crisis."  # 19 tokens


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def paired(reference, candidate, repeats: int) -> list[tuple[float, float, object]]:
    """Alternate reference and candidate runs: each ratio compares two runs a moment apart, so the
    slow drifts of a shared 2-core machine cancel out. Returns (reference s, candidate s, result)."""
    reference(), candidate()  # warm-up
    return [(timed(reference)[0], *timed(candidate)) for _ in range(repeats)]


def forward_backward(model, tokenizer, n_points: int):
    """The floor any explainer pays: N copies of the sentence, one forward and one backward."""
    encoding = TASKS["classification"].encode(tokenizer, {"text": SENTENCE}, max_tokens(model, tokenizer))
    embeddings = model.get_input_embeddings().weight.detach()[encoding.input_ids]

    def run():
        points = embeddings.expand(n_points, -1, -1).clone().requires_grad_(True)
        extras = {k: v.expand(n_points, -1) for k, v in encoding.extras.items()}
        logits = model(inputs_embeds=points, **extras).logits[:, 1]
        torch.autograd.grad(logits.sum(), points)

    return run, len(encoding)


def captum_ig(model, tokenizer, steps: int):
    from captum.attr import LayerIntegratedGradients

    encoding = TASKS["classification"].encode(tokenizer, {"text": SENTENCE}, max_tokens(model, tokenizer))
    ids = encoding.input_ids[None]
    reference = torch.where(encoding.special_mask, encoding.input_ids, tokenizer.pad_token_id)[None]

    def forward(input_ids):
        return model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits[:, 1]

    lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
    return lambda: lig.attribute(ids, baselines=reference, n_steps=steps, method="riemann_left",
                                 internal_batch_size=steps)


GRAPH_CHILD = """
import os, resource, sys, time, json
sys.path.insert(0, {root!r})
from udig.models import load_model
from udig.vocab import vocab_index_for
model, tokenizer = load_model()
index = vocab_index_for(model, tokenizer, cache_dir={cache!r})
index.word_mask_
rss = lambda: int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) / 1024
before = rss()
start = time.perf_counter()
index.graph(500, {rule!r})
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(dict(seconds=seconds, peak_mib=peak, extra_mib=peak - before)))
"""


def graph_figures(rule: str, builds: int = 3) -> dict[str, float]:
    """Build in fresh processes (honest peak memory), then load the cache in another fresh process.

    A build is one long burst on a shared 2-core machine, so it is repeated: median and slowest."""
    import json

    def child(cache: str) -> dict:
        code = GRAPH_CHILD.format(root=str(ROOT), cache=cache, rule=rule)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    runs = []
    for _ in range(builds):
        with tempfile.TemporaryDirectory() as cache:
            runs.append(child(cache))
    with tempfile.TemporaryDirectory() as cache:
        child(cache)
        load = child(cache)
    seconds = [run["seconds"] for run in runs]
    return {"build_s": statistics.median(seconds), "build_max_s": max(seconds),
            "build_extra_mib": max(run["extra_mib"] for run in runs), "load_s": load["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, tokenizer = load_model()
    explainer = Explainer(model, tokenizer)
    rows = []

    def add(what: str, pairs: list[tuple[float, float]], target: str) -> None:
        """One row: median seconds of both, and the median of the per-pair ratios."""
        measured = statistics.median(m for _, m in pairs)
        reference = statistics.median(r for r, _ in pairs)
        ratio = statistics.median(m / r for r, m in pairs)
        rows.append((what, measured, reference, ratio, target))
        print(f"{what:58s} {measured:8.3f} s  ref {reference:8.3f} s  ratio {ratio:6.2f}  ({target})", flush=True)

    for factor in (0, 1):  # 32 points (the papers' code default, the app's) and 63 (UDIG's SST-2 runs)
        n_points = 2**factor * 31 + 1
        fb, length = forward_backward(model, tokenizer, n_points)
        for method, strategy, rule in itertools.product(("udig", "dig"), ("maxcount", "greedy"), ("all", "words")):
            run = lambda: explainer.explain(SENTENCE, method=method, strategy=strategy, factor=factor, candidates=rule)
            pairs = paired(fb, run, args.repeats)  # the warm-up builds the vocabulary index and graph
            name = f"{method}-{strategy}, {rule}, {n_points} points, {length} tokens"
            add(f"path construction, {name}", [(r, e.timings["path"]) for r, _, e in pairs], "target <= 0.10")
            add(f"whole explain(), {name}", [(r, m) for r, m, _ in pairs], "target <= 1.30")

    for steps in (30, 62):
        run = lambda: explainer.explain(SENTENCE, method="ig", steps=steps)
        fb = forward_backward(model, tokenizer, steps + 1)[0]
        add(f"whole explain(), ig, {steps + 1} points", [(r, m) for r, m, _ in paired(fb, run, args.repeats)],
            "target <= 1.30")
        add(f"whole explain(), ig, {steps + 1} points, vs captum IG ({steps} steps)",
            [(r, m) for r, m, _ in paired(captum_ig(model, tokenizer, steps), run, args.repeats)], "target <= 1.20")

    graph_rows = []
    for rule in ("all", "words"):
        figures = graph_figures(rule)
        graph_rows.append((rule, figures))
        print(f"KNN graph K=500 ({rule}): build {figures['build_s']:.2f} s median of 3, slowest "
              f"{figures['build_max_s']:.2f} s (target <= 10), "
              f"load {figures['load_s']:.3f} s (target <= 0.5), build peak +{figures['build_extra_mib']:.0f} MiB",
              flush=True)

    lines = [
        "| measurement | seconds | reference (same run) | ratio | target |",
        "| --- | ---: | ---: | ---: | --- |",
        *[f"| {w} | {m:.3f} | {r:.3f} | {q:.2f} | {t} |" for w, m, r, q, t in rows],
        "",
        "Reference for each row: a bare forward+backward of the same N points (or captum IG where named), run",
        "alternately with the measured call; the ratio is the median of the per-pair ratios.",
        "",
        "| KNN graph, K = 500, MiniLM 30,522 x 384 | build, median of 3 (s) | slowest (s) | load from cache (s) | build peak extra RSS (MiB) |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[f"| candidates={rule} | {f['build_s']:.2f} | {f['build_max_s']:.2f} | {f['load_s']:.3f} | {f['build_extra_mib']:.0f} |"
          for rule, f in graph_rows],
        "",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, medians of "
        f"{args.repeats} pairs.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
