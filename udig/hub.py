"""Reaching the Hugging Face Hub: whether it is switched off, whether it answers, what a failed load means, and
whether a model a visitor names may be loaded at all.

Kept apart from the loaders in :mod:`udig.models` so that the demo's configuration can ask the same two
questions (may models be downloaded now?) without loading anything.

Vetting (:func:`vet`) decides before anything but the model's description is downloaded: its config (a
classification or extractive-QA head of a family udig is tested on, no code of its own), its weights
(safetensors only: they hold tensors, never code), its parameter count (from the safetensors headers) and what
downloading it would cost. The decision is pure (:func:`vet` takes a :class:`ModelFiles`); reading those facts
is the I/O at its edge: :func:`hub_model_files` asks the Hub (the config, the file list with sizes and the
safetensors headers, not the weights), :func:`folder_model_files` reads a local folder.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FAMILIES",
    "ModelFiles",
    "ModelRefused",
    "Vetted",
    "VettingLimits",
    "check_model_id",
    "failure_message",
    "fetched_files",
    "folder_model_files",
    "hub_model_files",
    "hub_offline",
    "hub_reachable",
    "hub_refusal",
    "safetensors_parameters",
    "vet",
    "vet_hub_model",
]

# Exception types (anywhere in the chain) that mean "the Hub could not be asked", not "the model is wrong".
_NO_HUB_ERRORS = {
    "OfflineModeIsEnabled",
    "LocalEntryNotFoundError",
    "ConnectError",
    "ConnectionError",
    "ConnectTimeout",
    "TimeoutException",
}


def hub_offline() -> bool:
    """Whether Hub access is switched off (``HF_HUB_OFFLINE``, read now or when huggingface_hub loaded)."""
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return True
    except Exception:  # noqa: BLE001
        pass
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


_probe_lock = threading.Lock()
_probe: dict[str, tuple[float, bool]] = {}


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub endpoint accepts a TCP connection (the answer is kept for a minute), so that an
    unreachable Hub fails in a second instead of after huggingface_hub's retries. True behind a proxy."""
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


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def failure_message(name: str, error: BaseException, *, offline: bool, unreachable: bool, fallback: str) -> str:
    """Why loading the Hub id ``name`` failed, told as what to do: a misspelt id, a gated model, or no Hub at
    hand (``offline``: switched off; ``unreachable``: no answer). ``fallback`` names what works without it."""
    types = {type(x).__name__ for x in _chain(error)}
    text = " ".join(str(x) for x in _chain(error)).lower()
    if "RepositoryNotFoundError" in types or "HFValidationError" in types or "is not a valid model identifier" in text:
        return (
            f"{name!r} is neither a local folder nor a model on the Hugging Face Hub. Check the spelling, "
            f"or give the path of a local model folder. {fallback}"
        )
    if "GatedRepoError" in types:
        return f"{name!r} is a gated model on the Hub; log in with `huggingface-cli login` first."
    if not (offline or unreachable or _NO_HUB_ERRORS & types or "couldn't connect" in text or "offline" in text):
        lines = str(error).strip().splitlines()
        return f"Could not load {name!r}: " + f"{type(error).__name__}: {lines[0] if lines else ''}"[:400]
    if offline:
        why = "Hub access is switched off (HF_HUB_OFFLINE is set)"
        fix = "To download it from the Hub instead, unset HF_HUB_OFFLINE (with network access)"
    else:
        why = "the Hugging Face Hub cannot be reached (no network?)"
        fix = "To download it from the Hub instead, make sure https://huggingface.co is reachable"
    return (
        f"Cannot load {name!r}: {why}, and it is not in the local Hugging Face cache. {fallback} "
        "To use a model without the Hub, pass the path of a local folder holding it (config.json, weights and "
        "tokenizer files, e.g. written by `save_pretrained` or `hf download <id> --local-dir <folder>` "
        f"on a machine with access). {fix}; it is then cached for offline use."
    )


# --------------------------------------------------------------------------- vetting a model before download
# model_type -> (transformers class prefix, the family's name as visitors know it): the families
# tests/test_tokenizer_families.py runs every method on, classification and QA.
FAMILIES: dict[str, tuple[str, str]] = {
    "bert": ("Bert", "BERT"),
    "distilbert": ("DistilBert", "DistilBERT"),
    "electra": ("Electra", "ELECTRA"),
    "roberta": ("Roberta", "RoBERTa"),
    "albert": ("Albert", "ALBERT"),
    "deberta-v2": ("DebertaV2", "DeBERTa-v2"),
    "xlm-roberta": ("XLMRoberta", "XLM-RoBERTa"),
}
WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
TOKENIZER_FILES = (  # what a tokenizer of these families may read; only those present are fetched
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "spm.model",
    "sentencepiece.bpe.model",
)
VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "spm.model", "sentencepiece.bpe.model")
PICKLED_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl")  # formats that can run code when loaded
MAX_HEADER_BYTES = 100_000_000  # a safetensors header longer than this is not read (a real one is a few MB at most)
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,199}")


@dataclass(frozen=True)
class VettingLimits:
    """What the public demo loads at most."""

    max_parameters: int = 400_000_000
    max_download_bytes: int = 2_000_000_000  # 400 M float32 parameters are 1.6 GB


@dataclass(frozen=True)
class ModelFiles:
    """What a model's repository (or folder) says about it, read without downloading its weights."""

    name: str  # as the visitor typed it: every refusal names it
    config: Mapping | None  # config.json; None when missing or unreadable
    sizes: Mapping[str, int | None]  # every file: path -> bytes (None: unknown)
    weight_files: tuple[str, ...] = ()  # the safetensors files the weights are in (every shard)
    parameters: int | None = None  # from the safetensors headers; None when they could not be read
    tokenizer_config: Mapping | None = None  # tokenizer_config.json, when there is one
    revision: str | None = None  # the commit these facts were read at: download exactly that one


@dataclass(frozen=True)
class Vetted:
    """A model the demo may load: what to fetch (at ``revision``, nothing else) and what it is."""

    name: str
    revision: str | None
    task: str  # "classification" or "qa"
    architecture: str  # e.g. "RobertaForSequenceClassification"
    family: str  # e.g. "RoBERTa"
    parameters: int
    download_bytes: int
    files: tuple[str, ...]  # config, weights, tokenizer: the download's allow-list


class ModelRefused(ValueError):
    """The demo does not load this model; the message is one sentence a visitor can act on."""


def vet(model: ModelFiles, limits: VettingLimits = VettingLimits()) -> Vetted:
    """May the demo load ``model``? The :class:`Vetted` files to fetch, or :class:`ModelRefused` saying why not.

    Pure: every fact comes in ``model`` (see :func:`hub_model_files`, :func:`folder_model_files`). Checked in
    the order a visitor can fix them: a supported head and family, no code of its own, safetensors weights,
    the parameter count, a tokenizer, the download size.
    """
    from .tasks import TASKS  # torch is imported by the loaders, not by the demo's configuration

    name = _shown(model.name)
    config = model.config
    if not isinstance(config, Mapping):
        raise ModelRefused(f"{name} has no readable configuration file, so the demo cannot load it.")
    if _needs_own_code(config) or _needs_own_code(model.tokenizer_config or {}):
        raise ModelRefused(f"{name} needs code of its own to run, and the demo never runs a model's own code.")
    model_type = config.get("model_type")
    architectures = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    heads = {task.head_suffix: task.name for task in TASKS.values()}
    if model_type not in FAMILIES:
        known = ", ".join(label for _, label in FAMILIES.values())
        raise ModelRefused(f"{name} is not a model of a family the demo explains ({known}).")
    prefix, family = FAMILIES[model_type]
    found = [(a, heads[a.removeprefix(prefix)]) for a in architectures if a.removeprefix(prefix) in heads]
    if not found:
        raise ModelRefused(
            f"{name} is not a text classifier or an extractive question-answering model, so the demo cannot "
            "explain its decisions."
        )
    architecture, task = found[0]
    if not model.weight_files:
        pickled = any(path.endswith(PICKLED_WEIGHTS) for path in model.sizes)
        raise ModelRefused(
            f"{name} has no weights in the safetensors format"
            + (", only in a format that can run code when loaded" if pickled else "")
            + "; the demo loads safetensors weights only."
        )
    if model.parameters is None:
        raise ModelRefused(f"The size of {name} cannot be read from its weights, so the demo does not load it.")
    if model.parameters > limits.max_parameters:
        raise ModelRefused(
            f"{name} has {_count(model.parameters)} parameters, more than the {_count(limits.max_parameters)} "
            "the demo loads."
        )
    files = fetched_files(model)
    if not any(path in model.sizes for path in VOCABULARY_FILES):
        raise ModelRefused(f"{name} comes without its tokenizer, so the demo cannot read text with it.")
    sizes = [model.sizes.get(path) for path in files]
    if any(size is None for size in sizes):
        raise ModelRefused(f"The download size of {name} cannot be known in advance, so the demo does not load it.")
    download = sum(sizes)
    if download > limits.max_download_bytes:
        raise ModelRefused(
            f"{name} would take {_bytes(download)} to download, more than the {_bytes(limits.max_download_bytes)} "
            "the demo allows."
        )
    return Vetted(model.name, model.revision, task, architecture, family, model.parameters, download, files)


def fetched_files(model: ModelFiles) -> tuple[str, ...]:
    """The files loading ``model`` needs: its config, its safetensors weights (and their index), its tokenizer's."""
    weights = (*((WEIGHTS_INDEX,) if WEIGHTS_INDEX in model.sizes else ()), *model.weight_files)
    tokenizer = tuple(path for path in TOKENIZER_FILES if path in model.sizes)
    return ("config.json", *weights, *tokenizer)


def _needs_own_code(config: Mapping) -> bool:
    """A config that maps classes to the repository's own modules (``auto_map``) or asks for remote code."""
    return bool(config.get("auto_map")) or bool(config.get("trust_remote_code"))


def _shown(name: str, limit: int = 60) -> str:
    """A visitor's model name inside a sentence: quoted, cut to ``limit`` characters."""
    text = " ".join(str(name).split())
    return f"“{text if len(text) <= limit else text[:limit] + '…'}”"


def _count(parameters: int) -> str:
    for size, word in ((1e9, "billion"), (1e6, "million"), (1e3, "thousand")):
        if parameters >= size:
            return f"{_figure(parameters / size)} {word}"
    return str(parameters)


def _bytes(size: int) -> str:
    for unit, word in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if size >= unit:
            return f"{_figure(size / unit)} {word}"
    return f"{size} bytes"


def _figure(value: float) -> str:
    """Three significant figures at most, no trailing zeros: 400, 1.2, 12.5."""
    digits = max(0, 2 - int(math.floor(math.log10(value)))) if value > 0 else 0
    return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"


def check_model_id(name: str, revision: str | None = None) -> None:
    """``owner/name`` (and a revision: a branch, tag or commit) as the Hub writes them; else :class:`ModelRefused`."""
    if not isinstance(name, str) or not _MODEL_ID.fullmatch(name.strip()) or ".." in name:
        raise ModelRefused(f"{_shown(name)} is not a model name: write it as owner/name, as on the Hugging Face Hub.")
    if revision is not None and (not _REVISION.fullmatch(revision.strip()) or ".." in revision):
        raise ModelRefused(f"{_shown(revision)} is not a revision: give a branch, a tag or a commit of the model.")


# --------------------------------------------------------------------------- reading the facts (I/O)
def safetensors_parameters(path: str | os.PathLike) -> int:
    """The number of parameters in a safetensors file, from its header alone (8 bytes of length, then JSON)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        if length > MAX_HEADER_BYTES:
            raise ValueError(f"{path}: a {length}-byte header is not a safetensors header")
        header = json.loads(f.read(length))
    return sum(math.prod(entry["shape"]) for key, entry in header.items() if key != "__metadata__")


def _json_file(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def folder_model_files(folder: str | os.PathLike, name: str | None = None) -> ModelFiles:
    """What a local folder holds, read as :func:`hub_model_files` reads a repository (headers only)."""
    root = Path(folder)
    sizes = {path.relative_to(root).as_posix(): path.stat().st_size for path in root.rglob("*") if path.is_file()}
    index = _json_file(root / WEIGHTS_INDEX) if WEIGHTS_INDEX in sizes else None
    if index is not None:
        weight_files = tuple(sorted(set((index.get("weight_map") or {}).values())))
    else:
        weight_files = (WEIGHTS,) if WEIGHTS in sizes else ()
    try:
        parameters = sum(safetensors_parameters(root / path) for path in weight_files) if weight_files else None
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        parameters = None
    return ModelFiles(
        name=str(folder) if name is None else name,
        config=_json_file(root / "config.json"),
        sizes=sizes,
        weight_files=weight_files,
        parameters=parameters,
        tokenizer_config=_json_file(root / "tokenizer_config.json"),
    )


def hub_model_files(name: str, revision: str | None = None, token: str | bool | None = None) -> ModelFiles:
    """What the Hub says about model ``name``: its file list with sizes, its config and tokenizer config (two
    small downloads) and its safetensors headers (read by range requests), all at one commit, never the weights.
    Hub errors (no such model, gated, no network) are raised as huggingface_hub raises them."""
    from huggingface_hub import HfApi, get_safetensors_metadata, hf_hub_download

    info = HfApi().model_info(name, revision=revision, files_metadata=True, token=token)
    commit = info.sha or revision
    sizes = {sibling.rfilename: sibling.size for sibling in info.siblings or []}

    def small_json(path: str) -> dict | None:
        if path not in sizes:
            return None
        return _json_file(Path(hf_hub_download(name, path, revision=commit, token=token)))

    weight_files: tuple[str, ...] = ()
    parameters = None
    if WEIGHTS in sizes or WEIGHTS_INDEX in sizes:
        metadata = get_safetensors_metadata(name, revision=commit, token=token)
        weight_files = tuple(sorted(metadata.files_metadata))
        parameters = sum(metadata.parameter_count.values())
    return ModelFiles(
        name=name,
        config=small_json("config.json"),
        sizes=sizes,
        weight_files=weight_files,
        parameters=parameters,
        tokenizer_config=small_json("tokenizer_config.json"),
        revision=commit,
    )


def hub_refusal(name: str, error: BaseException) -> ModelRefused:
    """A failed look-up of ``name`` on the Hub, told to a visitor in one sentence."""
    types = {type(x).__name__ for x in _chain(error)}
    shown = _shown(name)
    if "RevisionNotFoundError" in types:
        return ModelRefused(f"{shown} has no such revision on the Hugging Face Hub.")
    if "GatedRepoError" in types:
        return ModelRefused(f"{shown} is gated on the Hugging Face Hub: the demo can only load open models.")
    if types & {"RepositoryNotFoundError", "HFValidationError"}:
        return ModelRefused(f"There is no public model called {shown} on the Hugging Face Hub.")
    if "NotASafetensorsRepoError" in types or "SafetensorsParsingError" in types:
        return ModelRefused(f"The size of {shown} cannot be read from its weights, so the demo does not load it.")
    return ModelRefused(f"The Hugging Face Hub could not tell the demo about {shown} just now; try again later.")


def vet_hub_model(
    name: str,
    revision: str | None = None,
    limits: VettingLimits = VettingLimits(),
    token: str | bool | None = None,
) -> Vetted:
    """:func:`vet` of Hub model ``name`` at ``revision``: every refusal (a malformed name, a Hub error, the
    model itself) is a :class:`ModelRefused` whose message a visitor can read."""
    check_model_id(name, revision)
    name, revision = name.strip(), None if revision is None else revision.strip()
    try:
        facts = hub_model_files(name, revision, token)
    except Exception as error:  # noqa: BLE001 - every Hub failure becomes a sentence for the visitor
        raise hub_refusal(name, error) from error
    return vet(facts, limits)
