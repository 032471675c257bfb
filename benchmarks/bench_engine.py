"""Speed of the engine, as ratios against references measured in the same run, on the processor it names.

    python benchmarks/bench_engine.py [--repeats 9] [--device cpu] [--model NAME] [--long 128 ...] [--no-graph]

References (same process, same input): a bare forward+backward of the same N path points through the
model, and captum's LayerIntegratedGradients with the same number of steps. Targets (issue 15): path
construction <= 0.10 of forward+backward at 32 points for every method, strategy and candidate set, and
<= 10 ms for the 19-token sentence; a whole explain() <= 1.15x forward+backward at 32 points; IG <= 1.0x
captum. A 128-token input (the demo's cap) shows the path's share on a long input; `--long 256 512 --model
udig/minilm-imdb` measures IMDb reviews (engine_long_results.md). The MiniLM KNN graph
(30,522 x 384, K = 500): built in <= 10 s, loaded from its cache in <= 0.5 s. Run it on an otherwise idle
machine: 2 cores are easily disturbed; the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from machine import processor  # noqa: E402 - benchmarks/machine.py, beside this script

from udig import Explainer  # noqa: E402
from udig.models import load_model  # noqa: E402
from udig.tasks import TASKS, max_tokens  # noqa: E402

SENTENCE = "the film is a gorgeous, moving and deeply felt portrait of a family in crisis."  # 19 tokens
REVIEW = (  # cut to 128 tokens with [CLS] and [SEP] by long_input()
    "i went in expecting another tired family drama and came out moved. the film is a gorgeous, patient "
    "portrait of three sisters who return to their mother's farm after years apart, and every scene "
    "breathes. the lead performance is quiet but devastating, the photography turns the flat fields into "
    "something close to a painting, and the score knows when to stay silent. it is not perfect: the middle "
    "drags, a subplot about a lost letter goes nowhere, and the ending is tidier than the story deserves. "
    "still, the writing is sharp, the jokes land, and the final conversation at the kitchen table is as "
    "honest as anything i have seen this year. warmly recommended, especially to anyone who has ever gone home."
)
METHODS = [("ig", None, None)] + list(itertools.product(("udig", "dig"), ("maxcount", "greedy"), ("all", "words")))


def long_input(tokenizer, length: int = 128) -> str:
    """A review cut to ``length`` tokens, special tokens included: :data:`REVIEW`, or where it is too short (256
    and 512 tokens: IMDb's length) the first review of udig's IMDb test split that is long enough (offline)."""
    for text in _reviews():
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= length - 2:
            return tokenizer.decode(ids[: length - 2])
    raise ValueError(f"no review of {length} tokens")


def _reviews():
    yield REVIEW
    from udig import data

    yield from (example.text for example in data.load_split("test", "imdb"))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function, device: torch.device) -> tuple[float, object]:
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return time.perf_counter() - start, result


def interleaved(cases: list[tuple], repeats: int, device: torch.device) -> list[list[tuple[float, float, object]]]:
    """Time each case's ``(reference, candidate)`` alternately, going round every case in each repeat: each
    ratio compares two runs a moment apart, and every case's median spans the same minutes, so a slow phase
    of a shared 2-core machine (paths of the same method moved by 15 % between two blocks of nine pairs
    measured back to back) does not fall on one case alone. Every other repeat runs the candidate first, so
    that running first (after another case's calls) or second favours neither side. Per case,
    ``(reference s, candidate s, result)``."""
    for reference, candidate in cases:  # warm-up
        reference(), candidate()
    pairs: list[list[tuple[float, float, object]]] = [[] for _ in cases]
    for repeat in range(repeats):
        for collected, (reference, candidate) in zip(pairs, cases):
            if repeat % 2:
                candidate_s, result = timed(candidate, device)
                reference_s = timed(reference, device)[0]
            else:
                reference_s = timed(reference, device)[0]
                candidate_s, result = timed(candidate, device)
            collected.append((reference_s, candidate_s, result))
    return pairs


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median: the order statistics ``x_(j)`` and ``x_(n+1-j)`` with the
    largest j whose binomial tail ``P(Bin(n, 1/2) < j)`` is at most ``(1 - confidence) / 2`` (coverage at
    least ``confidence``). Too few values for that give the whole range."""
    ordered, n = sorted(values), len(values)
    tail, j = 0.0, 0
    while j < n and tail + math.comb(n, j) / 2**n <= (1 - confidence) / 2:
        tail += math.comb(n, j) / 2**n
        j += 1
    j = max(j, 1)
    return ordered[j - 1], ordered[n - j]


def explain_timings(explainer: Explainer, text: str, **settings) -> dict[str, float]:
    """One explain() call, its words' chains forgotten first: the targets are about building a path, and the
    same sentence again would find every chain remembered (benchmarks/bench_chains.py measures that).
    Only its timings are kept (128-token paths would add up to hundreds of MB)."""
    explainer.vocab_.forget_chains()
    return explainer.explain(text, **settings).timings


def encode(model, tokenizer, text: str):
    return TASKS["classification"].encode(tokenizer, {"text": text}, max_tokens(model, tokenizer))


def forward_backward(model, tokenizer, text: str, n_points: int):
    """The floor any explainer pays: N copies of the input, one forward and one backward."""
    encoding = encode(model, tokenizer, text)
    weight = model.get_input_embeddings().weight
    embeddings = weight.detach()[encoding.input_ids.to(weight.device)]
    extras = {k: v.to(weight.device).expand(n_points, -1) for k, v in encoding.extras.items()}

    def run():
        points = embeddings.expand(n_points, -1, -1).clone().requires_grad_(True)
        logits = model(inputs_embeds=points, **extras).logits[:, 1]
        torch.autograd.grad(logits.sum(), points)

    return run, len(encoding)


def captum_ig(model, tokenizer, text: str, steps: int):
    from captum.attr import LayerIntegratedGradients

    encoding = encode(model, tokenizer, text)
    device = model.get_input_embeddings().weight.device
    ids = encoding.input_ids[None].to(device)
    reference = torch.where(encoding.special_mask, encoding.input_ids, tokenizer.pad_token_id)[None].to(device)

    def forward(input_ids):
        return model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits[:, 1]

    lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
    return lambda: lig.attribute(
        ids, baselines=reference, n_steps=steps, method="riemann_left", internal_batch_size=steps
    )


GRAPH_CHILD = """
import sys, time, json
sys.path.insert(0, {root!r})
from udig.models import load_model
from udig.vocab import vocab_index_for
model, tokenizer = load_model()
index = vocab_index_for(model, tokenizer, cache_dir={cache!r})
index.word_mask_
status = lambda field: int(open('/proc/self/status').read().split(field + ':')[1].split()[0]) / 1024
before = status('VmRSS')
try:
    open('/proc/self/clear_refs', 'w').write('5')  # the peak from here: loading the model may have peaked higher
except OSError:
    pass
start = time.perf_counter()
index.graph(500, {candidates!r})
seconds = time.perf_counter() - start
peak = status('VmHWM')
print(json.dumps(dict(seconds=seconds, peak_mib=peak, extra_mib=peak - before)))
"""


def graph_figures(candidates: str, builds: int = 3) -> dict[str, float]:
    """Build in fresh processes (honest peak memory), then load the cache in another fresh process.

    A build is one long burst on a shared 2-core machine, so it is repeated: median and slowest. The
    build's kernels are compiled here first (:func:`udig.vocab.warm_up`), so that no child pays numba's
    compilation (seconds, and more peak memory) when an edit of udig/kernels/ has made its disk cache stale."""
    import json

    from udig.vocab import warm_up

    warm_up(("dig",))

    def child(cache: str) -> dict:
        code = GRAPH_CHILD.format(root=str(ROOT), cache=cache, candidates=candidates)
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
    return {
        "build_s": statistics.median(seconds),
        "build_max_s": max(seconds),
        "build_extra_mib": max(run["extra_mib"] for run in runs),
        "load_s": load["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats",
        type=int,
        default=9,
        help="pairs per case on the 128-token input; three times as many on the short sentence",
    )
    parser.add_argument("--device", default="cpu", help="where the model runs: cpu, cuda, ...")
    parser.add_argument("--model", default=None, help="the model (default: udig's built-in Rotten Tomatoes model)")
    parser.add_argument(
        "--long", type=int, nargs="+", default=[128], help="lengths of the long inputs in tokens (256 512: reviews)"
    )
    parser.add_argument(
        "--graph",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time the KNN graph build and load too (on the CPU)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "engine_results.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    model, tokenizer = load_model(args.model)
    model.to(device)
    explainer = Explainer(model, tokenizer)
    machine = processor() + (f" + {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "")
    load_before = os.getloadavg()
    print(
        f"{machine}; torch {torch.__version__}, {torch.get_num_threads()} threads; load average {load_before[0]:.2f}",
        flush=True,
    )
    rows: list[tuple[str, float, float, float, tuple[float, float], str]] = []

    def add(what: str, pairs: list[tuple[float, float]], target: str) -> None:
        """One row: median milliseconds of both, and the median of the per-pair ratios with its 95 % interval."""
        measured = 1000 * statistics.median(m for _, m in pairs)
        reference = 1000 * statistics.median(r for r, _ in pairs)
        ratios = [m / r for r, m in pairs]
        ratio, (low, high) = statistics.median(ratios), median_interval(ratios)
        rows.append((what, measured, reference, ratio, (low, high), target))
        print(
            f"{what:62s} {measured:9.1f} ms  ref {reference:9.1f} ms  ratio {ratio:6.3f} [{low:.3f}, {high:.3f}]  "
            f"({target})",
            flush=True,
        )

    # 9 pairs at 128 tokens: single pairs there range over 0.86-1.19x (DIG Greedy with real words), so a median
    # of 4 could land past the 1.15 target on noise alone; 27 at 19 tokens, where with 9 the same case's ratio
    # moved from 1.03 to 1.15 between two runs of the same code
    inputs = [(SENTENCE, (0, 1))] + [(long_input(tokenizer, length), (0,)) for length in args.long]
    for text, factors in inputs:
        for factor in factors:  # 32 points (the papers' code default, the app's) and 63 (UDIG's SST-2 runs)
            n_points = 2**factor * 31 + 1
            fb, length = forward_backward(model, tokenizer, text, n_points)
            where = f"{n_points} points, {length} tokens"
            cases, rows_of = [], []  # (reference, candidate), and the rows each case's pairs give
            for method, strategy, candidates in METHODS:
                options = {} if method == "ig" else dict(strategy=strategy, candidates=candidates, factor=factor)
                steps = n_points - 1 if method == "ig" else 30
                run = partial(explain_timings, explainer, text, method=method, steps=steps, **options)
                name = "ig" if method == "ig" else f"{method}-{strategy}, {candidates}"
                path_target = "<= 0.10" + ("; <= 10 ms" if length < 32 and n_points == 32 else "")
                cases.append((fb, run))  # the first warm-up builds the vocabulary index and graph
                rows_of.append(
                    [
                        (f"path construction, {name}, {where}", "path", path_target),
                        (f"whole explain(), {name}, {where}", "total", "<= 1.15" if n_points == 32 else "reported"),
                    ]
                )
                if method == "ig":
                    cases.append((captum_ig(model, tokenizer, text, n_points - 1), run))
                    rows_of.append(
                        [(f"whole explain(), ig, {where}, vs captum IG ({n_points - 1} steps)", "total", "<= 1.00")]
                    )
            repeats = args.repeats * (3 if length < 32 else 1)  # short pairs are cheap: more of them steady the medians
            for pairs, rows_here in zip(interleaved(cases, repeats, device), rows_of):
                for (
                    what,
                    timing,
                    target,
                ) in rows_here:  # the path as timed inside explain(); the whole call as timed here
                    add(what, [(r, m if timing == "total" else timings[timing]) for r, m, timings in pairs], target)

    graph_rows = []
    if args.graph:
        for candidates in ("all", "words"):
            figures = graph_figures(candidates)
            graph_rows.append((candidates, figures))
            print(
                f"KNN graph K=500 ({candidates}): build {figures['build_s']:.2f} s median of 3, slowest "
                f"{figures['build_max_s']:.2f} s (target <= 10), "
                f"load {figures['load_s']:.3f} s (target <= 0.5), build peak +{figures['build_extra_mib']:.0f} MiB",
                flush=True,
            )
    load_after = os.getloadavg()

    lines = [
        f"Measured on {machine}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} cores; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; medians of "
        f"{3 * args.repeats} pairs at 19 tokens, {args.repeats} at {', '.join(map(str, args.long))}; model "
        f"{model.config.name_or_path}.",
        "",
        "| measurement | measured (ms) | reference, same run (ms) | ratio | 95 % interval | target |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        *[f"| {w} | {m:.1f} | {r:.1f} | {q:.3f} | {lo:.3f}–{hi:.3f} | {t} |" for w, m, r, q, (lo, hi), t in rows],
        "",
        "Reference for each row: a bare forward+backward of the same N points (or captum IG where named), run",
        "alternately with the measured call (every other repeat the measured call first), each repeat going round",
        "every case; the ratio is the median of the per-pair ratios, its interval the distribution-free 95 %",
        "interval for that median (order statistics).",
    ]
    if graph_rows:
        lines += [
            "",
            "| KNN graph, K = 500, MiniLM 30,522 x 384 | build, median of 3 (s) | slowest (s) | load from cache (s) "
            "| build peak extra RSS (MiB) |",
            "| --- | ---: | ---: | ---: | ---: |",
            *[
                f"| candidates={candidates} | {f['build_s']:.2f} | {f['build_max_s']:.2f} | {f['load_s']:.3f} "
                f"| {f['build_extra_mib']:.0f} |"
                for candidates, f in graph_rows
            ],
        ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
