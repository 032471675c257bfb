"""DIG's K-nearest-neighbour graph over the vocabulary: built once per (k, candidate rule), cached on disk.

The build is a V x A distance pass (every row against every candidate row). :class:`GraphStore` keeps the
graphs of one embedding matrix: in memory, else from a disk cache under
``huggingface_hub.cached_assets_path`` keyed by a hash of the matrix and one of the candidate rows (so a graph
built under another word rule is never used), else built and cached. Cache files are written atomically (a
temporary file renamed over the target) and verified on load (shape, type, ids in range, and metadata that
names the matrix, k, rule, candidates, format and a checksum of the graph); anything that does not verify is
rebuilt, never trusted. Each graph has its own lock: two threads never build the same graph, and a build holds
up neither other graphs nor the nearest-word queries.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import cached_assets_path
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from threadpoolctl import threadpool_limits
from torch import Tensor

logger = logging.getLogger(__name__)

_GRAPH_FORMAT = "2"  # 2: equal distances in id order
_QUERY_CHUNK = 2048  # rows per product: the build's peak memory stays one chunk x A scores


def knn_graph(embeddings: Tensor, k: int, allowed: Tensor, device: torch.device | str | None = None) -> Tensor:
    """For every row, the ids of its k nearest allowed rows by Euclidean distance, itself excluded.

    ``(V, k)`` int32, nearest first, equal distances in id order. Ranking a row's keys by
    ``|e - key|^2`` is ranking them by ``e . key - |key|^2 / 2`` (largest first), so appending
    ``-|key|^2 / 2`` to every key and 1 to every query turns each chunk of rows into one plain matrix
    product. The product goes through numpy's OpenBLAS, not torch's MKL, which takes a generic (slower) path
    on AMD CPUs (``benchmarks/engine_results.md``). Chunks of query rows reuse one ``chunk x A`` buffer, so
    peak memory stays there. On another ``device`` (a GPU) the same ranking runs there in torch
    (:func:`_knn_graph_on`).
    """
    key_ids = allowed.nonzero().squeeze(1)  # (A,)
    if k > len(key_ids) - 1:
        raise ValueError(f"graph_k={k} needs at least {k + 1} candidate rows, the vocabulary has {len(key_ids)}")
    rows = embeddings.detach().cpu().float().numpy()
    if not np.isfinite(rows).all():
        raise ValueError("the embedding matrix has NaN or infinite values; no neighbour graph can be built from it")
    if device is not None and torch.device(device).type != "cpu":
        return _knn_graph_on(torch.from_numpy(rows), key_ids, k, torch.device(device))
    from ..kernels import top_k_per_row  # numba loads on first use, not when udig is imported

    queries = np.hstack([rows, np.ones((len(rows), 1), np.float32)])
    keys = rows[key_ids.numpy()]
    keys_t = np.ascontiguousarray(np.hstack([keys, -0.5 * np.square(keys).sum(1, keepdims=True)]).T)  # (d+1, A)
    position = np.full(len(rows), -1)
    position[key_ids.numpy()] = np.arange(len(key_ids))
    scores = np.empty((min(_QUERY_CHUNK, len(rows)), len(key_ids)), np.float32)
    nearest = np.empty((len(rows), k), np.int32)  # positions among the keys
    with threadpool_limits(limits=torch.get_num_threads(), user_api="blas"):  # torch's thread count rules
        for start in range(0, len(rows), _QUERY_CHUNK):
            stop = min(start + _QUERY_CHUNK, len(rows))
            chunk = scores[: stop - start]
            np.matmul(queries[start:stop], keys_t, out=chunk)
            self_col = position[start:stop]
            has_self = self_col >= 0
            chunk[has_self.nonzero()[0], self_col[has_self]] = -np.inf
            top_k_per_row(chunk, k, nearest[start:stop])
    return key_ids[torch.from_numpy(nearest).long()].to(torch.int32)


def _knn_graph_on(rows: Tensor, key_ids: Tensor, k: int, device: torch.device) -> Tensor:
    """:func:`knn_graph`'s ranking in torch on ``device``: one product and one stable sort per chunk of
    rows, equal scores in id order."""
    keys = rows[key_ids]
    keys_t = torch.cat([keys, -0.5 * keys.square().sum(1, keepdim=True)], 1).T.contiguous().to(device)  # (d+1, A)
    queries = torch.cat([rows, torch.ones(len(rows), 1)], 1)
    position = torch.full((len(rows),), -1)
    position[key_ids] = torch.arange(len(key_ids))
    nearest = torch.empty(len(rows), k, dtype=torch.long)  # positions among the keys
    for start in range(0, len(rows), _QUERY_CHUNK):
        stop = min(start + _QUERY_CHUNK, len(rows))
        scores = queries[start:stop].to(device) @ keys_t  # (c, A)
        self_col = position[start:stop]
        has_self = (self_col >= 0).nonzero().squeeze(1)
        scores[has_self.to(device), self_col[has_self].to(device)] = -torch.inf
        nearest[start:stop] = scores.sort(dim=1, descending=True, stable=True).indices[:, :k].cpu()
    return key_ids[nearest].to(torch.int32)


class GraphStore:
    """The KNN graphs of one embedding matrix, by (k, candidate rule): in memory, on disk, or built.

    ``identity`` gives the matrix's hash (the disk cache key), ``candidate_mask`` a rule's candidate rows
    (it refuses unknown rules); ``cache_dir`` None uses huggingface_hub's assets folder."""

    def __init__(
        self,
        embeddings: Tensor,
        identity: Callable[[], str],
        candidate_mask: Callable[[str], Tensor],
        cache_dir: str | Path | None = None,
    ) -> None:
        self.embeddings, self.identity, self.candidate_mask, self.cache_dir = (
            embeddings,
            identity,
            candidate_mask,
            cache_dir,
        )
        self._lock = threading.Lock()  # guards the lock table
        self._build_locks: dict[tuple[int, str], threading.Lock] = {}  # one per graph: a build blocks no one else
        self._graphs: dict[tuple[int, str], Tensor] = {}

    def built(self) -> list[tuple[int, str]]:
        """The (k, rule) of every graph held in memory, in the order they were made."""
        return list(self._graphs)

    def get(self, k: int, rule: str, device: torch.device | str | None = None) -> Tensor:
        """The graph ``(V, k)`` on the CPU: from memory, else from a verified disk cache, else built (on
        ``device`` when that is a GPU: the model's) and cached."""
        allowed = self.candidate_mask(rule)  # validates the rule before any work
        key = (k, rule)
        with self._lock:
            build_lock = self._build_locks.setdefault(key, threading.Lock())
        with build_lock:
            if key not in self._graphs:
                path = self.path(k, rule)
                graph = self._load(path, k, rule)
                if graph is None:
                    graph = knn_graph(self.embeddings, k, allowed, device)
                    self._save(path, graph, k, rule)
                self._graphs[key] = graph
            return self._graphs[key]

    def path(self, k: int, rule: str) -> Path:
        """Where the graph of ``k`` and ``rule`` is cached: named by k, rule, candidate rows and format."""
        if self.cache_dir is not None:
            folder = Path(self.cache_dir) / self.identity()
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = cached_assets_path(library_name="udig", namespace="vocab", subfolder=self.identity())
        return folder / f"knn-k{k}-{rule}-{self._candidates_digest(rule)[:12]}-v{_GRAPH_FORMAT}.safetensors"

    def _candidates_digest(self, rule: str) -> str:
        """A hash of the rule's candidate rows: a graph built under another word rule has another name, never loads."""
        return hashlib.blake2b(self.candidate_mask(rule).numpy().tobytes(), digest_size=16).hexdigest()

    def _metadata(self, graph: Tensor, k: int, rule: str) -> dict[str, str]:
        return {
            "identity": self.identity(),
            "k": str(k),
            "rule": rule,
            "candidates": self._candidates_digest(rule),
            "format": _GRAPH_FORMAT,
            "checksum": hashlib.blake2b(graph.numpy().tobytes(), digest_size=16).hexdigest(),
        }

    def _load(self, path: Path, k: int, rule: str) -> Tensor | None:
        """The cached graph if every check passes; None (and a log line) otherwise."""
        if not path.exists():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                graph = handle.get_tensor("graph")
        except (SafetensorError, OSError, KeyError, ValueError, RuntimeError) as error:
            logger.warning("ignoring unreadable vocabulary cache %s (%s); rebuilding", path, error)
            return None
        valid = (
            tuple(graph.shape) == (len(self.embeddings), k)
            and graph.dtype == torch.int32
            and metadata == self._metadata(graph, k, rule)
            and int(graph.min()) >= 0
            and int(graph.max()) < len(self.embeddings)
        )
        if not valid:
            logger.warning(
                "ignoring vocabulary cache %s that does not match this model or candidate rule; rebuilding", path
            )
            return None
        return graph

    def _save(self, path: Path, graph: Tensor, k: int, rule: str) -> None:
        """Write to a temporary file beside the target, then rename: readers never see half a file."""
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            save_file({"graph": graph}, str(tmp), metadata=self._metadata(graph, k, rule))
            os.replace(tmp, path)
        except OSError as error:  # a read-only or full disk costs a rebuild next time, nothing else
            logger.warning("could not cache the vocabulary graph at %s (%s)", path, error)
            tmp.unlink(missing_ok=True)
