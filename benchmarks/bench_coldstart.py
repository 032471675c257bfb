"""The engine's cold start against an earlier commit, in one run: numba's compilation in the first requests,
:func:`udig.vocab.warm_up`, DIG's graph build, and the warm path speed both must keep.

    python benchmarks/bench_coldstart.py [--baseline ac03677] [--repeats 2] [--out benchmarks/coldstart_results.md]

The baseline is a copy of ``--baseline`` (``git archive``, into a temporary folder; git's state is untouched).
Every measurement runs in a new process, the baseline's and this tree's alternately (every other repeat this
tree first), so that the two compare in the same minutes of a shared machine:

- first requests: an empty numba cache (a new ``NUMBA_CACHE_DIR``, as in a new container), the default model
  and settings (UDIG and DIG Greedy/MaxCount as the library's defaults: MaxCount, every row, 32 points) on a
  19-token sentence, after one IG request (torch's own first-run costs). DIG's graph comes from a disk cache
  built beforehand, so its first request measures compilation, not the build. Each request's path seconds
  and the process's CPU seconds; the kernels numba compiled (seconds, each with the helpers it compiled);
  then every method x strategy x candidate set again, warm (median path of 5, chains forgotten each time);
- ``warm_up()`` (this tree): seconds per method from an empty cache, then the first requests' paths;
- the graph: K = 500 over every row of the default model, kernels compiled beforehand, new process per build:
  wall and CPU seconds, peak extra memory; the rows whose neighbours differ between the two graphs, and on
  1,000 sampled rows from the float64 ranking (and whether every difference lies within knn_graph's bound).

CPU seconds (a process's user + system time) move less than wall seconds when other work shares the cores:
both are reported, with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import processor  # noqa: E402 - benchmarks/machine.py, beside this script

SENTENCE = "the film is a gorgeous, moving and deeply felt portrait of a family in crisis."  # 19 tokens
CASES = [(m, s, c) for m in ("udig", "dig") for s in ("maxcount", "greedy") for c in ("all", "words")]

PRELUDE = """
import json, os, sys, time
sys.path.insert(0, {root!r})
os.environ["HF_HUB_OFFLINE"] = "1"
import torch
from udig.models import load_model
model, tokenizer = load_model()
cpu = lambda: sum(os.times()[:2])
"""

FIRST = (
    PRELUDE
    + """
import statistics
from numba.core import event
from udig import Explainer
explainer = Explainer(model, tokenizer, cache_dir={graphs!r})
explainer.explain({text!r}, method="ig")
out = dict(warm_up={{}})
if {warm_up}:
    from udig.vocab import warm_up
    start = cpu()
    out["warm_up"] = warm_up()
    out["warm_up_cpu"] = cpu() - start
with event.install_recorder("numba:compile") as record:
    for method in ("udig", "dig"):
        start = cpu()
        timings = explainer.explain({text!r}, method=method).timings
        out[method] = dict(path=timings["path"], cpu=cpu() - start)
depth, kernels = 0, {{}}
for stamp, happening in record.buffer:  # the top-level compilations: kernels, each with its helpers
    name = happening.data["dispatcher"].py_func.__qualname__
    if happening.is_start:
        depth += 1
        if depth == 1:
            begun = stamp
    else:
        depth -= 1
        if depth == 0:
            kernels[name] = kernels.get(name, 0.0) + stamp - begun
out["kernels"] = kernels
out["warm"] = {{}}
for method, strategy, rule in {cases!r}:
    settings = dict(method=method, strategy=strategy, candidates=rule)
    explainer.explain({text!r}, **settings)
    paths = []
    for _ in range(5):
        explainer.vocab_.forget_chains()
        paths.append(explainer.explain({text!r}, **settings).timings["path"])
    out["warm"][f"{{method}}-{{strategy}}, {{rule}}"] = statistics.median(paths)
print(json.dumps(out))
"""
)

SETUP = (
    PRELUDE
    + """
from udig.vocab import vocab_index_for
index = vocab_index_for(model, tokenizer, cache_dir={graphs!r})
for rule in ("all", "words"):
    index.graph(500, rule)
"""
)

BUILD = (
    PRELUDE
    + """
import numpy as np
from udig.vocab import knn_graph
embeddings = model.get_input_embeddings().weight.detach()
allowed = torch.ones(len(embeddings), dtype=torch.bool)
status = lambda field: int(open("/proc/self/status").read().split(field + ":")[1].split()[0]) / 1024
before = status("VmRSS")
try:
    open("/proc/self/clear_refs", "w").write("5")  # the peak from here
except OSError:
    pass
start, wall = cpu(), time.perf_counter()
graph = knn_graph(embeddings, 500, allowed)
out = dict(wall=time.perf_counter() - wall, cpu=cpu() - start, extra_mib=status("VmHWM") - before)
np.save({save!r}, graph.numpy())
print(json.dumps(out))
"""
)


def child(code: str, numba_cache: str) -> dict:
    """Run ``code`` in a new Python with its own numba cache; its last line of output, read as JSON."""
    environment = dict(os.environ, NUMBA_CACHE_DIR=numba_cache, HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"a measuring process failed:\n{done.stderr[-4000:]}")
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def baseline_tree(revision: str, folder: Path) -> Path:
    """A copy of ``revision``'s files (``git archive``) in a new ``folder``, for the baseline's processes."""
    folder.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def float64_check(graph: np.ndarray, rows: np.ndarray, sample: np.ndarray) -> tuple[int, int]:
    """On the sampled rows: how many differ from the float64 ranking (score, then id), and how many of those
    differences lie outside knn_graph's stated bound (any is a failure of its contract)."""
    exact = rows.astype(np.float64)
    half = 0.5 * np.square(exact).sum(1)
    norms = np.sqrt(2 * half)
    differing = outside = 0
    for row in sample:
        scores = exact @ exact[row] - half
        scores[row] = -np.inf
        order = np.lexsort((np.arange(len(rows)), -scores))[: graph.shape[1]]
        if np.array_equal(order, graph[row]):
            continue
        differing += 1
        bound = (rows.shape[1] + 2) * 2.0**-24 * (1 + 2.0**-10) * (norms[row] * norms + norms**2)
        listed = graph[row]
        misordered = scores[listed[:-1]] < scores[listed[1:]] - bound[listed[:-1]] - bound[listed[1:]]
        left_out = np.setdiff1d(order, listed)
        too_good = scores[left_out] > scores[listed[-1]] + bound[listed[-1]] + bound[left_out]
        outside += bool(misordered.any() or too_good.any())
    return differing, outside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="ac03677", help="the commit to compare with")
    parser.add_argument("--repeats", type=int, default=2, help="processes of each kind per tree")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "coldstart_results.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    machine = f"{processor()}, {os.cpu_count()} cores"
    print(f"{machine}; load average {load_before:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        trees = {"baseline": baseline_tree(args.baseline, scratch / "baseline"), "this tree": ROOT}
        warm_cache = {name: str(scratch / f"numba-{i}") for i, name in enumerate(trees)}
        graphs = {name: str(scratch / f"graphs-{i}") for i, name in enumerate(trees)}
        for name, root in trees.items():  # the graphs DIG's first requests load, and the graph kernels compiled
            child(SETUP.format(root=str(root), graphs=graphs[name]), warm_cache[name])
        first: dict[str, list[dict]] = {name: [] for name in trees}
        warmed: list[dict] = []
        builds: dict[str, list[dict]] = {name: [] for name in trees}
        for repeat in range(args.repeats):
            order = list(trees) if repeat % 2 else list(trees)[::-1]
            for name in order:
                code = FIRST.format(root=str(trees[name]), graphs=graphs[name], text=SENTENCE, cases=CASES, warm_up=0)
                with tempfile.TemporaryDirectory() as empty:
                    first[name].append(child(code, empty))
                print(name, "first requests", json.dumps(first[name][-1])[:400], flush=True)
            code = FIRST.format(root=str(ROOT), graphs=graphs["this tree"], text=SENTENCE, cases=CASES[:0], warm_up=1)
            with tempfile.TemporaryDirectory() as empty:
                warmed.append(child(code, empty))
            print("warm_up", json.dumps(warmed[-1])[:400], flush=True)
            for name in order:
                save = str(scratch / f"graph-{name.replace(' ', '-')}.npy")
                builds[name].append(child(BUILD.format(root=str(trees[name]), save=save), warm_cache[name]))
                print(name, "graph build", builds[name][-1], flush=True)
        old, new = (np.load(scratch / f"graph-{name.replace(' ', '-')}.npy") for name in ("baseline", "this tree"))
    sys.path.insert(0, str(ROOT))
    from udig.models import load_model  # the default model's embedding matrix, for the float64 check

    rows = load_model()[0].get_input_embeddings().weight.detach().float().numpy()
    sample = np.random.default_rng(0).choice(len(rows), 1000, replace=False)
    checks = {"baseline": float64_check(old, rows, sample), "this tree": float64_check(new, rows, sample)}
    load_after = os.getloadavg()[0]
    write(args, machine, load_before, load_after, first, warmed, builds, old, new, checks)


def write(args, machine, load_before, load_after, first, warmed, builds, old, new, checks) -> None:
    """The results as markdown: medians over the repeats, ratios this tree / baseline."""
    median = statistics.median

    def ratio_row(what: str, base: list[float], this: list[float], unit: str = "s") -> str:
        return f"| {what} | {median(base):.2f} {unit} | {median(this):.2f} {unit} | {median(this) / median(base):.2f} |"

    lines = [
        f"Measured on {machine}; load average {load_before:.2f} before, {load_after:.2f} after; baseline "
        f"{args.baseline}; medians of {args.repeats} processes per row, the two trees alternately.",
        "",
        "| first requests, empty numba cache | baseline | this tree | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for method in ("udig", "dig"):
        for field, what in (("path", "path"), ("cpu", "process CPU")):
            base = [run[method][field] for run in first["baseline"]]
            this = [run[method][field] for run in first["this tree"]]
            lines.append(ratio_row(f"first {method.upper()} request: {what}", base, this))
    lines += [
        "",
        "| kernel compiled in the first UDIG and DIG requests (with its helpers) | baseline (s) | this tree (s) |",
        "| --- | ---: | ---: |",
    ]
    names = sorted({name for runs in first.values() for run in runs for name in run["kernels"]})
    for name in names:
        cells = [median(run["kernels"].get(name, 0.0) for run in first[tree]) for tree in ("baseline", "this tree")]
        lines.append(f"| {name} | {cells[0]:.2f} | {cells[1]:.2f} |")
    totals = [median(sum(run["kernels"].values()) for run in first[tree]) for tree in ("baseline", "this tree")]
    lines.append(f"| all | {totals[0]:.2f} | {totals[1]:.2f} |")
    lines += [
        "",
        "| warm_up() from an empty numba cache (this tree) | seconds |",
        "| --- | ---: |",
        *[
            f"| {method} kernels | {median(run['warm_up'][method] for run in warmed):.2f} |"
            for method in ("udig", "dig")
        ],
        f"| process CPU, both | {median(run['warm_up_cpu'] for run in warmed):.2f} |",
        f"| first UDIG path after it | {median(run['udig']['path'] for run in warmed):.3f} |",
        f"| first DIG path after it | {median(run['dig']['path'] for run in warmed):.3f} |",
        "",
        "| warm path, 19 tokens, 32 points (median of 5 per process) | baseline (ms) | this tree (ms) | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for case in first["baseline"][0]["warm"]:
        base = [1000 * run["warm"][case] for run in first["baseline"]]
        this = [1000 * run["warm"][case] for run in first["this tree"]]
        lines.append(ratio_row(case, base, this, "ms").replace(" ms |", " |"))
    lines += [
        "",
        "| DIG's graph, K = 500, every row of the default model | baseline | this tree | ratio |",
        "| --- | ---: | ---: | ---: |",
        ratio_row("build, wall", [b["wall"] for b in builds["baseline"]], [b["wall"] for b in builds["this tree"]]),
        ratio_row(
            "build, process CPU", [b["cpu"] for b in builds["baseline"]], [b["cpu"] for b in builds["this tree"]]
        ),
        ratio_row(
            "peak extra memory",
            [b["extra_mib"] for b in builds["baseline"]],
            [b["extra_mib"] for b in builds["this tree"]],
            "MiB",
        ),
        "",
        f"Rows whose neighbours differ between the two graphs: {int((old != new).any(1).sum())} of {len(old)} "
        f"({100 * (old != new).any(1).mean():.1f} %); rows whose neighbour sets differ: "
        f"{sum(len(np.setdiff1d(a, b)) > 0 for a, b in zip(old, new))}. On 1,000 sampled rows, rows that differ "
        f"from the float64 ranking: baseline {checks['baseline'][0]}, this tree {checks['this tree'][0]}; of those, "
        f"differences outside knn_graph's stated float32 bound: baseline {checks['baseline'][1]}, this tree "
        f"{checks['this tree'][1]}.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
