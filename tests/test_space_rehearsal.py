"""A Space rehearsal: what ``python -m udig.space deploy`` would upload, installed and served as a Space serves it.

The upload set is written to a temporary folder; a fresh venv installs *its* ``pre-requirements.txt`` then
``requirements.txt`` (the order Spaces use; ``--retries 1``, not pip's 5, because the CPU index of
pre-requirements.txt is out of reach here and each retry of it waits; pip then takes torch 2.13.0+cpu from this
machine's wheel and the rest from the configured registry); its ``app.py`` starts with the environment a Space
gives (``SPACE_ID``, ``SPACE_HOST``, ``GRADIO_SERVER_NAME=0.0.0.0``, port 7860 unless taken, a fresh ``HF_HOME``
and home folder, offline); Debian's Chromium then loads the page and runs the Sentiment and Question answering
tabs once each. Nothing is cached between sessions but pip's own cache. Screenshots go to
``tests/output/space-rehearsal/`` for a human to look at.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from udig.space import upload_set

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
OUTPUT = Path(__file__).resolve().parent / "output" / "space-rehearsal"
RUN_TIMEOUT = 600_000  # ms: a new container compiles the kernels on its first runs
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "TMPDIR", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent: `apt-get install chromium`"),
]


def free_port(preferred: int) -> int:
    """``preferred`` when nothing listens there, else a port the system picks."""
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", preferred))
            return preferred
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]


@pytest.fixture(scope="module")
def space_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("space") / "app"  # Spaces run the repository from /home/user/app
    for name, source in upload_set().items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, bytes):
            target.write_bytes(source)
        else:
            shutil.copyfile(source, target)
    return folder


@pytest.fixture(scope="module")
def space_python(space_folder) -> Path:
    """A fresh venv holding what the Space's own requirement files install."""
    venv = space_folder.parent / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    for requirements in ("pre-requirements.txt", "requirements.txt"):
        install = [str(python), "-m", "pip", "install", "--retries", "1", "--progress-bar", "off", "-r", requirements]
        done = subprocess.run(install, cwd=space_folder, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, f"pip install -r {requirements} failed:\n{done.stdout[-3000:]}\n{done.stderr}"
    return python


@pytest.fixture(scope="module")
def space_url(space_folder, space_python):
    """The app started as a Space starts it; its address on this machine."""
    port = free_port(7860)
    home = space_folder.parent / "home"
    home.mkdir()
    env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    env |= {
        "HOME": str(home),
        "SPACE_ID": "someone/udig",
        "SPACE_HOST": "someone-udig.hf.space",
        "GRADIO_SERVER_NAME": "0.0.0.0",
        "GRADIO_SERVER_PORT": str(port),
        "HF_HOME": str(home / ".cache" / "huggingface"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    log_path = space_folder.parent / "app.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [str(space_python), "app.py"], cwd=space_folder, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, f"app.py exited ({server.returncode}):\n{log_path.read_text()[-4000:]}"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"no answer on {url} in 300 s:\n{log_path.read_text()[-4000:]}"
            time.sleep(1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def test_the_space_installs_the_cpu_torch_only(space_python):
    version = subprocess.run(
        [str(space_python), "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert version == "2.13.0+cpu"
    listed = subprocess.run(
        [str(space_python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout.lower()
    assert not [line for line in listed.splitlines() if line.startswith(("nvidia-", "triton", "cuda-"))]
    assert "gradio==6.31.0" in listed


def wait_for_text(page, selector: str, needle: str) -> None:
    page.wait_for_function(
        "([s, n]) => { const el = document.querySelector(s); return !!el && el.innerText.includes(n); }",
        arg=[selector, needle],
    )


def test_a_visitor_runs_each_tab(space_url):
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(RUN_TIMEOUT)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(space_url)
            page.wait_for_selector("#sentiment-explain")
            page.screenshot(path=OUTPUT / "loaded.png", full_page=True)

            page.locator("#sentiment-text textarea").fill("A tender, funny and thoroughly charming film.")
            page.click("#sentiment-explain")
            wait_for_text(page, "#sentiment-runtime", "path points")
            highlight = page.locator("#sentiment-highlight")
            for word in ("tender", "funny", "charming"):
                assert word in highlight.inner_text()
            assert highlight.locator("[style*='background']").count() >= 5  # the words carry colours
            assert "%" in page.locator("#sentiment-label").inner_text()
            page.screenshot(path=OUTPUT / "sentiment.png", full_page=True)

            page.get_by_role("tab", name="Question answering").click()
            assert "No trained question-answering model" in page.locator("#qa-notice").inner_text()
            page.click("#qa-explain")
            wait_for_text(page, "#qa-answer", "Answer")
            assert page.locator("#qa-start").inner_text().strip()
            page.wait_for_timeout(500)
            page.screenshot(path=OUTPUT / "question-answering.png", full_page=True)
            assert not errors
        finally:
            browser.close()
