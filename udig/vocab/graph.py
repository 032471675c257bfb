"""DIG's K-nearest-neighbour graph over the vocabulary: built once per (k, candidate set), cached on disk.

DIG's chains read a graph row only at a sentence's tokens and at the anchors after them, which are candidate rows
(keys): so the keys' rows are built at once (a key-by-key distance pass, :func:`key_graph`) and any other row's
(a subword, a number, a name outside the real words) is ranked the first time a sentence asks for it
(:func:`rank_rows`, milliseconds), never in the build: on the default model those rows are a third of the
vocabulary and half of the build's products. :class:`NeighbourGraph` holds one graph; :class:`GraphStore` keeps
the graphs of one embedding matrix: in memory, else from a disk cache under
``huggingface_hub.cached_assets_path`` keyed by a hash of the matrix and one of the candidate rows (so a graph
built under another real-word set is never used), else built and cached. Cache files hold the keys' rows; they
are written atomically (a temporary file renamed over the target) and verified on load (shape, type, ids in
range, and metadata that names the matrix, k, candidate set, its rows, format and a checksum of the graph);
anything that does not verify is rebuilt, never trusted. Each graph has its own lock: two threads never build
the same graph, and a build holds up neither other graphs nor the nearest-word queries.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import cached_assets_path
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from threadpoolctl import threadpool_limits
from torch import Tensor

logger = logging.getLogger(__name__)

_GRAPH_FORMAT = "4"  # 2: equal distances in id order; 3: keys' products once per pair; 4: the keys' rows only
_BLOCK = 2048  # keys per block of products: the build's products take one block x block buffer
_QUERY_CHUNK = 2048  # rows per product on another device (a GPU): its peak memory stays one chunk x A scores
_RANK_CHUNK = 512  # rows ranked at once on the CPU (rank_rows): its products and positions stay 2 x chunk x A

RowIds = Tensor | Sequence[int] | None  # graph rows asked for: None every row, () the keys' only


def knn_graph(embeddings: Tensor, k: int, allowed: Tensor, device: torch.device | str | None = None) -> Tensor:
    """For every row, the ids of its k nearest allowed rows by Euclidean distance, itself excluded.

    ``(V, k)`` int32, nearest first, equal distances in id order: the keys' rows (:func:`key_graph`) and every
    other row's (:func:`rank_rows`). Ranking a row e's keys by ``|e - key|^2`` is ranking them by the score
    ``e . key - |key|^2 / 2`` (largest first). Each score is the float32 product ``e . key`` less ``|key|^2 / 2``
    (computed in float64, rounded to float32), in float32; so for a row e and keys a, b whose exact scores differ
    by more than ``bound(e, a) + bound(e, b)``, with ``bound(e, c) = (d + 2) 2^-24 (1 + 2^-10) (|e| |c| + |c|^2)``
    in d dimensions, the graph ranks them as the exact (float64) distances do (each float32 product of d terms is
    within ``d 2^-24 |e| |c|`` of the exact one, whatever the summation order; the half norm and the subtraction
    each round once); closer ones it may rank either way, as any float32 ranking does. A row's ranking does not
    depend on which other rows are ranked with it. On another ``device`` (a GPU) the same ranking runs there in
    torch (:func:`_knn_graph_on`).
    """
    return NeighbourGraph.build(embeddings, k, allowed, device).rows(None, device)


def key_graph(embeddings: Tensor, k: int, allowed: Tensor, device: torch.device | str | None = None) -> Tensor:
    """Each key's (allowed row's) k nearest other keys: ``(A, k)`` int32 ids, keys in id order, ranked as
    :func:`knn_graph` says.

    The products of keys with keys are symmetric, so they are computed once per pair of keys, in blocks of
    :data:`_BLOCK` x :data:`_BLOCK` through numpy's OpenBLAS (torch's MKL takes a generic, slower path on AMD
    CPUs: ``benchmarks/engine_results.md``), half of them; each block is offered to the keys of both sides
    (:func:`udig.kernels.collect_block`), which keep only the scores that may be among their k best. The keys
    go by in order of their norms, smallest first: those tend to score best (``- |key|^2 / 2``), so the keys'
    thresholds rise early and fewer scores are kept on the way (on MiniLM's real words, a quarter as many as
    in id order, whose later, rarer words have smaller norms: ``benchmarks/coldstart_results.md``).
    ``benchmarks/engine_results.md`` has the time and memory.
    """
    key_ids = allowed.nonzero().squeeze(1)  # (A,)
    if k > len(key_ids) - 1:
        raise ValueError(f"graph_k={k} needs at least {k + 1} candidate rows, the vocabulary has {len(key_ids)}")
    rows = _finite_rows(embeddings)
    if device is not None and torch.device(device).type != "cpu":
        return _knn_graph_on(torch.from_numpy(rows), key_ids, key_ids, k, torch.device(device))
    from ..kernels import collect_block, empty_candidates, top_k_of_rows  # numba loads on first use

    key_ids_np = key_ids.numpy()
    half = _half_sq_norms(rows, key_ids_np)  # (A,)
    order = np.argsort(half, kind="stable")  # keys likely to score best first: their thresholds rise early
    by_norm, positions, half = key_ids_np[order], order.astype(np.int64), half[order]  # positions: id order
    keys_t = np.ascontiguousarray(rows[by_norm].T)  # (d, A): untransposed blocks multiply faster in OpenBLAS
    keys = np.ascontiguousarray(keys_t.T)  # (A, d)
    shortlist = empty_candidates(len(keys), 2 * k)  # a key's candidates at its position; each one's id kept
    threshold = shortlist[-1]
    block_products = np.empty(min(_BLOCK, len(keys)) ** 2, np.float32)  # reshaped per block
    parts = min(torch.get_num_threads(), _BLOCK)
    with threadpool_limits(limits=torch.get_num_threads(), user_api="blas"):  # torch's thread count rules
        starts = range(0, len(keys), _BLOCK)
        for i, j in ((i, j) for i in starts for j in starts if i <= j):
            if i < j and _expects_more(threshold[positions[j : j + _BLOCK]], threshold[positions[i : i + _BLOCK]]):
                i, j = j, i  # the block whose keys will take more of its scores gives the rows: theirs are cheaper
            block, other = slice(i, i + _BLOCK), slice(j, j + _BLOCK)
            out = block_products[: len(keys[block]) * len(keys[other])].reshape(len(keys[block]), -1)
            np.matmul(keys[block], keys_t[:, other], out=out)
            collect_block(
                out,
                positions[block],
                half[block],
                by_norm[block],
                positions[other],
                half[other],
                by_norm[other],
                i != j,
                shortlist,
                k,
                parts,
            )
    nearest = np.empty((len(keys), k), np.int32)
    top_k_of_rows(shortlist, k, nearest)
    return torch.from_numpy(nearest)


def rank_rows(rows: np.ndarray, ids: np.ndarray, key_ids: np.ndarray, half: np.ndarray, k: int) -> np.ndarray:
    """The k nearest keys ``rows[key_ids]`` (whose ``|key|^2 / 2`` are ``half``) of rows that are not keys
    themselves: ``(len(ids), k)`` int32 ids, ranked as :func:`knn_graph` says. Each row's products with the keys
    come from :func:`udig.kernels.products_with_rows`, whose product of two rows does not depend on which other
    rows it is computed with: a row has the same neighbours whichever sentence first asks for it."""
    from ..kernels import products_with_rows, top_k_of_rows  # numba loads on first use

    nearest = np.empty((len(ids), k), np.int32)
    for start in range(0, len(ids), _RANK_CHUNK):
        queries = rows[ids[start : start + _RANK_CHUNK]]
        scores = np.empty((len(queries), len(key_ids)), np.float32)
        products_with_rows(rows, key_ids, queries, scores)
        np.subtract(scores, half, out=scores)
        candidates = np.broadcast_to(key_ids.astype(np.int32), scores.shape).copy()  # each score's key id
        fill = np.full(len(queries), len(key_ids), np.int64)
        top_k_of_rows((scores, candidates, fill, None), k, nearest[start : start + _RANK_CHUNK])
    return nearest


def _finite_rows(embeddings: Tensor) -> np.ndarray:
    """The embedding matrix as float32 rows on the CPU; a clear error for NaN or infinite values."""
    rows = embeddings.detach().cpu().float().numpy()
    if not np.isfinite(rows).all():
        raise ValueError("the embedding matrix has NaN or infinite values; no neighbour graph can be built from it")
    return rows


def _half_sq_norms(rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``|row|^2 / 2`` of ``rows[ids]``, summed in float64, rounded to float32: a chunk of rows at a time, so the
    float64 squares take a few MB (new memory costs page faults: 0.2 s for the whole default vocabulary)."""
    half = np.empty(len(ids), np.float32)
    for start in range(0, len(ids), _BLOCK):
        half[start : start + _BLOCK] = 0.5 * np.square(rows[ids[start : start + _BLOCK]], dtype=np.float64).sum(1)
    return half


def _expects_more(thresholds: np.ndarray, others: np.ndarray) -> bool:
    """Whether rows with these thresholds will likely take more of a block's scores than rows with the others'
    (a lower mean: -inf for rows that have none yet)."""
    return bool(thresholds.mean() < others.mean())


def _knn_graph_on(rows: Tensor, query_ids: Tensor, key_ids: Tensor, k: int, device: torch.device) -> Tensor:
    """:func:`knn_graph`'s ranking of the rows ``query_ids`` in torch on ``device``: one product and one stable
    sort per chunk of rows, equal scores in id order."""
    keys = rows[key_ids]
    keys_t = torch.cat([keys, -0.5 * keys.square().sum(1, keepdim=True)], 1).T.contiguous().to(device)  # (d+1, A)
    queries = torch.cat([rows[query_ids], torch.ones(len(query_ids), 1)], 1)
    position = torch.full((len(rows),), -1)
    position[key_ids] = torch.arange(len(key_ids))
    nearest = torch.empty(len(query_ids), k, dtype=torch.long)  # positions among the keys
    for start in range(0, len(query_ids), _QUERY_CHUNK):
        stop = min(start + _QUERY_CHUNK, len(query_ids))
        scores = queries[start:stop].to(device) @ keys_t  # (c, A)
        self_col = position[query_ids[start:stop]]
        has_self = (self_col >= 0).nonzero().squeeze(1)
        scores[has_self.to(device), self_col[has_self].to(device)] = -torch.inf
        nearest[start:stop] = scores.sort(dim=1, descending=True, stable=True).indices[:, :k].cpu()
    return key_ids[nearest].to(torch.int32)


class NeighbourGraph:
    """One (k, candidate set)'s graph ``(V, k)``: every key's row, and the rows of other tokens once asked for
    (:meth:`rows`); a row not asked for reads -1. Thread-safe: a row is ranked once, under a lock."""

    def __init__(self, embeddings: Tensor, k: int, allowed: Tensor, key_neighbours: Tensor) -> None:
        self.embeddings, self.k, self.allowed = embeddings, k, allowed
        self.table = torch.from_numpy(np.empty((len(allowed), k), np.int32))  # not zeroed first: it is all written
        self.table[allowed] = key_neighbours
        self.table[~allowed] = -1
        self.ranked = allowed.clone()
        self._lock = threading.Lock()
        self._keys: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # rows, key ids, half norms

    @classmethod
    def build(
        cls, embeddings: Tensor, k: int, allowed: Tensor, device: torch.device | str | None = None
    ) -> NeighbourGraph:
        """The keys' rows, built (:func:`key_graph`)."""
        return cls(embeddings, k, allowed, key_graph(embeddings, k, allowed, device))

    def rows(self, ids: RowIds = None, device: torch.device | str | None = None) -> Tensor:
        """The graph ``(V, k)`` with at least the rows ``ids`` ranked (None: every row); those not yet ranked are
        ranked now (:func:`rank_rows`; on ``device`` when that is a GPU) and kept."""
        wanted = torch.arange(len(self.table)) if ids is None else torch.as_tensor(ids, dtype=torch.long).reshape(-1)
        wanted = wanted.cpu()  # a sentence's ids may sit on the model's device
        if wanted.numel() and not 0 <= int(wanted.min()) <= int(wanted.max()) < len(self.table):
            raise ValueError(f"graph rows asked for outside the {len(self.table)} rows of the embedding matrix")
        with self._lock:
            missing = wanted[~self.ranked[wanted]].unique()
            if len(missing):
                self.table[missing] = self._rank(missing, device)
                self.ranked[missing] = True
        return self.table

    def _rank(self, ids: Tensor, device: torch.device | str | None) -> Tensor:
        if self._keys is None:  # once per graph: a sentence's few rows then take milliseconds
            rows = _finite_rows(self.embeddings)
            key_ids = self.allowed.nonzero().squeeze(1).numpy()
            self._keys = rows, key_ids, _half_sq_norms(rows, key_ids)
        rows, key_ids, half = self._keys
        if device is not None and torch.device(device).type != "cpu":
            return _knn_graph_on(torch.from_numpy(rows), ids, torch.from_numpy(key_ids), self.k, torch.device(device))
        return torch.from_numpy(rank_rows(rows, ids.numpy(), key_ids, half, self.k))


class GraphStore:
    """The KNN graphs of one embedding matrix, by (k, candidate set): in memory, on disk, or built.

    ``identity`` gives the matrix's hash (the disk cache key), ``candidate_mask`` a candidate set's rows
    (it refuses unknown candidate sets); ``cache_dir`` None uses huggingface_hub's assets folder."""

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
        self._graphs: dict[tuple[int, str], NeighbourGraph] = {}

    def built(self) -> list[tuple[int, str]]:
        """The (k, candidates) of every graph held in memory, in the order they were made."""
        return list(self._graphs)

    def get(self, k: int, candidates: str, device: torch.device | str | None = None, rows: RowIds = None) -> Tensor:
        """The graph ``(V, k)`` on the CPU with at least ``rows`` ranked (None: every row; ``()``: the keys'
        only): its keys' rows from memory, else from a verified disk cache, else built (on ``device`` when that
        is a GPU: the model's) and cached; then the rows asked for (:meth:`NeighbourGraph.rows`)."""
        return self.neighbours(k, candidates, device).rows(rows, device)

    def neighbours(self, k: int, candidates: str, device: torch.device | str | None = None) -> NeighbourGraph:
        """The :class:`NeighbourGraph` of ``k`` and ``candidates``, its keys' rows loaded or built once."""
        allowed = self.candidate_mask(candidates)  # validates the set before any work
        key = (k, candidates)
        with self._lock:
            build_lock = self._build_locks.setdefault(key, threading.Lock())
        with build_lock:
            if key not in self._graphs:
                path = self.path(k, candidates)
                keys = self._load(path, k, candidates)
                if keys is None:
                    keys = key_graph(self.embeddings, k, allowed, device)
                    self._save(path, keys, k, candidates)
                self._graphs[key] = NeighbourGraph(self.embeddings, k, allowed, keys)
            return self._graphs[key]

    def path(self, k: int, candidates: str) -> Path:
        """Where the graph of ``k`` and ``candidates`` is cached: named by k, candidate set, its rows and format."""
        if self.cache_dir is not None:
            folder = Path(self.cache_dir) / self.identity()
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = cached_assets_path(library_name="udig", namespace="vocab", subfolder=self.identity())
        return folder / f"knn-k{k}-{candidates}-{self._rows_digest(candidates)[:12]}-v{_GRAPH_FORMAT}.safetensors"

    def _rows_digest(self, candidates: str) -> str:
        """A hash of the set's rows: a graph built under another real-word set has another name, never loads."""
        return hashlib.blake2b(self.candidate_mask(candidates).numpy().tobytes(), digest_size=16).hexdigest()

    def _metadata(self, graph: Tensor, k: int, candidates: str) -> dict[str, str]:
        return {
            "identity": self.identity(),
            "k": str(k),
            "candidates": candidates,
            "rows": self._rows_digest(candidates),
            "format": _GRAPH_FORMAT,
            "checksum": hashlib.blake2b(graph.numpy().tobytes(), digest_size=16).hexdigest(),
        }

    def _load(self, path: Path, k: int, candidates: str) -> Tensor | None:
        """The cached keys' rows ``(A, k)`` if every check passes; None (and a log line) otherwise."""
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
            tuple(graph.shape) == (int(self.candidate_mask(candidates).sum()), k)
            and graph.dtype == torch.int32
            and metadata == self._metadata(graph, k, candidates)
            and int(graph.min()) >= 0
            and int(graph.max()) < len(self.embeddings)
        )
        if not valid:
            logger.warning(
                "ignoring vocabulary cache %s that does not match this model or candidate set; rebuilding", path
            )
            return None
        return graph

    def _save(self, path: Path, graph: Tensor, k: int, candidates: str) -> None:
        """Write to a temporary file beside the target, then rename: readers never see half a file."""
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            save_file({"graph": graph}, str(tmp), metadata=self._metadata(graph, k, candidates))
            os.replace(tmp, path)
        except OSError as error:  # a read-only or full disk costs a rebuild next time, nothing else
            logger.warning("could not cache the vocabulary graph at %s (%s)", path, error)
            tmp.unlink(missing_ok=True)
