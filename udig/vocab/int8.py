"""Exact int8 products of candidate rows with queries: the screen that sets aside most rows before UDIG's ranking.

Each vector is coded as int8 steps of its largest magnitude (:func:`int8_codes`); the product of two codes is
an integer, exact when the engine computing it is exact, and :func:`udig.kernels.screen_segments` bounds how
far it can be from the float32 product. Which engine is exact depends on the CPU (:func:`int8_product`).
"""

from __future__ import annotations

import logging
import threading
import warnings

import numpy as np
import torch

logger = logging.getLogger(__name__)

_INT8_PRODUCT: str | None = None  # the CPU search's int8 product: "int_mm", "fbgemm" or "none"; found on first use
# fbgemm's int8 product on AVX2 adds pairs of u8 x s8 products in int16: queries coded in [-63, 63] and
# shifted by 64 (1..127) keep every pair within 2 x 127 x 127 < 2^15. Two more columns holding -64 and 191
# make its per-tensor activation range 255 wide: scale 1, zero point 64, so it codes our codes exactly.
# Its float32 output holds every sum exactly up to 2^24: 2,000 x 63 x 127 < 2^24.
FBGEMM_QUERY_LEVELS, FBGEMM_MAX_DIMS = 63, 2000
_FBGEMM_RANGE = (-64.0, 191.0)
_ENGINE_LOCK = threading.Lock()


def int8_product(dims: int) -> str:
    """Which exact int8 product screens UDIG's search over rows of ``dims`` dimensions on this CPU.
    "int_mm": torch's int8 product (oneDNN) where the CPU has int8 dot-product instructions (AVX512-VNNI,
    AVX-VNNI, AMX): it reads a quarter of float32's bytes. "fbgemm": elsewhere, torch's fbgemm engine
    (AVX2 kernels; torch's int8 product has only a slow reference path there), if a product of extreme codes
    comes out exact (:func:`_fbgemm_is_exact`) and the rows have at most :data:`FBGEMM_MAX_DIMS` dimensions.
    "none": float32 products for every row."""
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
    """Candidate rows as int8 codes, ready for one exact int8 product (:func:`int8_product`): ``products``
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
    made once per candidate set, and :func:`int8_product` stops using it if the product is no longer exact."""
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
