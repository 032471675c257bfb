"""Ready for Hugging Face Spaces: the README's front matter, and the GPU time the app asks ZeroGPU for.

The front matter is checked against the Spaces configuration reference
(https://huggingface.co/docs/hub/spaces-config-reference, huggingface/hub-docs
``docs/hub/spaces-config-reference.md``): ``sdk`` is one of gradio/docker/static; ``python_version`` is
"any valid Python 3.x or 3.x.x version" (a string: YAML reads an unquoted 3.10 as the float 3.1);
``sdk_version`` is the Gradio version to run, here the one requirements.txt pins; ``app_file`` is a path
relative to the repository root; ``emoji`` is "emoji-only"; ``colorFrom``/``colorTo`` are one of red,
yellow, green, blue, indigo, purple, pink, gray; ``suggested_hardware`` is a listed hardware flavour;
``models`` are Hub model ids used in the Space. The reference gives ``short_description`` no number: the Hub
refuses more than 60 characters (public deployment notes say so), so that is the limit checked here.

ZeroGPU takes a duration, or a callable given the decorated function's arguments that returns one
(https://huggingface.co/docs/hub/spaces-zerogpu, "Dynamic duration").
"""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from udig import space
from udig.app import AppConfig, handlers, service
from udig.models import BASE_UPSTREAM, CURATED_MODELS, DEFAULT_QA_MODEL
from udig.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COLOURS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
HARDWARE = {
    "cpu-basic",
    "cpu-upgrade",
    "t4-small",
    "t4-medium",
    "l4x1",
    "l4x4",
    "l40sx1",
    "l40sx4",
    "l40sx8",
    "a10g-small",
    "a10g-large",
    "a10g-largex2",
    "a10g-largex4",
    "a100-large",
    "a100x4",
    "a100x8",
}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # namespace/name: the Hub's current, namespaced form


@pytest.fixture(scope="module")
def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
    assert match, "README.md must start with a --- YAML block --- for Spaces"
    return yaml.safe_load(match.group(1))


def test_sdk_and_versions(front_matter):
    assert front_matter["sdk"] == "gradio"
    pinned = re.search(r"^gradio==(\S+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert pinned, "requirements.txt must pin gradio"
    assert front_matter["sdk_version"] == pinned.group(1)
    version = front_matter["python_version"]
    assert isinstance(version, str) and re.fullmatch(r"3\.\d+(\.\d+)?", version), version
    required = re.search(r'requires-python = ">=3\.(\d+)"', (ROOT / "pyproject.toml").read_text())
    assert required and int(version.split(".")[1]) >= int(required.group(1))


def test_app_file_and_card_fields(front_matter):
    app_file = ROOT / front_matter["app_file"]
    assert app_file.is_file() and app_file.resolve().is_relative_to(ROOT)
    assert front_matter["colorFrom"] in COLOURS and front_matter["colorTo"] in COLOURS
    assert front_matter["suggested_hardware"] in HARDWARE
    assert isinstance(front_matter["title"], str) and front_matter["title"].strip()
    assert isinstance(front_matter["pinned"], bool)
    description = front_matter["short_description"]
    assert isinstance(description, str) and 0 < len(description) <= 60, description
    assert all(isinstance(tag, str) for tag in front_matter["tags"])


def test_emoji_is_one_emoji(front_matter):
    emoji = front_matter["emoji"]
    symbols = [c for c in emoji if c not in "\u200d\ufe0f"]  # joiners and presentation selectors bind emoji
    assert symbols and all(unicodedata.category(c) == "So" for c in symbols), emoji


def test_models_are_the_apps_hub_models(front_matter):
    listed = front_matter["models"]
    offered = [BASE_UPSTREAM, *CURATED_MODELS["sentiment"], *CURATED_MODELS["qa"]]
    assert DEFAULT_QA_MODEL in CURATED_MODELS["qa"]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(offered)
    assert all(HUB_ID.match(model) for model in listed), [m for m in listed if not HUB_ID.match(m)]


def test_preload_from_hub_brings_the_qa_default_and_a_sentiment_model(front_matter):
    """Items are "repository file1,file2" (the reference's format): the Space's build puts them in the default
    Hub cache, where the app finds a model at hand by its config.json (``udig.app.config.model_at_hand``), so
    the QA tab opens on the trained model instead of downloading it on first use."""
    entries = [item.split() for item in front_matter["preload_from_hub"]]
    assert all(len(parts) == 2 for parts in entries), entries
    preloaded = {repository: files.split(",") for repository, files in entries}
    assert DEFAULT_QA_MODEL in preloaded
    assert len([model for model in preloaded if model in CURATED_MODELS["sentiment"]]) == 1
    assert len(preloaded) == 2 and set(preloaded) <= set(front_matter["models"])
    for files in preloaded.values():
        assert {"config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"} <= set(files), files


# -- torch on a Space ---------------------------------------------------------------------------------
ZEROGPU_TORCH = {"2.8.0", "2.9.1", "2.10.0", "2.11.0"}  # the list in huggingface.co/docs/hub/spaces-zerogpu
ZEROGPU_PYTHON = {"3.12.12", "3.10.13"}


def requirement_lines(name: str) -> list[str]:
    """A requirements file's requirements and options as pip reads them: comments and blank lines dropped."""
    lines = [line.split(" #")[0].strip() for line in (ROOT / name).read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def torch_pin(lines: list[str]) -> str:
    pins = [line.removeprefix("torch==") for line in lines if line.startswith("torch")]
    assert len(pins) == 1 and re.fullmatch(r"\d+\.\d+\.\d+", pins[0]), pins
    return pins[0]


def test_a_space_installs_the_cpu_torch_before_the_requirements():
    """pre-requirements.txt (installed first on a Space) adds PyTorch's CPU index, where the same version carries
    "+cpu" and so wins; requirements.txt's pin is then met. requirements.txt itself names no index: pip would
    ask it for every package, and where it is out of reach (here) each ask waits out pip's retries."""
    early, runtime = requirement_lines("pre-requirements.txt"), requirement_lines("requirements.txt")
    assert early == ["--extra-index-url https://download.pytorch.org/whl/cpu", f"torch=={torch_pin(early)}"]
    assert torch_pin(early) == torch_pin(runtime)
    assert not [line for line in runtime if line.startswith("-")], "requirements.txt must not name an index"


def test_zerogpu_requirements_differ_only_in_torch():
    zerogpu, runtime = requirement_lines("requirements-zerogpu.txt"), requirement_lines("requirements.txt")
    assert torch_pin(zerogpu) in ZEROGPU_TORCH
    assert [line for line in zerogpu if not line.startswith("torch")] == [
        line for line in runtime if not line.startswith("torch")
    ]
    assert space.ZEROGPU_PYTHON in ZEROGPU_PYTHON


# -- ZeroGPU duration ---------------------------------------------------------------------------------


def test_gpu_seconds_grows_with_points_and_tokens_within_its_range():
    low, high = service.GPU_SECONDS
    assert service.gpu_seconds(1, 1) == low
    assert service.gpu_seconds(10_000, 512) == high
    typical = service.gpu_seconds(32, 20)  # the demo's defaults on a short review
    assert low <= typical < 30
    assert service.gpu_seconds(129, 60) >= service.gpu_seconds(65, 60) >= service.gpu_seconds(65, 30) >= typical
    unclamped = service.GPU_MARGIN * (service.GPU_FIXED_S + service.GPU_S_PER_POINT_TOKEN * 129 * 60)
    assert service.gpu_seconds(129, 60) == max(low, min(high, -(-unclamped // 1)))


def test_duration_callable_takes_attributes_arguments(tiny, monkeypatch):
    """spaces.GPU calls it with attribute()'s own arguments; it counts tokens as the explainer encodes them."""
    monkeypatch.setattr(service, "GPU_SECONDS", (0, 10**6))  # unclamped, so the token count shows
    registry = service.Registry(max_tokens=40, device="cpu")
    registry.register("tiny", lambda: tiny)
    settings = Settings.make(method="udig", steps=30, factor=1)
    long_text = " ".join(["a very good and moving film"] * 12)  # more than 40 tokens: truncated
    for text, tokens in (("a good film", 5), (long_text, 40)):
        seconds = service.attribution_seconds(registry.key, "tiny", {"text": text}, settings)
        assert seconds == service.gpu_seconds(settings.n_points, tokens)
    assert service.gpu_seconds(settings.n_points, 40) > service.gpu_seconds(settings.n_points, 5)


def test_the_gpu_function_is_handed_names_not_models(tiny):
    """On ZeroGPU the arguments are pickled into a forked worker: they must be small and model-free."""
    import pickle

    registry = service.Registry(max_tokens=40, device="cpu")
    registry.register("tiny", lambda: tiny)
    arguments = (registry.key, "tiny", {"text": "a good film"}, Settings.make(method="ig", steps=4))
    assert len(pickle.dumps(arguments)) < 2_000
    result = service.attribute(*arguments)
    assert result.explanation.tokens[1:4] == ["a", "good", "film"]
    assert pickle.loads(pickle.dumps(result)).explanation.tokens == result.explanation.tokens  # it comes back too


@pytest.mark.skipif(service.gpu.__module__ != service.__name__, reason="the real spaces package is installed")
def test_stand_in_accepts_spaces_gpu_call_forms():
    def double(x: int) -> int:
        return 2 * x

    assert service.gpu(double)(2) == 4
    assert service.gpu(duration=5)(double)(2) == 4
    assert service.gpu(duration=lambda x: timedelta(seconds=x))(double)(2) == 4
    assert service.gpu(double, duration=lambda x: x)(2) == 4
    assert service.gpu()(double)(2) == 4


@pytest.mark.parametrize("raw", ["", "full", "1", "model", "0", "off", " No ", "false"])
def test_app_compiles_its_kernels_in_another_process_unless_the_warm_up_is_off(monkeypatch, raw):
    """`python app.py` starts `python -m udig.vocab` before its own imports, exactly when the warm-up is on
    (app.py reads UDIG_WARMUP before udig.app.config can be imported: both must agree)."""
    import app

    started = []
    monkeypatch.setattr(app.subprocess, "Popen", lambda command, **kwargs: started.append(command) or "process")
    monkeypatch.setenv("UDIG_WARMUP", raw)
    off = AppConfig.from_env().warmup == "off"
    assert (app.start_compiling_kernels() is None) == off
    assert started == ([] if off else [[sys.executable, "-m", "udig.vocab"]])


def test_the_warm_up_waits_for_each_method_the_compiler_announces():
    """The warm-up reads the compiler's lines up to the method it needs; a compiler that dies early (no line)
    ends the wait too, and the kernels then compile in the server itself."""
    script = "import sys; print('udig 1.0', flush=True); sys.stdin.readline(); print('dig 2.0', flush=True)"
    compiler = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    handlers._wait_for(compiler, "udig")  # returns after the first line, while the process waits on stdin
    assert compiler.poll() is None
    compiler.stdin.write("go\n")
    compiler.stdin.flush()
    handlers._wait_for(compiler, "dig")
    assert compiler.wait(timeout=60) == 0
    silent = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"], stdout=subprocess.PIPE, text=True)
    handlers._wait_for(silent, "udig")  # EOF: no hang
    assert silent.wait(timeout=60) == 1
    handlers._wait_for(None, "udig")  # no compiler: nothing to wait for
