"""The engine's cold start against an earlier commit, in one run: numba's compilation in the first requests,
:func:`udig.vocab.warm_up`, DIG's graph build, and the warm path speed both must keep.

    python benchmarks/bench_coldstart.py [--baseline 9b65a90] [--repeats 2] [--out benchmarks/coldstart_results.md]

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
- the graphs: K = 500 over every row of the default model, for the candidate sets "all" and "words" (this
  tree's real words for both trees), kernels compiled beforehand, new process per tree: wall and CPU seconds,
  peak extra memory; the rows whose neighbours differ between the two trees' graphs; on 1,000 sampled rows,
  those that differ from the float64 ranking, and whether every difference lies within knn_graph's bound; on
  300 sampled rows where the graphs differ, which one equals the float64 ranking.

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
for method, strategy, candidates in {cases!r}:
    settings = dict(method=method, strategy=strategy, candidates=candidates)
    explainer.explain({text!r}, **settings)
    paths = []
    for _ in range(5):
        explainer.vocab_.forget_chains()
        paths.append(explainer.explain({text!r}, **settings).timings["path"])
    out["warm"][f"{{method}}-{{strategy}}, {{candidates}}"] = statistics.median(paths)
print(json.dumps(out))
"""
)

SETUP = (
    PRELUDE
    + """
from udig.vocab import vocab_index_for
index = vocab_index_for(model, tokenizer, cache_dir={graphs!r})
for candidates in ("all", "words"):
    index.graph(500, candidates)
"""
)

BUILD = (
    PRELUDE
    + """
import numpy as np
from udig.vocab import knn_graph
embeddings = model.get_input_embeddings().weight.detach()
status = lambda field: int(open("/proc/self/status").read().split(field + ":")[1].split()[0]) / 1024
out = {{}}
for name in ("all", "words"):
    allowed = torch.from_numpy(np.load({masks!r} + f"-{{name}}.npy"))
    before = status("VmRSS")
    try:
        open("/proc/self/clear_refs", "w").write("5")  # the peak from here
    except OSError:
        pass
    start, wall = cpu(), time.perf_counter()
    graph = knn_graph(embeddings, 500, allowed)
    out[name] = dict(wall=time.perf_counter() - wall, cpu=cpu() - start, extra_mib=status("VmHWM") - before)
    np.save({save!r} + f"-{{name}}.npy", graph.numpy())
    del graph
print(json.dumps(out))
"""
)

MASKS = (
    PRELUDE
    + """
import numpy as np
from udig.vocab import vocab_index_for
index = vocab_index_for(model, tokenizer, cache_dir={graphs!r})
for name in ("all", "words"):
    np.save({masks!r} + f"-{{name}}.npy", index.candidate_mask(name).numpy())
np.save({masks!r} + "-rows.npy", model.get_input_embeddings().weight.detach().float().numpy())
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


def float64_check(graph: np.ndarray, rows: np.ndarray, allowed: np.ndarray, sample: np.ndarray) -> tuple[int, int]:
    """On the sampled rows: how many differ from the float64 ranking of the allowed keys (score, then id), and how
    many of those differences lie outside knn_graph's stated bound (any is a failure of its contract): two
    listed keys in the wrong order, or a key left out for a worse one, by more than the sum of their bounds."""
    exact = rows.astype(np.float64)
    keys = np.flatnonzero(allowed)
    half = 0.5 * np.square(exact).sum(1)
    norms = np.sqrt(2 * half)
    differing = outside = 0
    for row in sample:
        scores = exact[keys] @ exact[row] - half[keys]
        scores[keys == row] = -np.inf
        order = keys[np.lexsort((keys, -scores))[: graph.shape[1]]]
        listed = graph[row]
        if np.array_equal(order, listed):
            continue
        differing += 1
        bound = (rows.shape[1] + 2) * 2.0**-24 * (1 + 2.0**-10) * (norms[row] * norms + norms**2)
        listed_scores, listed_bounds = exact[listed] @ exact[row] - half[listed], bound[listed]
        best_after = np.maximum.accumulate((listed_scores - listed_bounds)[::-1])[::-1]
        misordered = (listed_scores[:-1] + listed_bounds[:-1] < best_after[1:]).any()
        left_out = np.setdiff1d(order, listed)
        left_scores = exact[left_out] @ exact[row] - half[left_out]
        too_good = len(left_out) > 0 and (left_scores - bound[left_out]).max() > (listed_scores + listed_bounds).min()
        outside += bool(misordered or too_good)
    return differing, outside


def agreement(old: np.ndarray, new: np.ndarray, rows: np.ndarray, allowed: np.ndarray, n: int) -> dict[str, int]:
    """On up to ``n`` sampled rows where the two graphs differ: which one equals the float64 ranking."""
    exact = rows.astype(np.float64)
    keys = np.flatnonzero(allowed)
    half = 0.5 * np.square(exact[keys]).sum(1)
    differ = np.flatnonzero((old != new).any(1))
    counts = {"baseline": 0, "this tree": 0, "neither": 0}
    for row in np.random.default_rng(1).choice(differ, min(n, len(differ)), replace=False):
        scores = exact[keys] @ exact[row] - half
        scores[keys == row] = -np.inf
        order = keys[np.lexsort((keys, -scores))[: old.shape[1]]]
        which = (
            "baseline"
            if np.array_equal(order, old[row])
            else "this tree"
            if np.array_equal(order, new[row])
            else "neither"
        )
        counts[which] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="9b65a90", help="the commit to compare with")
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
        masks = str(scratch / "mask")  # one candidate set for both trees: this tree's
        child(MASKS.format(root=str(ROOT), graphs=graphs["this tree"], masks=masks), warm_cache["this tree"])
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
                save = str(scratch / f"graph-{name.replace(' ', '-')}")
                code = BUILD.format(root=str(trees[name]), save=save, masks=masks)
                builds[name].append(child(code, warm_cache[name]))
                print(name, "graph build", builds[name][-1], flush=True)
        rows = np.load(masks + "-rows.npy")
        sample = np.random.default_rng(0).choice(len(rows), 1000, replace=False)
        comparisons = {}
        for candidates in ("all", "words"):
            allowed = np.load(f"{masks}-{candidates}.npy")
            old, new = (np.load(scratch / f"graph-{tree.replace(' ', '-')}-{candidates}.npy") for tree in trees)
            comparisons[candidates] = dict(
                rows=len(old),
                differ=int((old != new).any(1).sum()),
                sets_differ=sum(len(np.setdiff1d(a, b)) > 0 for a, b in zip(old, new)),
                checks={tree: float64_check(graph, rows, allowed, sample) for tree, graph in zip(trees, (old, new))},
                agreement=agreement(old, new, rows, allowed, 300),
            )
            print(candidates, comparisons[candidates], flush=True)
    load_after = os.getloadavg()[0]
    write(args, machine, load_before, load_after, first, warmed, builds, comparisons)


def write(args, machine, load_before, load_after, first, warmed, builds, comparisons) -> None:
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
    ]
    for candidates in ("all", "words"):
        for field, what, unit in (
            ("wall", "wall", "s"),
            ("cpu", "process CPU", "s"),
            ("extra_mib", "peak extra", "MiB"),
        ):
            base = [build[candidates][field] for build in builds["baseline"]]
            this = [build[candidates][field] for build in builds["this tree"]]
            lines.append(ratio_row(f"candidates={candidates}: build, {what}", base, this, unit))
    lines += [
        "",
        "| the two graphs, K = 500 | candidates=all | candidates=words |",
        "| --- | ---: | ---: |",
    ]
    table = {
        "rows whose neighbours differ (order or set)": lambda c: f"{c['differ']} of {c['rows']}",
        "rows whose neighbour sets differ": lambda c: str(c["sets_differ"]),
        "of 1,000 sampled rows, differing from float64: baseline": lambda c: str(c["checks"]["baseline"][0]),
        "of 1,000 sampled rows, differing from float64: this tree": lambda c: str(c["checks"]["this tree"][0]),
        "of those, outside knn_graph's float32 bound (baseline / this tree)": lambda c: (
            f"{c['checks']['baseline'][1]} / {c['checks']['this tree'][1]}"
        ),
        "sampled rows where the graphs differ: equal to float64 (baseline / this tree / neither)": lambda c: (
            "{baseline} / {this tree} / {neither}".format(**c["agreement"])
        ),
    }
    for what, cell in table.items():
        lines.append(f"| {what} | {cell(comparisons['all'])} | {cell(comparisons['words'])} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
