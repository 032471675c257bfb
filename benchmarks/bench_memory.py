"""Resident memory of the demo over many requests at its largest allowed path, with and without handing freed
memory back to the system (:mod:`udig.app.memory`).

    python benchmarks/bench_memory.py [--part curves|peak|both] [--requests 20] [--words 90] [--threads 4]

Each part rewrites its own section of benchmarks/memory_results.md (``--out``).

Each variant runs in a fresh process: the default model, then ``--requests`` sentiment requests through the
demo's handlers (``Demo.explain``), alternately UDIG and DIG at 63 anchors and upscaling 3 (513 path points, the
most the demo allows), each on a new review of ``--words`` words, each on the next of ``--threads`` threads (a
server's worker threads take turns as visitors overlap; each thread allocates from its own glibc arena).
The resident set (VmRSS) is read after every request. Variants: "glibc defaults" (the hooks switched off) and
"as shipped" (``hand_back_freed_memory()`` at start, as ``app.py`` does, and ``trim()`` after each request).
Target from the Spaces issue: after ``--requests`` requests, within 300 MB of the level after the first.

One request's peak: for each budget of path points x tokens per forward/backward pass
(``udig.explainer.TOKENS_PER_BATCH``: 4096 now, 8192 before), a fresh process as shipped runs a tiny request, then
``--repeats`` UDIG requests at 513 points on ``--words``-word reviews: each one's peak resident set above the level
before it, and its CPU seconds (less disturbed than wall time by other work on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import processor  # noqa: E402

SECTIONS = {"curves": "Resident memory over many requests", "peak": "One request's peak"}
BUDGETS = (4096, 8192)  # path points x tokens per pass: udig.explainer.TOKENS_PER_BATCH now, and before
VARIANTS = {"defaults": "glibc defaults (hooks off)", "shipped": "as shipped (mallopt at start, trim per request)"}
WORDS = (
    "the film is a slow and careful portrait of grief with a fine cast and some lovely images but it never quite "
    "finds its rhythm and the last act drags on long after its best moments have passed"
).split()


def status_mb(key: str) -> float:
    """A line of /proc/self/status (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def review(index: int, words: int) -> str:
    """A review-like text of ``words`` words, different for each ``index`` (no request is served from the cache)."""
    return " ".join(WORDS[(index * 7 + j) % len(WORDS)] for j in range(words))


def run_variant(variant: str, requests: int, words: int, threads: int) -> dict:
    """One process's curve: resident MB after each request, its peak, and the seconds each request took."""
    from udig.app import AppConfig, Demo, memory

    if variant == "shipped":
        memory.hand_back_freed_memory()
    else:
        memory.trim = lambda: None  # what the service calls after each request
    demo = Demo(AppConfig.from_env())
    workers = [ThreadPoolExecutor(1) for _ in range(threads)]
    curve, seconds = [], []
    for index in range(requests):
        method = ("udig", "dig")[index % 2]
        tick = time.perf_counter()
        job = workers[index % threads].submit(
            demo.explain, text=review(index, words), method=method, steps=63, factor=3
        )
        job.result()
        seconds.append(time.perf_counter() - tick)
        curve.append(status_mb("VmRSS"))
        print(f"{variant}: request {index + 1} ({method}) {seconds[-1]:.1f} s, {curve[-1]:.0f} MB", file=sys.stderr)
    return {"curve": curve, "peak": status_mb("VmHWM"), "seconds": seconds}


def one_request_peak(tokens_per_batch: int, words: int, repeats: int) -> dict:
    """Peak MB above the resident level before one largest-path UDIG request, and its CPU seconds, per repeat."""
    import udig.explainer
    from udig.app import AppConfig, Demo, memory

    memory.hand_back_freed_memory()
    udig.explainer.TOKENS_PER_BATCH = tokens_per_batch
    demo = Demo(AppConfig.from_env())
    demo.explain(text="A fine film.", method="udig", steps=4)  # loads the model, compiles the kernels
    peaks, cpu = [], []
    for index in range(repeats):
        Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from the resident level
        before, tick = status_mb("VmRSS"), time.process_time()
        demo.explain(text=review(100 + index, words), method="udig", steps=63, factor=3)
        cpu.append(time.process_time() - tick)
        peaks.append(status_mb("VmHWM") - before)
    return {"peaks": peaks, "cpu": cpu}


def measure(command: list[str]) -> dict:
    """Run ``command`` (this file, one part in a fresh process) and return the JSON it prints last."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run([sys.executable, __file__, *command], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    done.check_returncode()
    return json.loads(done.stdout.strip().splitlines()[-1])


def curves_section(requests: int, words: int, threads: int) -> list[str]:
    """The resident set over ``requests`` requests, per variant, as Markdown."""
    results = {
        variant: measure(
            ["--variant", variant, "--requests", str(requests), "--words", str(words), "--threads", str(threads)]
        )
        for variant in VARIANTS
    }
    return curves_table(results, requests, words, threads)


def curves_table(results: dict[str, dict], requests: int, words: int, threads: int) -> list[str]:
    """:func:`curves_section`'s Markdown for ``results`` by variant (as :func:`run_variant` returns them)."""
    lines = [
        f"{requests} requests at 513 path points (UDIG and DIG in turn), {words}-word reviews, {threads} threads "
        "taking turns; resident MB after requests 1, 2, 5, 10 and the last.",
        "",
        "| variant | after 1 | 2 | 5 | 10 | last | last − first | peak | median s/request |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for variant, result in results.items():
        curve, seconds = result["curve"], sorted(result["seconds"])
        picks = [curve[min(i, len(curve)) - 1] for i in (1, 2, 5, 10, len(curve))]
        lines.append(
            f"| {VARIANTS[variant]} | "
            + " | ".join(f"{mb:.0f}" for mb in picks)
            + f" | {curve[-1] - curve[0]:+.0f} | {result['peak']:.0f} | {seconds[len(seconds) // 2]:.1f} |"
        )
    defaults, shipped = results["defaults"]["curve"], results["shipped"]["curve"]
    return [
        *lines,
        "",
        f"Growth after the first request: {shipped[-1] - shipped[0]:+.0f} MB as shipped (target: within 300 MB), "
        f"{defaults[-1] - defaults[0]:+.0f} MB with glibc's defaults; resident after the last request: "
        f"{shipped[-1] / defaults[-1]:.2f}x.",
        "",
        "Full curves (MB): "
        + "; ".join(f"{v}: {' '.join(f'{mb:.0f}' for mb in r['curve'])}" for v, r in results.items()),
    ]


def peak_section(words: int, repeats: int) -> list[str]:
    """One request's peak and CPU time per budget of tokens per pass, as Markdown."""
    peaks = {
        budget: measure(["--budget", str(budget), "--words", str(words), "--repeats", str(repeats)])
        for budget in BUDGETS
    }
    mean = {budget: {key: statistics.mean(values) for key, values in peak.items()} for budget, peak in peaks.items()}
    now, before = BUDGETS
    lines = [
        f"One UDIG request at 513 points on a {words}-word review, as shipped, {repeats} per budget of path points x "
        "tokens per pass.",
        "",
        "| tokens per pass | peak MB above the level before (each) | CPU s (each) |",
        "| ---: | --- | --- |",
    ]
    for budget, peak in peaks.items():
        shown = {key: " ".join(f"{value:.1f}" for value in values) for key, values in peak.items()}
        lines.append(f"| {budget} | {shown['peaks']} | {shown['cpu']} |")
    return [
        *lines,
        "",
        f"{now} against {before}: peak above the level before {mean[now]['peaks'] / mean[before]['peaks']:.2f}x, "
        f"CPU time {mean[now]['cpu'] / mean[before]['cpu']:.2f}x (means).",
    ]


def write_section(path: Path, title: str, lines: list[str]) -> None:
    """Replace the ``## title`` section of the results file (or add it), keeping the other one."""
    text = path.read_text() if path.exists() else ""
    sections = {part.splitlines()[0][3:]: part for part in re.split(r"(?m)^(?=## )", text) if part.startswith("## ")}
    machine = f"{processor()}, {os.cpu_count()} cores; load average at the end {os.getloadavg()[0]:.1f}."
    sections[title] = "\n".join([f"## {title}", "", *lines, "", machine, ""]) + "\n"
    path.write_text("".join(sections[name] for name in SECTIONS.values() if name in sections))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["curves", "peak", "both"], default="both")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--words", type=int, default=90)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="requests per budget for one request's peak")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "memory_results.md")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one variant, in this process
    parser.add_argument("--budget", type=int, help=argparse.SUPPRESS)  # one request's peak, in this process
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.requests, args.words, args.threads)))
        return
    if args.budget:
        print(json.dumps(one_request_peak(args.budget, args.words, args.repeats)))
        return
    parts = {
        "curves": lambda: curves_section(args.requests, args.words, args.threads),
        "peak": lambda: peak_section(args.words, args.repeats),
    }
    for part, make in parts.items():
        if args.part in (part, "both"):
            lines = make()
            print("\n".join(lines) + "\n")
            write_section(args.out, SECTIONS[part], lines)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
