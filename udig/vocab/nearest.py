"""Nearest-word search: the candidate rows nearest to points along segments (UDIG), and to any points (WAE).

A row c ranks by ``|c|^2 - 2 c.p`` (its squared distance to p, less ``|p|^2``), which along a segment
``p = s + alpha (e - s)`` is linear in alpha: ``a_c + alpha b_c``. So one product of the candidate rows with
the segment's two ends gives every rank at every alpha, and a row can be among the k nearest somewhere on
``[min alpha, max alpha]`` only if its lower end value is at most the k-th smallest upper end value (the k rows
with the smallest upper ends are at least that close everywhere). Only those rows are ranked point by point;
the result is exact.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from torch import Tensor

from . import int8
from .int8 import Int8Rows

_POINT_CHUNK = 2048  # points per product in nearest_distances: memory stays one chunk x V
_SCREEN_HELD = threading.Event()  # set: searches skip the int8 screen (hold_int8_screen)


def hold_int8_screen(held: bool = True) -> None:
    """Make UDIG's searches in this process skip the int8 screen (``held``), or use it again. The screen only
    sets aside rows that cannot be among the nearest, so the words found are the same either way; a server
    holds it while the screen's kernel compiles in another process (:meth:`udig.app.Demo.warm_up`), so that a
    first request neither waits for that compilation nor compiles the kernel beside it."""
    if held:
        _SCREEN_HELD.set()
    else:
        _SCREEN_HELD.clear()


class CandidateRows:
    """One candidate set's rows on one device: the rows ``(A, d)``, their squared norms ``(A,)`` and their
    vocabulary ids (None: every row, in order, so positions are ids), with the searches over them.
    For the set "all" on the CPU the rows are the embedding matrix itself, not a copy."""

    def __init__(self, rows: Tensor, sq_norms: Tensor, ids: Tensor | None) -> None:
        self.rows, self.sq_norms, self.ids = rows, sq_norms, ids
        self.finite = bool(torch.isfinite(sq_norms).all())  # finite squared norms: finite rows
        self._lock = threading.Lock()
        self._int8: dict[str, Int8Rows] = {}

    def __len__(self) -> int:
        return len(self.sq_norms)

    def nearest_on_segments(
        self, starts: Tensor, ends: Tensor, alphas: Tensor, k: int, screen: bool | None = None
    ) -> Tensor:
        """The k nearest rows to each point ``start + alpha (end - start)``: ``(T, m, k)`` vocabulary ids,
        nearest first, equal distances in id order, on the rows' device. ``screen``: whether the int8 screen
        may set rows aside first (the same result); None: unless :func:`hold_int8_screen` holds it.

        Equal segments (a word that recurs) are searched once, and equal start rows (every token's baseline
        word) share one row of products. On the CPU the product and the ranking are compiled passes
        (:mod:`udig.kernels`), and an exact int8 product first sets aside the rows that cannot qualify
        (:meth:`_rows_to_rank`: the same ids, ties included); elsewhere (a GPU) it is one tensor product and
        :func:`nearest_by_products`, the same ranking in tensor operations.
        """
        if k > len(self):
            raise ValueError(f"nbrs={k} exceeds the {len(self)} candidate rows")
        starts, ends, alphas = (x.detach().to("cpu", torch.float32).numpy() for x in (starts, ends, alphas))
        if not (np.isfinite(starts).all() and np.isfinite(ends).all() and np.isfinite(alphas).all() and self.finite):
            raise ValueError("NaN or infinite values in the embeddings or the segments; no nearest words can be ranked")
        segment_index, segment_of = _distinct_rows(np.concatenate([starts, ends], 1))
        starts, ends = starts[segment_index], ends[segment_index]
        start_index, which = _distinct_rows(starts)
        queries = np.concatenate([starts[start_index], ends])  # (U + S, d)
        if _compiled_search(self.rows.device):
            from ..kernels import nearest_on_segments, products_with_rows  # numba loads on first use

            key_sq = self.sq_norms.numpy()
            screen = not _SCREEN_HELD.is_set() if screen is None else screen
            listed = self._rows_to_rank(queries, which, alphas, k, screen)
            products = np.empty((len(queries), len(listed)), np.float32)
            products_with_rows(self.rows.numpy(), listed, queries, products)
            nearest = np.empty((len(ends), len(alphas), k), np.int64)
            nearest_on_segments(products, which, key_sq[listed], alphas, k, nearest)
            nearest = torch.from_numpy(listed[nearest[segment_of]])  # (T, m, k)
        else:
            queries, which, alphas = (torch.from_numpy(x).to(self.rows.device) for x in (queries, which, alphas))
            nearest = nearest_by_products(queries @ self.rows.T, which, self.sq_norms, alphas, k)[
                torch.from_numpy(segment_of).to(self.rows.device)
            ]
        return nearest if self.ids is None else self.ids[nearest]

    def prepare(self) -> None:
        """Code the rows for the int8 screen now (on the CPU, where it has an exact int8 product) rather than
        in the first search."""
        if _compiled_search(self.rows.device):
            product = int8.int8_product(self.rows.shape[1])
            if product != "none":
                self._int8_rows(product)

    def _rows_to_rank(
        self, queries: np.ndarray, which: np.ndarray, alphas: np.ndarray, k: int, screen: bool
    ) -> np.ndarray:
        """The rows (positions, ascending) whose exact products the ranking needs: those an int8 screen keeps
        (:func:`udig.kernels.screen_segments`): every row the exact ranking could pick and some more; every row
        without the ``screen``, or where this CPU has no exact int8 product (:func:`udig.vocab.int8.int8_product`).
        The share kept and the time saved are in ``benchmarks/engine_results.md``."""
        key_sq = self.sq_norms.numpy()
        product = int8.int8_product(queries.shape[1])
        if not (len(which) and screen) or product == "none":
            return np.arange(len(key_sq))
        from ..kernels import screen_segments

        rows = self._int8_rows(product)
        products, query_terms = rows.products(queries)  # (U + S, A) exact integers
        keep = np.empty((len(which), len(key_sq)), np.bool_)
        screen_segments(products, query_terms, rows.terms, rows.dims, which, key_sq, alphas, k, keep)
        return np.flatnonzero(keep.any(0))

    def _int8_rows(self, product: str) -> Int8Rows:
        """The rows coded for ``product``: built once per product, a quarter of the float32 rows' memory."""
        with self._lock:
            if product not in self._int8:
                self._int8[product] = Int8Rows(self.rows.numpy(), product)
            return self._int8[product]


def nearest_by_products(products: Tensor, which: Tensor, key_sq: Tensor, alphas: Tensor, k: int) -> Tensor:
    """:meth:`CandidateRows.nearest_on_segments`'s ranking in tensor operations, on the products' device:
    ``(T, m, k)`` positions among the candidate rows, nearest first.

    ``products (U + T, A)``: the U distinct start rows' and then the T end rows' products with the candidate
    rows; ``which (T,)``: each token's start row; ``key_sq (A,)``: the candidates' squared norms."""
    n_unique = len(products) - len(which)
    at_start = products[:n_unique][which]  # (T, A)
    offset = key_sq - 2 * at_start  # a_c
    slope = 2 * (at_start - products[n_unique:])  # b_c
    ends_low, ends_high = offset + float(alphas.min()) * slope, offset + float(alphas.max()) * slope
    lower, upper = torch.minimum(ends_low, ends_high), torch.maximum(ends_low, ends_high)  # (T, A)
    kth_upper = upper.topk(k, dim=1, largest=False, sorted=False).values.amax(1, keepdim=True)  # (T, 1)
    n_kept = int((lower <= kth_upper).sum(1).max())
    kept = lower.topk(n_kept, dim=1, largest=False).indices  # (T, n): every row that may qualify
    rank_key = torch.baddbmm(
        offset.gather(1, kept)[:, None, :],
        alphas[None, :, None].expand(len(kept), -1, 1),
        slope.gather(1, kept)[:, None, :],
    )  # (T, m, n)
    nearest = kept.gather(1, rank_key.topk(k, dim=2, largest=False, sorted=True).indices.flatten(1))
    return nearest.view(len(kept), len(alphas), k)


def nearest_distances(rows: Tensor, sq_norms: Tensor, masks: dict[str, Tensor], points: Tensor) -> dict[str, Tensor]:
    """Euclidean distance from each point ``(P, d)`` to its nearest row ``rows (V, d)`` allowed by each mask
    ``(V,)``: ``(P,)`` per mask. One product per chunk of points serves every mask (a mask only hides columns)."""
    points = points.detach().float().cpu()
    out = {name: torch.empty(len(points)) for name in masks}
    for start in range(0, len(points), _POINT_CHUNK):
        chunk = points[start : start + _POINT_CHUNK]  # (c, d)
        sq = torch.addmm(sq_norms.expand(len(chunk), -1), chunk, rows.T, alpha=-2.0)  # (c, V)
        chunk_sq = (chunk * chunk).sum(1)
        for name, allowed in masks.items():
            nearest = sq.amin(1) if bool(allowed.all()) else sq[:, allowed].amin(1)
            out[name][start : start + len(chunk)] = (nearest + chunk_sq).clamp(min=0).sqrt()
    return out


def _compiled_search(device: torch.device) -> bool:
    """UDIG's search runs the compiled CPU passes on the CPU, tensor operations elsewhere (a GPU)."""
    return device.type == "cpu"


def _distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each distinct row's first position and every row's distinct index, comparing the rows' bytes (cheaper
    than ``torch.unique(dim=0)`` for a sentence's few rows; see ``benchmarks/engine_results.md``)."""
    as_bytes = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1] * rows.itemsize))).ravel()
    _, first, inverse = np.unique(as_bytes, return_index=True, return_inverse=True)
    return first, inverse.ravel()
