"""The demo's first visitor: how long after `python app.py` answers the first UDIG and the first DIG take, when
it starts as a new Space container does (nothing compiled, nothing cached).

    python benchmarks/bench_app.py [--starts 3] [--out benchmarks/app_results.md]

Each cold start is a new process with a fresh HF_HOME (no vocabulary graph on disk), a fresh NUMBA_CACHE_DIR
(no compiled kernels) and no persistent storage, offline on the built-in default model. As soon as the server
answers, one `gradio_client` (imported before the server starts: a visitor's browser is not on the server's
machine) asks for a UDIG explanation of a typical sentence (default settings), then for a DIG one; both are
timed from the server's first answer, so DIG's time includes UDIG's run. After the last start, typical
sentences on the warm server give each method's ordinary time, for the ratios. Targets from the Spaces issue,
on an idle 2-core machine: first UDIG <= 5 s, first DIG <= 10 s after the server answers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from gradio_client import Client  # noqa: E402  (imported before any server starts: its import is not the server's)
from machine import processor  # noqa: E402

MODEL = "udig/minilm-rotten-tomatoes"
SETTINGS = dict(strategy="maxcount", steps=30, factor=0, nbrs=50, baseline="paper default", candidates="words")
SENTENCES = [  # review-like sentences of 10-21 tokens, none from the data
    "A gorgeous, witty, seductive movie.",
    "The plot is thin and the jokes land with a dull thud.",
    "It's not a bad film, just a forgettable one.",
    "An unflinching, deeply humane portrait of a family coming apart.",
    "Two hours of my life I will never get back, and the popcorn was stale too.",
    "The performances are wonderful even when the script lets them down.",
]
TARGETS = {"udig": 5.0, "dig": 10.0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def cold_start(keep_serving: bool) -> tuple[dict[str, float], subprocess.Popen | None, str]:
    """One cold start's figures (seconds): server answers since launch, first UDIG and first DIG since then,
    each request's own time. With ``keep_serving`` the server is left running (the caller stops it)."""
    fresh = Path(tempfile.mkdtemp(prefix="udig-bench-cold-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HOME": str(fresh / "hf"),
        "NUMBA_CACHE_DIR": str(fresh / "numba"),
        "UDIG_PERSISTENT_DIR": str(fresh / "no-persistent-storage"),
    }
    for name in ("HF_ASSETS_CACHE", "HF_HUB_CACHE"):
        env.pop(name, None)  # they would point inside an HF_HOME that is not fresh
    launched = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while not answers(url):
            if time.perf_counter() - launched > 300 or server.poll() is not None:
                raise RuntimeError("the app did not come up")
            time.sleep(0.05)
        answered = time.perf_counter()
        client = Client(url, verbose=False)
        figures = {"server answers": answered - launched}
        for method, sentence in (("udig", SENTENCES[0]), ("dig", SENTENCES[1])):
            tick = time.perf_counter()
            client.predict(text=sentence, model=MODEL, method=method, **SETTINGS, api_name="/explain")
            done = time.perf_counter()
            figures[f"first {method}"] = done - answered
            figures[f"{method} request"] = done - tick
    except BaseException:
        server.terminate()
        raise
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    if keep_serving:
        return figures, server, url
    server.terminate()
    server.wait(timeout=30)
    return figures, None, url


def warm_medians(url: str) -> dict[str, float]:
    """Each method's median over the typical sentences on a warm server (new texts: nothing remembered)."""
    client = Client(url, verbose=False)
    medians = {}
    for method in ("udig", "dig", "ig"):
        times = []
        for sentence in SENTENCES[2:]:
            tick = time.perf_counter()
            client.predict(text=sentence, model=MODEL, method=method, **SETTINGS, api_name="/explain")
            times.append(time.perf_counter() - tick)
        medians[method] = statistics.median(times)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "app_results.md")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    starts, server, url = [], None, ""
    for index in range(args.starts):
        figures, server, url = cold_start(keep_serving=index == args.starts - 1)
        starts.append(figures)
        print(f"cold start {index + 1}: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in figures.items()))
    try:
        warm = warm_medians(url)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)

    def median(name: str) -> float:
        return statistics.median(figures[name] for figures in starts)

    names = list(starts[0])
    lines = [
        f"{args.starts} cold starts (fresh HF_HOME and NUMBA_CACHE_DIR, new process each), offline default model, "
        "through `gradio_client`; seconds.",
        "",
        "| cold start | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
        *[f"| {i + 1} | " + " | ".join(f"{f[name]:.2f}" for name in names) + " |" for i, f in enumerate(starts)],
        "| median | " + " | ".join(f"{median(name):.2f}" for name in names) + " |",
        "",
        "`first udig`/`first dig`: since the server first answered (DIG asked right after UDIG's answer); "
        "`... request`: the request alone.",
        "",
        "| method | first result since the server answered (median) | target | ratio to target | warm median "
        "| first request / warm |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *[
            f"| {method} | {first:.2f} | <= {target:.0f} | {first / target:.2f} | {warm[method]:.2f} "
            f"| {median(f'{method} request') / warm[method]:.1f}x |"
            for method, target in TARGETS.items()
            for first in [median(f"first {method}")]
        ],
        f"| ig | | | | {warm['ig']:.2f} | |",
        "",
        f"{processor()}, {os.cpu_count()} cores; load average {load:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end (the targets are for an idle machine).",
    ]
    print("\n".join(lines))
    args.out.write_text("\n".join(lines) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
