"""The vocabulary index: one model's word-embedding matrix and every search over it, shared and built lazily."""

from __future__ import annotations

import hashlib
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from . import nearest
from .chains import ChainMemory
from .graph import GraphStore, RowIds
from .nearest import CandidateRows
from .words import CANDIDATE_SETS, DEFAULT_LANGUAGE, MIN_ZIPF, real_words, vocabulary_of


class VocabIndex:
    """Shared, lazily built searches over one model's word-embedding matrix.

    Parameters are stored as given; nothing is computed until first use. Derived state ends in ``_``.
    ``language`` (a wordfreq code: "en", "fr", ...) and ``min_zipf`` set which real words a reader
    knows (:func:`udig.vocab.words.frequent_words`); ``language=None`` skips that filter. The parts:
    candidate rows per candidate set (:mod:`udig.vocab.words`, :mod:`udig.vocab.nearest`), DIG's graphs (``graphs``,
    :mod:`udig.vocab.graph`) and remembered anchor chains (``chains``, :mod:`udig.vocab.chains`).
    """

    def __init__(
        self,
        embeddings: Tensor,
        tokens: list[str | None],
        special_ids: Iterable[int],
        cache_dir: str | Path | None = None,
        surfaces: list[str] | None = None,
        language: str | None = DEFAULT_LANGUAGE,
        min_zipf: float = MIN_ZIPF,
    ) -> None:
        self.embeddings = embeddings.detach().float().cpu()
        self.tokens = [token or "" for token in tokens]  # ids past the tokenizer's vocabulary have no name
        self.surfaces = self.tokens if surfaces is None else surfaces  # how each row reads as text
        self.special_ids = sorted(set(special_ids))
        self.cache_dir = cache_dir
        self.language = language
        self.min_zipf = min_zipf
        self.graphs = GraphStore(self.embeddings, lambda: self.identity_, self.candidate_mask, cache_dir)
        self.chains = ChainMemory()
        self._lock = threading.RLock()  # the cheap lazy attributes below
        self._identity: str | None = None
        self._word_mask: Tensor | None = None
        self._sq_norms: Tensor | None = None
        self._candidate_rows: dict[tuple[str, torch.device], CandidateRows] = {}

    @property
    def identity_(self) -> str:
        """A hash of the embedding matrix: the disk cache key, the same for the same weights anywhere."""
        with self._lock:
            if self._identity is None:
                digest = hashlib.blake2b(digest_size=16)
                digest.update(str(tuple(self.embeddings.shape)).encode())
                digest.update(self.embeddings.numpy().tobytes())
                self._identity = digest.hexdigest()
            return self._identity

    @property
    def word_mask_(self) -> Tensor:
        """Rows that are real, trained words: not special, not under-trained, whole words of letters, known."""
        with self._lock:
            if self._word_mask is None:
                self._word_mask = real_words(
                    self.embeddings, self.tokens, self.surfaces, self.special_ids, self.language, self.min_zipf
                )
            return self._word_mask

    @property
    def sq_norms_(self) -> Tensor:
        with self._lock:
            if self._sq_norms is None:
                self._sq_norms = (self.embeddings * self.embeddings).sum(1)
            return self._sq_norms

    def candidate_mask(self, candidates: str) -> Tensor:
        """Rows a path may pass through under a candidate set: every row, or real words only."""
        if candidates not in CANDIDATE_SETS:
            raise ValueError(f"unknown candidate set {candidates!r}; choose one of {CANDIDATE_SETS}")
        if candidates == "all":
            return torch.ones(len(self.embeddings), dtype=torch.bool)
        return self.word_mask_

    def candidate_rows(self, candidates: str, device: torch.device | str | None = None) -> CandidateRows:
        """A candidate set's rows on ``device`` (the CPU by default), built once per set and device."""
        allowed = self.candidate_mask(candidates)
        device = torch.device("cpu" if device is None else device)
        with self._lock:
            if (candidates, device) not in self._candidate_rows:
                ids = None if candidates == "all" else allowed.nonzero().squeeze(1)
                rows = self.embeddings.contiguous() if ids is None else self.embeddings[ids]
                sq_norms = self.sq_norms_ if ids is None else self.sq_norms_[ids]
                self._candidate_rows[candidates, device] = CandidateRows(
                    rows.to(device), sq_norms.to(device), None if ids is None else ids.to(device)
                )
            return self._candidate_rows[candidates, device]

    def nearest_on_segments(
        self,
        starts: Tensor,
        ends: Tensor,
        alphas: Tensor,
        k: int,
        candidates: str,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """The k nearest rows of the candidate set ``candidates`` to each point ``start + alpha (end - start)``:
        ``(T, m, k)`` ids, nearest first, on ``device`` (the model's; the CPU by default). See
        :meth:`udig.vocab.nearest.CandidateRows.nearest_on_segments`."""
        return self.candidate_rows(candidates, device).nearest_on_segments(starts, ends, alphas, k)

    def nearest_distances(self, points: Tensor, candidate_sets: Sequence[str] = ("all",)) -> dict[str, Tensor]:
        """Euclidean distance from each point ``(P, d)`` to its nearest row under each candidate set: ``(P,)`` each.
        The path view and the word-approximation error (:mod:`udig.metrics`) both measure with this."""
        masks = {candidates: self.candidate_mask(candidates) for candidates in candidate_sets}
        every_row = self.candidate_rows("all")
        return nearest.nearest_distances(every_row.rows, every_row.sq_norms, masks, points)

    def prepare(
        self,
        candidate_sets: Sequence[str] = ("words",),
        graph_k: int | None = None,
        device: torch.device | str | None = None,
        screen: bool = True,
    ) -> dict[str, float]:
        """Do now what the first request under each candidate set would: the real words, the rows UDIG searches
        (with ``screen``, their int8 codes for the search's screen) and, with ``graph_k``, DIG's graph (built, or
        loaded from the disk cache). Returns the seconds each stage took: "words", "search", "graph". A server
        can call this in the background at start (with :func:`udig.vocab.warm_up` for the kernels); a request
        that needs a part still being made waits for it (each part has its own lock)."""
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        for candidates in candidate_sets:
            self.candidate_mask(candidates)  # the real words for "words" (an unknown set fails here)
        seconds["words"] = time.perf_counter() - start
        start = time.perf_counter()
        for candidates in candidate_sets:
            rows = self.candidate_rows(candidates, device)
            if screen:
                rows.prepare()
        seconds["search"] = time.perf_counter() - start
        if graph_k is not None:
            start = time.perf_counter()
            for candidates in candidate_sets:
                self.graph(graph_k, candidates, device, rows=())
            seconds["graph"] = time.perf_counter() - start
        return seconds

    def graph(self, k: int, candidates: str, device: torch.device | str | None = None, rows: RowIds = None) -> Tensor:
        """DIG's KNN graph ``(V, k)`` on the CPU with at least ``rows`` ranked (None: every row; ``()``: the
        candidate rows' only) (:meth:`udig.vocab.graph.GraphStore.get`)."""
        return self.graphs.get(k, candidates, device, rows)

    def anchor_chains(
        self, key: Hashable, word_ids: Tensor, reference_ids: Tensor, compute: Callable[[Tensor, Tensor], Tensor]
    ) -> Tensor:
        """Each token's anchor chain ``(T, m + 1)``, remembered or computed (:class:`udig.vocab.chains.ChainMemory`)."""
        return self.chains.chains(key, word_ids, reference_ids, compute)

    def forget_chains(self) -> None:
        """Drop every remembered chain (a benchmark timing the chains' construction starts each call so)."""
        self.chains.forget()


_shared: dict[tuple[int, str | None], tuple[weakref.ref, VocabIndex]] = {}
_shared_lock = threading.Lock()


def vocab_index_for(
    model: torch.nn.Module, tokenizer, cache_dir: str | Path | None = None, language: str | None = DEFAULT_LANGUAGE
) -> VocabIndex:
    """The one index of a model's input embeddings and a word language, shared by every Explainer of that model."""
    weight = model.get_input_embeddings().weight
    key = (id(weight), language)
    with _shared_lock:
        entry = _shared.get(key)
        if entry is None or entry[0]() is not weight:
            tokens, surfaces = vocabulary_of(tokenizer, weight.shape[0])
            index = VocabIndex(weight, tokens, tokenizer.all_special_ids, cache_dir, surfaces, language)
            _shared[key] = (weakref.ref(weight, lambda _: _shared.pop(key, None)), index)
            entry = _shared[key]
        return entry[1]
