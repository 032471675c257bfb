"""Reaching the Hugging Face Hub: whether it is switched off, whether it answers, and what a failed load means.

Kept apart from the loaders in :mod:`udig.models` so that the demo's configuration can ask the same two
questions (may models be downloaded now?) without loading anything.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

__all__ = ["failure_message", "hub_offline", "hub_reachable"]

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
