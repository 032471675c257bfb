"""The vocabulary index: the word-embedding matrix and every search over it.

DIG and UDIG choose their anchors among vocabulary rows, so all of them share one index per model:
which rows may be anchors (the candidate rule), nearest-row queries along UDIG's reference line, and
DIG's K-nearest-neighbour graph. The graph is the expensive part (a V x V distance pass); it is built
lazily on first use, under a per-graph lock so two threads never build it twice, and cached on disk under
``huggingface_hub.cached_assets_path`` keyed by a hash of the embedding matrix and one of the candidate
rows (so a graph built under another word rule is never used). Cache files are written atomically and
verified on load; anything that does not verify is rebuilt, never trusted.

The "words" rule keeps rows that are trained and that a reader recognises as words. Under-trained rows
are found from the matrix itself, after Land & Bartolo 2024 ("Fishing for Magikarp"): rows known to be
unused (``[unusedN]``) define a direction; every row's cosine similarity to it (after centring) splits into
two clusters, and Otsu's threshold separates them. That cut leaves a tail of barely-trained rows just
outside the cluster (a Hebrew letter, "1726", "##ם" in an English vocabulary), and the middle of a path
to [MASK] runs right past them; so a word must also read as one: a whole word of letters in the
vocabulary's main script (see :func:`lexical_words`), and one a reader knows: frequent enough in the
vocabulary's language, by ``wordfreq``'s tables (see :func:`frequent_words`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import unicodedata
import warnings
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import cached_assets_path
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from threadpoolctl import threadpool_limits
from torch import Tensor

logger = logging.getLogger(__name__)

CANDIDATE_RULES = ("all", "words")
DEFAULT_LANGUAGE = "en"
# Zipf 3.0 = once per million words, chosen on MiniLM: every rare word found on its paths is below it
# (freyja 2.02, acheron 2.08, abbess 2.50, sofie 2.54, balthazar 2.58) and 20,152 of its 21,748 real
# words stay (DIG's graph needs 501). At 3.5 only 14,124 stay, common words (politely, geese) go too,
# and DIG's paths jump straight to function words (the, of, and). README: "Real-word anchors".
MIN_ZIPF = 3.0
# wordfreq counts a lone letter wherever text has one (initials, "plan b"): every English letter scores
# Zipf 4.5-5.9, so frequency cannot tell a letter from a one-letter word; these are the words.
ONE_LETTER_WORDS: dict[str, frozenset[str]] = {"en": frozenset({"a", "i"})}
UNUSED_TOKEN = re.compile(r"^(\[unused\d+\]|<unused\d+>|madeupword\d+)$")
_GRAPH_FORMAT = "2"  # 2: equal distances in id order
_QUERY_CHUNK = 2048
# Anchor chains remembered per index, each its own int32 copy (a view would keep its whole batch alive): at
# m = 30 about 0.45 KB per chain with its key and the dictionary's share (tracemalloc), so 100,000 chains
# (every word of MiniLM's vocabulary three times over) stay under 50 MB.
MAX_CACHED_CHAINS = 100_000


_INT8_PRODUCT: str | None = None  # the CPU search's int8 product: "int_mm", "fbgemm" or "none"; found on first use
# fbgemm's int8 product on AVX2 adds pairs of u8 x s8 products in int16: queries coded in [-63, 63] and
# shifted by 64 (1..127) keep every pair within 2 x 127 x 127 < 2^15. Two more columns holding -64 and 191
# make its per-tensor activation range 255 wide: scale 1, zero point 64, so it codes our codes exactly.
# Its float32 output holds every sum exactly up to 2^24: 2,000 x 63 x 127 < 2^24.
FBGEMM_QUERY_LEVELS, FBGEMM_MAX_DIMS = 63, 2000
_FBGEMM_RANGE = (-64.0, 191.0)
_ENGINE_LOCK = threading.Lock()


def _int8_product(dims: int) -> str:
    """Which exact int8 product screens UDIG's search over rows of ``dims`` dimensions on this CPU.
    "int_mm": torch's int8 product (oneDNN) where the CPU has int8 dot-product instructions (AVX512-VNNI,
    AVX-VNNI, AMX): it reads a quarter of float32's bytes at several times its multiply rate. "fbgemm":
    elsewhere, torch's fbgemm engine (AVX2 kernels; torch's int8 product has only a slow reference path
    there), if a product of extreme codes comes out exact (:func:`_fbgemm_is_exact`) and the rows have at
    most :data:`FBGEMM_MAX_DIMS` dimensions. "none": float32 products for every row."""
    global _INT8_PRODUCT
    if _INT8_PRODUCT is None:
        from llvmlite.binding import get_host_cpu_features  # numba's compiler, installed with it

        features = get_host_cpu_features()
        if hasattr(torch, "_int_mm") and any(
            features.get(name, False) for name in ("avx512vnni", "avxvnni", "amx-int8")
        ):
            _INT8_PRODUCT = "int_mm"
        else:
            _INT8_PRODUCT = "fbgemm" if _fbgemm_is_exact() else "none"
    return "none" if _INT8_PRODUCT == "fbgemm" and dims > FBGEMM_MAX_DIMS else _INT8_PRODUCT


def int8_codes(vectors: np.ndarray, levels: int = 127) -> tuple[np.ndarray, np.ndarray]:
    """Each vector rounded to int8 steps of its largest magnitude / ``levels``: the codes ``(n, d)`` and
    ``(3, n)``: each vector's step, L1 norm and L2 norm in float64, what :func:`udig.kernels.screen_segments`
    needs to bound an int8 product's error. A zero vector gets step 1 (its codes are exact)."""
    exact = vectors.astype(np.float64)
    magnitude = np.abs(exact)
    step = magnitude.max(1) / levels
    step[step == 0] = 1.0
    terms = np.stack([step, magnitude.sum(1), np.sqrt((exact * exact).sum(1))])  # (3, n)
    return np.rint(exact / step[:, None]).astype(np.int8), terms


class Int8Rows:
    """Candidate rows as int8 codes, ready for one exact int8 product (:func:`_int8_product`): ``products``
    codes the queries and returns their exact products with every row and the queries' terms."""

    def __init__(self, rows: np.ndarray, product: str) -> None:
        codes, self.terms = int8_codes(rows)  # (A, d), (3, A)
        self.dims, self.product = codes.shape[1], product
        if product == "int_mm":
            self._rows = torch.from_numpy(codes).T  # (d, A)
        elif product == "fbgemm":
            self._rows = _fbgemm_pack(codes)
        else:
            raise ValueError(f"unknown int8 product {product!r}")

    def products(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(Q, A)`` exact products of the queries' codes with the rows' codes (int32, or integers in float32
        from fbgemm), and the queries' ``(3, Q)`` terms."""
        if self.product == "int_mm":
            codes, terms = int8_codes(queries)
            return torch._int_mm(torch.from_numpy(codes), self._rows).numpy(), terms
        codes, terms = int8_codes(queries, FBGEMM_QUERY_LEVELS)
        return _fbgemm_products(self._rows, codes), terms


def _fbgemm_pack(codes: np.ndarray):
    """Int8 rows ``(A, d)`` packed for fbgemm, with two zero columns for :data:`_FBGEMM_RANGE`'s; each row's
    scale 1, so its codes are kept as they are. torch deprecates quantized tensors (it warns): the pack is
    made once per rule, and :func:`_int8_product` stops using it if the product is no longer exact."""
    padded = np.zeros((len(codes), codes.shape[1] + 2), np.float32)
    padded[:, :-2] = codes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        weight = torch.quantize_per_channel(
            torch.from_numpy(padded),
            torch.ones(len(codes), dtype=torch.float64),
            torch.zeros(len(codes), dtype=torch.long),
            0,
            torch.qint8,
        )
        with _ENGINE_LOCK:  # the engine is process-wide: set for the pack only, and always put back
            previous = torch.backends.quantized.engine
            try:
                torch.backends.quantized.engine = "fbgemm"
                return torch.ops.quantized.linear_prepack(weight, None)
            finally:
                torch.backends.quantized.engine = previous


def _fbgemm_products(packed, codes: np.ndarray) -> np.ndarray:
    """``(Q, A)``: fbgemm's dynamically quantized product of query codes in ``[-63, 63]`` with the packed rows:
    integers in float32, exact for rows of at most :data:`FBGEMM_MAX_DIMS` dimensions."""
    queries = np.empty((len(codes), codes.shape[1] + 2), np.float32)
    queries[:, :-2] = codes
    queries[:, -2:] = _FBGEMM_RANGE
    return torch.ops.quantized.linear_dynamic(torch.from_numpy(queries), packed, False).numpy()


def _fbgemm_is_exact() -> bool:
    """Whether fbgemm's product of extreme and random codes equals the integer one: the screen's bounds
    assume exact products, and this path rests on how fbgemm quantizes (see :data:`_FBGEMM_RANGE`)."""
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        return False
    generator = np.random.default_rng(0)
    rows = generator.integers(-127, 128, (64, 384)).astype(np.int8)
    queries = generator.integers(-FBGEMM_QUERY_LEVELS, FBGEMM_QUERY_LEVELS + 1, (6, 384)).astype(np.int8)
    rows[:2], queries[:2] = [[127], [-127]], [[FBGEMM_QUERY_LEVELS], [-FBGEMM_QUERY_LEVELS]]
    try:
        products = _fbgemm_products(_fbgemm_pack(rows), queries)
    except (RuntimeError, AttributeError, NotImplementedError) as error:
        logger.info("fbgemm's int8 product is unavailable (%s); UDIG's search uses float32 products only", error)
        return False
    return np.array_equal(products, queries.astype(np.int64) @ rows.astype(np.int64).T)


def otsu_threshold(values: Tensor, bins: int = 256) -> float:
    """The cut that maximises the between-class variance of a 1-D sample (Otsu 1979)."""
    low, high = float(values.min()), float(values.max())
    hist = torch.histc(values.double(), bins=bins, min=low, max=high)
    centres = torch.linspace(low, high, bins + 1, dtype=torch.float64)[:-1] + (high - low) / (2 * bins)
    weight_low = hist.cumsum(0)
    weight_high = hist.sum() - weight_low
    mass_low = (hist * centres).cumsum(0)
    mean_low = mass_low / weight_low.clamp(min=1)
    mean_high = (mass_low[-1] - mass_low) / weight_high.clamp(min=1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    cut = int(between.argmax())
    return float(centres[cut] + (high - low) / (2 * bins))


def undertrained_rows(embeddings: Tensor, unused_ids: Tensor) -> Tensor:
    """Rows that sit with the known-unused ones: a boolean mask ``(V,)``; all False without unused rows."""
    if len(unused_ids) == 0:
        return torch.zeros(len(embeddings), dtype=torch.bool)
    centred = embeddings - embeddings.mean(0)
    direction = centred[unused_ids].mean(0)
    similarity = centred @ direction / (centred.norm(dim=1) * direction.norm()).clamp(min=1e-12)
    mask = similarity >= otsu_threshold(similarity)
    mask[unused_ids] = True
    return mask


def _script(character: str) -> str:
    """The Unicode script a letter belongs to, as the first word of its name (LATIN, CJK, HEBREW, ...)."""
    return unicodedata.name(character, "?").split(" ")[0]


def lexical_words(surfaces: list[str]) -> Tensor:
    """Rows whose surface form is a whole word of letters in the vocabulary's main script: ``(V,)`` bool.

    Sub-word continuations (WordPiece's ``##ing``), numbers, punctuation and letters of scripts the
    vocabulary barely covers are not words a reader recognises on a path. The main script is the one
    most letters of whole-word entries belong to, so the rule follows the vocabulary, not a hand list.
    """
    alphabetic = [surface.isalpha() for surface in surfaces]
    letters = Counter(_script(ch) for surface, ok in zip(surfaces, alphabetic) if ok for ch in surface)
    if not letters:
        return torch.zeros(len(surfaces), dtype=torch.bool)
    main = letters.most_common(1)[0][0]
    return torch.tensor([ok and all(_script(ch) == main for ch in s) for s, ok in zip(surfaces, alphabetic)])


def frequent_words(surfaces: list[str], language: str, min_zipf: float = MIN_ZIPF) -> Tensor | None:
    """Rows whose surface form a reader of ``language`` knows: ``(V,)`` bool, None without a word list.

    A word is known when its Zipf frequency (log10 of uses per billion words, in ``wordfreq``'s blend
    of subtitles, books, news, Wikipedia and the web) is at least ``min_zipf``: rare names and
    archaisms are whole words of letters, yet read as noise on a path. wordfreq folds some characters
    (``ß`` scores as "ss") and counts lone letters, so a single character is a word only when it is in
    the language's :data:`ONE_LETTER_WORDS` (none for unlisted languages). None when wordfreq has no
    table for ``language`` or cannot tokenize it here (Chinese, Japanese and Korean need jieba or MeCab).
    On MiniLM's 21,748 whole words: 0.25 s of lookups, plus 0.3-0.5 s to import wordfreq and load its
    English table once per process; :class:`VocabIndex` keeps the result.
    """
    import wordfreq  # its tables load on first use, not when udig is imported

    if language not in wordfreq.available_languages():
        return None
    one_letter = ONE_LETTER_WORDS.get(language, frozenset())
    try:
        return torch.tensor(
            [s in one_letter if len(s) == 1 else wordfreq.zipf_frequency(s, language) >= min_zipf for s in surfaces]
        )
    except ImportError:  # an optional tokenizer of wordfreq's
        return None


def knn_graph(embeddings: Tensor, k: int, allowed: Tensor, device: torch.device | str | None = None) -> Tensor:
    """For every row, the ids of its k nearest allowed rows by Euclidean distance, itself excluded.

    ``(V, k)`` int32, nearest first, equal distances in id order. Ranking a row's keys by
    ``|e - key|^2`` is ranking them by ``e . key - |key|^2 / 2`` (largest first), so appending
    ``-|key|^2 / 2`` to every key and 1 to every query turns each chunk of rows into one plain matrix
    product. The product goes through numpy's OpenBLAS, not torch's MKL: on AMD CPUs MKL takes a
    generic path and ran this at 105-110 GFLOP/s on our 2-core machine against OpenBLAS's 185. Chunks
    of query rows reuse one ``chunk x A`` buffer, so peak memory stays there. On another ``device`` (a
    GPU) the same ranking runs there in torch (:func:`_knn_graph_on`).
    """
    key_ids = allowed.nonzero().squeeze(1)  # (A,)
    if k > len(key_ids) - 1:
        raise ValueError(f"graph_k={k} needs at least {k + 1} candidate rows, the vocabulary has {len(key_ids)}")
    rows = embeddings.detach().cpu().float().numpy()
    if not np.isfinite(rows).all():
        raise ValueError("the embedding matrix has NaN or infinite values; no neighbour graph can be built from it")
    if device is not None and torch.device(device).type != "cpu":
        return _knn_graph_on(torch.from_numpy(rows), key_ids, k, torch.device(device))
    from .kernels import top_k_per_row  # numba loads on first use, not when udig is imported

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
    rows (a GPU sorts 30,522 scores per row in well under a millisecond), equal scores in id order."""
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


def nearest_by_products(products: Tensor, which: Tensor, key_sq: Tensor, alphas: Tensor, k: int) -> Tensor:
    """:meth:`VocabIndex.nearest_on_segments`'s ranking in tensor operations, on the products' device:
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


def _compiled_search(device: torch.device) -> bool:
    """UDIG's search runs the compiled CPU passes on the CPU, tensor operations elsewhere (a GPU)."""
    return device.type == "cpu"


def _distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each distinct row's first position and every row's distinct index, comparing the rows' bytes: for a
    sentence's few rows, 0.08 ms in numpy where ``torch.unique(dim=0)`` and its indexing took 0.5 ms."""
    as_bytes = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1] * rows.itemsize))).ravel()
    _, first, inverse = np.unique(as_bytes, return_index=True, return_inverse=True)
    return first, inverse.ravel()


class VocabIndex:
    """Shared, lazily built searches over one model's word-embedding matrix.

    Parameters are stored as given; nothing is computed until first use. Derived state ends in ``_``.
    ``language`` (a wordfreq code: "en", "fr", ...) and ``min_zipf`` set which real words a reader
    knows (:func:`frequent_words`); ``language=None`` skips that filter.
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
        self._lock = threading.RLock()  # the cheap lazy attributes below
        self._graph_locks: dict[tuple[int, str], threading.Lock] = {}  # one per graph: a build blocks no one else
        self._graphs: dict[tuple[int, str], Tensor] = {}
        self._identity: str | None = None
        self._word_mask: Tensor | None = None
        self._sq_norms: Tensor | None = None
        self._keys: dict[tuple[str, torch.device], tuple[Tensor, Tensor, Tensor | None]] = {}
        self._finite: dict[tuple[str, torch.device], bool] = {}
        self._int8: dict[tuple[str, str], Int8Rows] = {}
        self._chains: OrderedDict[tuple[Hashable, int, int], np.ndarray] = OrderedDict()  # least recently used first

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
                unused = torch.tensor([i for i, t in enumerate(self.tokens) if UNUSED_TOKEN.match(t)], dtype=torch.long)
                mask = ~undertrained_rows(self.embeddings, unused) & lexical_words(self.surfaces)
                mask[self.special_ids] = False
                if self.language is not None:
                    mask &= self._known_words(mask)
                self._word_mask = mask
            return self._word_mask

    def _known_words(self, words: Tensor) -> Tensor:
        """:func:`frequent_words` over the rows in ``words``; every row, with a warning, without a word list."""
        ids = words.nonzero().squeeze(1).tolist()
        known = frequent_words([self.surfaces[i] for i in ids], self.language, self.min_zipf)
        if known is None:
            logger.warning(
                "wordfreq has no usable word list for language %r: real words are not filtered by frequency",
                self.language,
            )
            return torch.ones_like(words)
        out = torch.zeros_like(words)
        out[ids] = known
        return out

    @property
    def sq_norms_(self) -> Tensor:
        with self._lock:
            if self._sq_norms is None:
                self._sq_norms = (self.embeddings * self.embeddings).sum(1)
            return self._sq_norms

    def candidate_mask(self, rule: str) -> Tensor:
        """Rows a path may pass through under a candidate rule: every row, or real words only."""
        if rule not in CANDIDATE_RULES:
            raise ValueError(f"unknown candidate rule {rule!r}; choose one of {CANDIDATE_RULES}")
        if rule == "all":
            return torch.ones(len(self.embeddings), dtype=torch.bool)
        return self.word_mask_

    def candidate_keys(
        self, rule: str, device: torch.device | str | None = None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """A rule's candidate rows ``(A, d)``, their squared norms and their vocabulary ids (None: every row,
        in order), on ``device`` (the CPU by default). Built once per rule and device; under "all" on the
        CPU the rows are the embedding matrix itself, not a copy."""
        allowed = self.candidate_mask(rule)
        device = torch.device("cpu" if device is None else device)
        with self._lock:
            if (rule, device) not in self._keys:
                ids = None if rule == "all" else allowed.nonzero().squeeze(1)
                rows = self.embeddings.contiguous() if ids is None else self.embeddings[ids]
                keys = (rows, self.sq_norms_ if ids is None else self.sq_norms_[ids], ids)
                self._keys[rule, device] = tuple(None if x is None else x.to(device) for x in keys)
            return self._keys[rule, device]

    def nearest_on_segments(
        self, starts: Tensor, ends: Tensor, alphas: Tensor, k: int, rule: str, device: torch.device | str | None = None
    ) -> Tensor:
        """The k nearest candidate rows to each point ``start + alpha (end - start)``: ``(T, m, k)`` ids.

        A row c ranks by ``|c|^2 - 2 c.p``, which along a segment is linear in alpha: ``a_c + alpha b_c``.
        So one product with the keys gives every rank at every alpha, and a row can be among the k
        nearest somewhere on ``[min alpha, max alpha]`` only if its lower end value is at most the k-th
        smallest upper end value (the k rows with the smallest upper ends are at least that close
        everywhere). Only those rows (a few hundred to about 2,000 of MiniLM's 30,522) are ranked point
        by point; the result is exact. Equal segments (a word that recurs) are searched once, and equal
        start rows (every token's baseline word) share one row of products.
        Everything runs on ``device`` (the model's; the CPU by default), where the ids are returned. On
        the CPU the product and the ranking are compiled passes (:mod:`udig.kernels`), and an exact int8
        product first sets aside the rows that cannot qualify (:meth:`_rows_to_rank`; the same ids, ties
        included); elsewhere (a GPU,
        where the product takes a fraction of a millisecond) it is one tensor product and
        :func:`nearest_by_products`, the same ranking in tensor operations.
        """
        rows, key_sq, key_ids = self.candidate_keys(rule, device)
        if k > len(key_sq):
            raise ValueError(f"nbrs={k} exceeds the {len(key_sq)} candidate rows")
        starts, ends, alphas = (x.detach().to("cpu", torch.float32).numpy() for x in (starts, ends, alphas))
        if not (
            np.isfinite(starts).all()
            and np.isfinite(ends).all()
            and np.isfinite(alphas).all()
            and self._finite_keys(rule, device)
        ):
            raise ValueError("NaN or infinite values in the embeddings or the segments; no nearest words can be ranked")
        segment_index, segment_of = _distinct_rows(np.concatenate([starts, ends], 1))
        starts, ends = starts[segment_index], ends[segment_index]
        start_index, which = _distinct_rows(starts)
        queries = np.concatenate([starts[start_index], ends])  # (U + S, d)
        if _compiled_search(rows.device):
            from .kernels import nearest_on_segments, products_with_rows  # numba loads on first use

            listed = self._rows_to_rank(rule, key_sq.numpy(), queries, which, alphas, k)
            products = np.empty((len(queries), len(listed)), np.float32)
            products_with_rows(rows.numpy(), listed, queries, products)
            nearest = np.empty((len(ends), len(alphas), k), np.int64)
            nearest_on_segments(products, which, key_sq.numpy()[listed], alphas, k, nearest)
            nearest = torch.from_numpy(listed[nearest[segment_of]])  # (T, m, k)
        else:
            queries, which, alphas = (torch.from_numpy(x).to(rows.device) for x in (queries, which, alphas))
            nearest = nearest_by_products(queries @ rows.T, which, key_sq, alphas, k)[
                torch.from_numpy(segment_of).to(rows.device)
            ]
        return nearest if key_ids is None else key_ids[nearest]

    def _rows_to_rank(
        self, rule: str, key_sq: np.ndarray, queries: np.ndarray, which: np.ndarray, alphas: np.ndarray, k: int
    ) -> np.ndarray:
        """The candidate rows (positions, ascending) whose exact products the ranking needs: those an int8
        screen keeps (:func:`udig.kernels.screen_segments`), every row the exact ranking could pick and a
        fifth to a half more; every row where this CPU has no exact int8 product (:func:`_int8_product`).
        On MiniLM it keeps 7-12 % of the 30,522 rows under "all" and 11-66 % of the 20,152 real words (more
        for longer inputs and for [PAD]). Path in explain(), UDIG Greedy, alternately in one process: with
        torch's int8 product (AVX512-VNNI) 7.3 ms instead of 11.2 (all) and 6.1 instead of 7.8 (words) for
        17 tokens, 28.9 instead of 38.3 and 27.8 (all, words) for 126; with fbgemm's (AVX2 only) 8.8
        instead of 13.6 and 9.7 instead of 11.4 for 17 tokens, 41.8 instead of 54.6 and 44.3 instead of
        39.5 for 126. It is always used: the one loss is small beside a 126-token gradient pass (2 s)."""
        product = _int8_product(queries.shape[1])
        if not len(which) or product == "none":
            return np.arange(len(key_sq))
        from .kernels import screen_segments

        rows = self._int8_rows(rule, product)
        products, query_terms = rows.products(queries)  # (U + S, A) exact integers
        keep = np.empty((len(which), len(key_sq)), np.bool_)
        screen_segments(products, query_terms, rows.terms, rows.dims, which, key_sq, alphas, k, keep)
        return np.flatnonzero(keep.any(0))

    def _int8_rows(self, rule: str, product: str) -> Int8Rows:
        """A rule's candidate rows coded for ``product``: built once per rule and product, a quarter of the
        float32 rows' memory."""
        key = (rule, product)
        with self._lock:
            if key not in self._int8:
                self._int8[key] = Int8Rows(self.candidate_keys(rule)[0].numpy(), key[1])
            return self._int8[key]

    def _finite_keys(self, rule: str, device: torch.device | str | None) -> bool:
        """Whether a rule's candidate rows have finite squared norms (so finite rows): checked once per rule and device."""
        key = (rule, torch.device("cpu" if device is None else device))
        with self._lock:
            if key not in self._finite:
                self._finite[key] = bool(torch.isfinite(self.candidate_keys(rule, device)[1]).all())
            return self._finite[key]

    def anchor_chains(
        self, key: Hashable, word_ids: Tensor, reference_ids: Tensor, compute: Callable[[Tensor, Tensor], Tensor]
    ) -> Tensor:
        """Each token's anchor chain ``(T, m + 1)``: remembered where the same word was chained to the same
        reference under the same ``key`` (whatever else fixes a chain: method, candidate rule and source,
        strategy, m, device), else ``compute(word_ids, reference_ids)`` for the distinct others.

        A token's chain depends on nothing else (:func:`udig.paths.anchor_chains`), not on the rest of its
        sentence, so a word recurring across sentences (the, and, of, ...) is chained once per process:
        over a stream of reviews, most of each new one's words were seen before. The least recently used
        chains are forgotten past :data:`MAX_CACHED_CHAINS`; ``compute`` runs outside the lock (two threads
        may both compute a chain, with the same result)."""
        pairs = list(zip(word_ids.tolist(), reference_ids.tolist()))
        with self._lock:
            known = {pair: self._chains.get((key, *pair)) for pair in pairs}
            for pair, chain in known.items():
                if chain is not None:
                    self._chains.move_to_end((key, *pair))
        missing = [pair for pair, chain in known.items() if chain is None]
        if missing or not pairs:  # an empty input still gets its (0, m + 1) shape from compute
            words, references = (
                (torch.tensor(column, dtype=torch.long) for column in zip(*missing))
                if missing
                else (word_ids, reference_ids)
            )
            computed = compute(words, references).cpu().numpy()
            if not pairs:
                return torch.from_numpy(computed)
            with self._lock:
                for pair, row in zip(missing, computed):
                    chain = row.astype(np.int32)  # a copy
                    chain.flags.writeable = False
                    known[pair] = self._chains[(key, *pair)] = chain
                while len(self._chains) > MAX_CACHED_CHAINS:
                    self._chains.popitem(last=False)
        return torch.from_numpy(np.stack([known[pair] for pair in pairs]).astype(np.int64))

    def forget_chains(self) -> None:
        """Drop every remembered chain (a benchmark timing the chains' construction starts each call so)."""
        with self._lock:
            self._chains.clear()

    def nearest_distances(self, points: Tensor, rules: Sequence[str] = ("all",)) -> dict[str, Tensor]:
        """Euclidean distance from each point ``(P, d)`` to its nearest row under each candidate rule: ``(P,)`` each.

        One product per chunk of points serves every rule (a rule only masks columns), so two rules cost one.
        The path view and the word-approximation error (:mod:`udig.metrics`) both measure with this.
        """
        masks = {rule: self.candidate_mask(rule) for rule in rules}
        rows, key_sq, _ = self.candidate_keys("all")
        points = points.detach().float().cpu()
        out = {rule: torch.empty(len(points)) for rule in rules}
        for start in range(0, len(points), _QUERY_CHUNK):
            chunk = points[start : start + _QUERY_CHUNK]  # (c, d)
            sq = torch.addmm(key_sq.expand(len(chunk), -1), chunk, rows.T, alpha=-2.0)  # (c, V)
            chunk_sq = (chunk * chunk).sum(1)
            for rule, allowed in masks.items():
                nearest = sq.amin(1) if bool(allowed.all()) else sq[:, allowed].amin(1)
                out[rule][start : start + len(chunk)] = (nearest + chunk_sq).clamp(min=0).sqrt()
        return out

    def graph(self, k: int, rule: str, device: torch.device | str | None = None) -> Tensor:
        """DIG's KNN graph ``(V, k)`` on the CPU: from memory, else from a verified disk cache, else built
        (on ``device`` when that is a GPU: the model's) and cached.

        Each graph has its own lock: two threads never build the same graph, and a build (seconds)
        holds up neither other graphs nor UDIG's nearest-word queries.
        """
        self.candidate_mask(rule)  # validates the rule before any work
        key = (k, rule)
        with self._lock:
            build_lock = self._graph_locks.setdefault(key, threading.Lock())
        with build_lock:
            if key not in self._graphs:
                path = self._graph_path(k, rule)
                graph = self._load_graph(path, k, rule)
                if graph is None:
                    graph = knn_graph(self.embeddings, k, self.candidate_mask(rule), device)
                    self._save_graph(path, graph, k, rule)
                self._graphs[key] = graph
            return self._graphs[key]

    def _candidates_digest(self, rule: str) -> str:
        """A hash of the rule's candidate rows: a graph built under another word rule has another name and never loads."""
        return hashlib.blake2b(self.candidate_mask(rule).numpy().tobytes(), digest_size=16).hexdigest()

    def _graph_path(self, k: int, rule: str) -> Path:
        if self.cache_dir is not None:
            folder = Path(self.cache_dir) / self.identity_
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = cached_assets_path(library_name="udig", namespace="vocab", subfolder=self.identity_)
        return folder / f"knn-k{k}-{rule}-{self._candidates_digest(rule)[:12]}-v{_GRAPH_FORMAT}.safetensors"

    def _metadata(self, graph: Tensor, k: int, rule: str) -> dict[str, str]:
        return {
            "identity": self.identity_,
            "k": str(k),
            "rule": rule,
            "candidates": self._candidates_digest(rule),
            "format": _GRAPH_FORMAT,
            "checksum": hashlib.blake2b(graph.numpy().tobytes(), digest_size=16).hexdigest(),
        }

    def _load_graph(self, path: Path, k: int, rule: str) -> Tensor | None:
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
        expected_shape = (len(self.embeddings), k)
        valid = (
            tuple(graph.shape) == expected_shape
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

    def _save_graph(self, path: Path, graph: Tensor, k: int, rule: str) -> None:
        """Write to a temporary file beside the target, then rename: readers never see half a file."""
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            save_file({"graph": graph}, str(tmp), metadata=self._metadata(graph, k, rule))
            os.replace(tmp, path)
        except OSError as error:  # a read-only or full disk costs a rebuild next time, nothing else
            logger.warning("could not cache the vocabulary graph at %s (%s)", path, error)
            tmp.unlink(missing_ok=True)


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
            tokens = tokenizer.convert_ids_to_tokens(list(range(weight.shape[0])))
            surfaces = [tokenizer.convert_tokens_to_string([token]).strip() if token else "" for token in tokens]
            index = VocabIndex(weight, tokens, tokenizer.all_special_ids, cache_dir, surfaces, language)
            _shared[key] = (weakref.ref(weight, lambda _: _shared.pop(key, None)), index)
            entry = _shared[key]
        return entry[1]
