"""Speed of the demo as a visitor sees it: `python app.py` on the offline default, driven by a real browser.

    python benchmarks/bench_app.py [--out benchmarks/app_results.md]

Measures, in one run: seconds from `python app.py` until the server answers and until the page is
interactive in Debian's Chromium (Playwright); the first explanation after start (clicked in the browser,
default settings); then typical sentences through `gradio_client` for UDIG (the default), IG and DIG,
the first DIG of the process (which builds the vocabulary graph) reported on its own. Targets come from
the demo issue: interactive <= 10 s, first explanation <= 15 s after start, a typical sentence <= 2 s.
Needs /usr/bin/chromium. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SENTENCES = [  # review-like sentences of 10-21 tokens, none from the data
    "A gorgeous, witty, seductive movie.",
    "The plot is thin and the jokes land with a dull thud.",
    "It's not a bad film, just a forgettable one.",
    "An unflinching, deeply humane portrait of a family coming apart.",
    "Two hours of my life I will never get back, and the popcorn was stale too.",
    "The performances are wonderful even when the script lets them down.",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, timeout: float) -> float:
    """Poll ``condition`` until it is true; the moment it became true (perf_counter)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if condition():
            return time.perf_counter()
        time.sleep(0.05)
    raise TimeoutError("the app did not come up in time")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "app_results.md")
    args = parser.parse_args()
    from gradio_client import Client
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": tempfile.mkdtemp(prefix="udig-bench-hf-"),
    }  # a fresh cache: the graph is built, not loaded
    rows: list[tuple[str, float, str]] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        started = time.perf_counter()
        server = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            rows.append(("`python app.py` -> server answers", wait_until(lambda: answers(url), 120) - started, ""))
            page = browser.new_page()
            page.set_default_timeout(120_000)
            page.goto(url)
            page.wait_for_selector("#sentiment-explain:not([disabled])")
            rows.append(("`python app.py` -> page interactive in Chromium", time.perf_counter() - started, "<= 10 s"))
            page.locator("#sentiment-text textarea").fill(SENTENCES[0])
            clicked = time.perf_counter()
            page.click("#sentiment-explain")
            page.wait_for_function(
                "() => (document.querySelector('#sentiment-runtime')?.innerText || '').includes('path points')"
            )
            done = time.perf_counter()
            rows.append(("first explanation (UDIG, default settings), since start", done - started, "<= 15 s"))
            rows.append(("first explanation, from the click", done - clicked, ""))

            client = Client(url, verbose=False)
            settings = dict(
                model="udig/minilm-rotten-tomatoes",
                strategy="maxcount",
                steps=30,
                factor=0,
                nbrs=50,
                baseline="paper default",
                candidates="words",
            )

            def explain(text: str, method: str) -> float:
                tick = time.perf_counter()
                client.predict(text=text, method=method, **settings, api_name="/explain")
                return time.perf_counter() - tick

            rows.append(
                ("first DIG of the process (builds the 30,522 x 500 KNN graph)", explain(SENTENCES[1], "dig"), "")
            )
            for method, target in (("udig", "<= 2 s"), ("ig", ""), ("dig", "")):
                times = [explain(text, method) for text in SENTENCES]
                rows.append(
                    (
                        f"typical sentence, {method}: median of {len(times)} (max {max(times):.2f} s)",
                        statistics.median(times),
                        target,
                    )
                )
            tick = time.perf_counter()
            client.predict(
                text="A slow start, but the last act is terrific.",
                strategy="maxcount",
                steps=30,
                factor=0,
                nbrs=50,
                candidates="words",
                model="udig/minilm-rotten-tomatoes",
                api_name="/compare",
            )
            rows.append(("Compare tab (IG, DIG, UDIG) on a new sentence", time.perf_counter() - tick, ""))
        finally:
            server.terminate()
            server.wait(timeout=30)
            browser.close()

    lines = [
        "| what | seconds | target |",
        "| --- | ---: | --- |",
        *[f"| {what} | {seconds:.2f} | {target} |" for what, seconds, target in rows],
        "",
        f"{os.cpu_count()} cores; offline default model; through `gradio_client` after the browser steps.",
    ]
    for what, seconds, target in rows:
        print(f"{what:70s} {seconds:7.2f} s  {target}")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
