"""The vocabulary index: exact searches, the under-trained filter, and a disk cache that is never trusted blindly."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from udig.kernels import int8_error_weights, products_with_rows, screen_segments
from udig.paths import udig_reference_alphas
from udig.vocab import VocabIndex, int8_codes, knn_graph, nearest_by_products, otsu_threshold, vocab_index_for
from udig.vocab import chains as chains_module
from udig.vocab import graph as graph_module
from udig.vocab import int8 as int8_module
from udig.vocab import nearest as nearest_module
from udig.vocab import words as words_module


def _index(tiny, tmp_path, **options) -> VocabIndex:
    model, tokenizer = tiny
    weight = model.get_input_embeddings().weight
    tokens = tokenizer.convert_ids_to_tokens(list(range(weight.shape[0])))
    return VocabIndex(weight, tokens, tokenizer.all_special_ids, cache_dir=tmp_path, **options)


@pytest.mark.parametrize("chunk", [2048, 7])  # one chunk; several, the last one short
def test_knn_graph_equals_brute_force(tiny, monkeypatch, chunk):
    monkeypatch.setattr(graph_module, "_QUERY_CHUNK", chunk)
    embeddings = tiny[0].get_input_embeddings().weight.detach()
    allowed = torch.ones(len(embeddings), dtype=torch.bool)
    allowed[[0, 5, 7]] = False
    graph = knn_graph(embeddings, 6, allowed)
    dist = torch.cdist(embeddings.double(), embeddings.double())
    dist[:, ~allowed] = float("inf")
    dist.fill_diagonal_(float("inf"))
    expected = dist.topk(6, largest=False).indices
    assert torch.equal(graph.long(), expected)


@pytest.mark.parametrize("chunk", [2048, 7])
def test_knn_graph_on_a_device_equals_the_cpu_build(tiny, monkeypatch, chunk):
    """The torch ranking a GPU runs, run here on the CPU: the same graph, ties in id order included."""
    monkeypatch.setattr(graph_module, "_QUERY_CHUNK", chunk)
    embeddings = tiny[0].get_input_embeddings().weight.detach()
    allowed = torch.ones(len(embeddings), dtype=torch.bool)
    allowed[[0, 5, 7]] = False
    key_ids = allowed.nonzero().squeeze(1)
    on_device = graph_module._knn_graph_on(embeddings, key_ids, 6, torch.device("cpu"))
    assert on_device.dtype == torch.int32 and torch.equal(on_device, knn_graph(embeddings, 6, allowed))
    tied = torch.zeros(12, 4)
    tied[:, 0] = torch.tensor([0.0, 1, 1, 1, 2, 2, 3, 3, 3, 3, 4, 5])  # rows at equal distances from many others
    expected = knn_graph(tied, 5, torch.ones(12, dtype=torch.bool))
    assert torch.equal(graph_module._knn_graph_on(tied, torch.arange(12), 5, torch.device("cpu")), expected)
    assert expected[0].tolist() == [1, 2, 3, 4, 5]  # equal distances in id order


def test_graph_builds_on_the_device_it_is_given(tiny, tmp_path, monkeypatch):
    """A GPU device reaches the torch build; none, or the CPU, keeps the compiled CPU build."""
    seen = []
    monkeypatch.setattr(
        graph_module,
        "_knn_graph_on",
        lambda rows, key_ids, k, device: seen.append(device) or torch.zeros(len(rows), k, dtype=torch.int32),
    )
    embeddings = tiny[0].get_input_embeddings().weight.detach()
    allowed = torch.ones(len(embeddings), dtype=torch.bool)
    knn_graph(embeddings, 3, allowed, "cpu")
    knn_graph(embeddings, 3, allowed)
    assert seen == []
    knn_graph(embeddings, 3, allowed, "cuda:1")
    assert seen == [torch.device("cuda:1")]
    index = _index(tiny, tmp_path)
    index.graph(4, "all", "cuda")
    assert seen[-1] == torch.device("cuda") and len(seen) == 2


def test_knn_graph_on_minilm_rows_finds_the_nearest(minilm, monkeypatch):
    """Real rows, several chunks: the graph's distances are the k smallest (in float64), in order."""
    monkeypatch.setattr(graph_module, "_QUERY_CHUNK", 1024)
    embeddings = minilm[0].get_input_embeddings().weight.detach()[:3000]
    allowed = torch.rand(len(embeddings), generator=torch.Generator().manual_seed(0)) > 0.2
    graph = knn_graph(embeddings, 50, allowed).long()
    dist = torch.cdist(embeddings.double(), embeddings.double())
    dist[:, ~allowed] = float("inf")
    dist.fill_diagonal_(float("inf"))
    assert allowed[graph].all() and not (graph == torch.arange(len(graph))[:, None]).any()
    torch.testing.assert_close(dist.gather(1, graph), dist.topk(50, largest=False).values, atol=1e-5, rtol=0)


def test_knn_graph_product_uses_as_many_threads_as_torch(tiny, monkeypatch):
    from threadpoolctl import threadpool_info

    seen = []
    real_matmul = np.matmul

    def spying_matmul(*args, **kwargs):
        seen.extend(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")
        return real_matmul(*args, **kwargs)

    monkeypatch.setattr(graph_module.np, "matmul", spying_matmul)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        knn_graph(
            tiny[0].get_input_embeddings().weight.detach(), 3, torch.ones(tiny[0].config.vocab_size, dtype=torch.bool)
        )
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}


def test_knn_graph_refuses_a_broken_embedding_matrix(tiny):
    embeddings = tiny[0].get_input_embeddings().weight.detach().clone()
    embeddings[4, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        knn_graph(embeddings, 3, torch.ones(len(embeddings), dtype=torch.bool))


def _stable_top_k(scores, k):
    """The reference: largest first, equal scores in column order."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize(
    "case",
    [
        "random",  # the sampled guess holds
        "ties",  # whole runs of equal scores, negative and positive
        "sample_on_top",  # every 16th score is the largest: guesses fail until every score is kept
        "short_rows",  # fewer columns than a sample needs
    ],
)
def test_top_k_per_row_equals_stable_sort(case):
    from udig.kernels import top_k_per_row

    rng = np.random.default_rng(0)
    scores = rng.standard_normal((40, 3000)).astype(np.float32)
    k = 500
    if case == "ties":
        scores = np.round(scores * 2) / 2
    elif case == "sample_on_top":
        scores[:, ::16] += 100
    elif case == "short_rows":
        scores, k = scores[:, :20], 7
    scores[0, 5] = -np.inf  # an excluded column
    out = np.full((len(scores), k), -1, np.int32)
    top_k_per_row(scores, k, out)
    np.testing.assert_array_equal(out, _stable_top_k(scores, k))


def test_float_order_keys_sort_as_the_floats():
    """The keys the rankings sort on follow the floats' order over every kind of float32: infinities, both
    zeros (-0 first), subnormals, both signs; and they are unsigned 32-bit values (the top-k kernel
    complements them)."""
    import numba

    from udig.kernels.common import _in_float_order

    @numba.njit
    def keys_of(bits):
        out = np.empty(len(bits), np.uint32)
        for i in range(len(bits)):
            out[i] = _in_float_order(bits[i])
        return out

    special = [-np.inf, -3e38, -1.5, -1e-38, -1e-45, -0.0, 0.0, 1e-45, 1e-38, 2.5, 3e38, np.inf]
    rng = np.random.default_rng(0)
    values = np.concatenate([np.array(special, np.float32), rng.standard_normal(2000).astype(np.float32)])
    values = values[rng.permutation(len(values))]
    keys = keys_of(values.view(np.uint32))
    assert keys.dtype == np.uint32 and len(np.unique(keys)) == len(np.unique(values.view(np.uint32)))
    in_key_order = values[np.argsort(keys, kind="stable")]
    assert bool((np.diff(in_key_order) >= 0).all())
    zeros = in_key_order[np.flatnonzero(in_key_order == 0)]
    assert np.signbit(zeros[0]) and not np.signbit(zeros[1])


def test_compiled_kernels_use_as_many_threads_as_torch():
    import numba

    from udig.kernels import top_k_per_row

    before = torch.get_num_threads()
    out = np.empty((2, 3), np.int32)
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            top_k_per_row(np.random.default_rng(0).random((2, 50), dtype=np.float32), 3, out)
            assert numba.get_num_threads() == min(threads, numba.config.NUMBA_NUM_THREADS)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("m", [1, 5, 30])
def test_nearest_on_segments_equals_brute_force(minilm, m):
    model, tokenizer = minilm
    index = vocab_index_for(model, tokenizer)
    table = index.embeddings
    starts = table[[103, 103, 0, 103]]
    ends = table[[2204, 6659, 3185, 2204]]  # the last segment repeats the first: searched once, returned twice
    alphas = udig_reference_alphas(m)
    for rule in ("all", "words"):
        found = index.nearest_on_segments(starts, ends, alphas, 12, rule)
        allowed = index.candidate_mask(rule)
        points = starts[:, None] + alphas[None, :, None] * (ends - starts)[:, None]  # (T, m, d)
        dist = torch.cdist(points.double(), table.double())
        dist[..., ~allowed] = float("inf")
        expected_dist = dist.topk(12, largest=False).values
        got_dist = dist.gather(2, found)
        assert torch.allclose(got_dist, expected_dist, atol=1e-6)


@pytest.mark.parametrize("baseline", [103, 0])  # [MASK], [PAD]
def test_compiled_nearest_ranks_as_the_tensor_version(minilm, baseline):
    """The CPU's compiled ranking and the GPU's tensor one pick rows of equal rank at every point; where two
    rows tie exactly (fp32 cancellation makes [PAD] tie with a word), the compiled one takes the lower id."""
    model, tokenizer = minilm
    index = vocab_index_for(model, tokenizer)
    table = index.embeddings
    word_ids = torch.tensor(
        tokenizer("zzz xylophone: it's a gorgeous, moving portrait!", add_special_tokens=False)["input_ids"]
    )
    refs = torch.full_like(word_ids, baseline)
    for m, k in [(1, 1), (5, 12), (30, 50)]:
        alphas = udig_reference_alphas(m)
        for rule in ("all", "words"):
            candidates = index.candidate_rows(rule)
            rows, key_sq, key_ids = candidates.rows, candidates.sq_norms, candidates.ids
            unique_starts, which = torch.unique(table[refs], dim=0, return_inverse=True)
            queries = torch.cat([unique_starts, table[word_ids]])
            products = torch.empty(len(queries), len(rows))  # the CPU's own products: both rankings see the same values
            products_with_rows(rows.numpy(), np.arange(len(rows)), queries.numpy(), products.numpy())
            n_unique = len(unique_starts)
            offset = key_sq - 2 * products[:n_unique][which]
            slope = 2 * (products[:n_unique][which] - products[n_unique:])
            rank = offset[:, None, :] + alphas[None, :, None] * slope[:, None, :]  # (T, m, A)
            tensor_version = nearest_by_products(products, which, key_sq, alphas, k)
            found = index.nearest_on_segments(table[refs], table[word_ids], alphas, k, rule)
            positions = found if key_ids is None else torch.searchsorted(key_ids, found)
            assert torch.equal(rank.gather(2, positions), rank.gather(2, tensor_version)), (m, k, rule)
            got = rank.gather(2, positions)
            later, earlier = (got[..., 1:], positions[..., 1:]), (got[..., :-1], positions[..., :-1])
            assert bool(((later[0] > earlier[0]) | ((later[0] == earlier[0]) & (later[1] > earlier[1]))).all())


def _needs(product: str) -> None:
    """Skip where this CPU's torch cannot run ``product`` exactly (fbgemm is x86 only)."""
    if product == "fbgemm" and not int8_module._fbgemm_is_exact():
        pytest.skip("torch's fbgemm engine is absent or not exact here")


@pytest.mark.parametrize("product", ["int_mm", "fbgemm"])
@pytest.mark.parametrize("baseline", [103, 0])  # [MASK], [PAD]
def test_int8_screen_ranks_as_the_whole_search(minilm, monkeypatch, baseline, product):
    """Screening rows on int8 products (either product: each CPU uses one) and ranking the kept ones
    exactly picks the same ids, ties included, as ranking every row."""
    _needs(product)
    model, tokenizer = minilm
    index = vocab_index_for(model, tokenizer)
    table = index.embeddings
    texts = ["zzz xylophone: it's a gorgeous, moving portrait!", "a dull, tired and joyless film " * 6]
    for text in texts:
        word_ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"])
        starts, ends = table[torch.full_like(word_ids, baseline)], table[word_ids]
        for m, k in [(1, 1), (5, 12), (30, 50)]:
            alphas = udig_reference_alphas(m)
            for rule in ("all", "words"):
                monkeypatch.setattr(int8_module, "_INT8_PRODUCT", "none")
                whole = index.nearest_on_segments(starts, ends, alphas, k, rule)
                monkeypatch.setattr(int8_module, "_INT8_PRODUCT", product)
                screened = index.nearest_on_segments(starts, ends, alphas, k, rule)
                assert torch.equal(screened, whole), (text, m, k, rule)


def _int8_error(query_terms: np.ndarray, row_terms: np.ndarray, dims: int) -> np.ndarray:
    """The screen's bound on each (query, row) int8 product's error, ``(Q, A)``."""
    on_step, on_l1, on_l2 = int8_error_weights.py_func(*(x[:, None] for x in query_terms), dims)
    return on_step * row_terms[0] + on_l1 * row_terms[1] + on_l2 * row_terms[2]


@pytest.mark.parametrize("levels", [127, int8_module.FBGEMM_QUERY_LEVELS])  # the queries' codes for int_mm, fbgemm
@pytest.mark.parametrize("push", ["away", "closer", "random"])
def test_screen_keeps_every_row_the_exact_pass_could_pick(minilm, push, levels):
    """Int8 products off by as much as the bound allows, all one way or at random: the screen still keeps
    every row whose exact lower end reaches the k-th smallest exact upper end (the rows the exact ranking
    may pick). Without its margin it drops some of them."""
    model, tokenizer = minilm
    index = vocab_index_for(model, tokenizer)
    table, key_sq = index.embeddings, index.candidate_rows("all").sq_norms.numpy()
    word_ids = tokenizer("a gorgeous, moving portrait of grief and hope", add_special_tokens=False)["input_ids"]
    queries = table[[103] + word_ids].numpy()
    exact = np.empty((len(queries), len(table)), np.float32)
    products_with_rows(table.numpy(), np.arange(len(table)), queries, exact)
    (_, query_terms), (_, row_terms) = int8_codes(queries, levels), int8_codes(table.numpy())
    unit = query_terms[0][:, None] * row_terms[0][None]  # one step of the int8 product
    bound = _int8_error(query_terms, row_terms, table.shape[1])  # at least 96 units: rounding to one moves 0.5
    direction = {"away": -1.0, "closer": 1.0, "random": np.random.default_rng(0).uniform(-1, 1, exact.shape)}[push]
    products = np.rint((exact + 0.99 * direction * bound) / unit).astype(np.int32)
    assert bool((np.abs(products * unit - exact) <= bound).all())
    which, k, alphas = np.zeros(len(word_ids), np.int64), 50, udig_reference_alphas(30).numpy()
    keep = np.empty((len(word_ids), len(table)), np.bool_)
    screen_segments(products, query_terms, row_terms, table.shape[1], which, key_sq, alphas, k, keep)
    offset = key_sq - np.float32(2) * exact[:1]
    slope = np.float32(2) * (exact[:1] - exact[1:])
    ends = np.stack([offset + alphas.min() * slope, offset + alphas.max() * slope])
    lower, upper = ends.min(0), ends.max(0)
    kth_upper = np.partition(upper, k - 1, axis=1)[:, k - 1 : k]
    assert bool(keep[lower <= kth_upper].all())
    assert keep.sum() < 0.2 * keep.size  # and it still screens


def test_the_tensor_search_a_gpu_runs_picks_rows_of_equal_rank(minilm, monkeypatch):
    """The search's tensor branch (what a GPU runs), run here on the CPU through the same entry point:
    recurring words and the shared baseline deduplicated the same way, ids of equal rank at every point."""
    model, tokenizer = minilm
    index = vocab_index_for(model, tokenizer)
    table = index.embeddings
    word_ids = torch.tensor(tokenizer("a film, a film: gorgeous and moving", add_special_tokens=False)["input_ids"])
    starts, ends, alphas = table[torch.full_like(word_ids, 103)], table[word_ids], udig_reference_alphas(30)
    points = starts[:, None] + alphas[None, :, None] * (ends - starts)[:, None]  # (T, m, d)
    distance = lambda ids: (points[:, :, None] - table[ids]).norm(dim=-1)  # noqa: E731
    for rule in ("all", "words"):
        compiled = index.nearest_on_segments(starts, ends, alphas, 50, rule)
        monkeypatch.setattr(nearest_module, "_compiled_search", lambda device: False)
        tensor = index.nearest_on_segments(starts, ends, alphas, 50, rule)
        monkeypatch.undo()
        assert tensor.shape == compiled.shape and torch.allclose(distance(tensor), distance(compiled), atol=1e-5)
        first, again = (word_ids == word_ids[0]).nonzero().squeeze(1)[:2]  # "a" twice: searched once
        assert torch.equal(tensor[first], tensor[again]) and torch.equal(compiled[first], compiled[again])


@pytest.mark.parametrize("product", ["int_mm", "fbgemm"])
def test_int8_products_are_within_the_screens_error_bound(minilm, product):
    """Each int8 product is exact (int32 sums of the codes), and codes times steps are within the screen's
    bound of the compiled float32 products, for every MiniLM row against a sentence's rows."""
    _needs(product)
    model, tokenizer = minilm
    table = vocab_index_for(model, tokenizer).embeddings.numpy()
    queries = table[
        tokenizer("[MASK] [PAD] a gorgeous, moving portrait of grief", add_special_tokens=False)["input_ids"]
    ]
    exact = np.empty((len(queries), len(table)), np.float32)
    products_with_rows(table, np.arange(len(table)), queries, exact)
    engine = torch.backends.quantized.engine
    products, query_terms = int8_module.Int8Rows(table, product).products(queries)
    assert torch.backends.quantized.engine == engine  # fbgemm's pack sets the process-wide engine for itself only
    levels = 127 if product == "int_mm" else int8_module.FBGEMM_QUERY_LEVELS
    (query_codes, _), (row_codes, row_terms) = int8_codes(queries, levels), int8_codes(table)
    assert np.array_equal(products, query_codes.astype(np.int64) @ row_codes.astype(np.int64).T)
    rough = products * (query_terms[0][:, None] * row_terms[0][None])
    assert bool((np.abs(rough - exact) <= _int8_error(query_terms, row_terms, table.shape[1])).all())


def test_int8_product_is_chosen_from_the_cpus_units(monkeypatch):
    """torch's int8 product where LLVM's view of the CPU (what numba compiles for) has the int8 dot-product
    units Linux reports; elsewhere fbgemm's when it is exact, else none."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo to compare with")
    flags = set(next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")).split())
    monkeypatch.setattr(int8_module, "_INT8_PRODUCT", None)
    if flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        expected = "int_mm"
    else:
        expected = "fbgemm" if int8_module._fbgemm_is_exact() else "none"
    assert int8_module.int8_product(384) == expected
    beyond = int8_module.int8_product(int8_module.FBGEMM_MAX_DIMS + 1)  # fbgemm's float32 sums would round
    assert beyond == ("int_mm" if expected == "int_mm" else "none")


@pytest.mark.parametrize("change", ["query levels", "range"])
def test_fbgemm_check_refuses_an_inexact_product(monkeypatch, change):
    """The check guards the screen's exactness: query codes past [-63, 63] or an activation range that is
    not 255 wide make fbgemm's product inexact, and the check says so (the screen then goes unused)."""
    _needs("fbgemm")
    if change == "query levels":
        monkeypatch.setattr(int8_module, "FBGEMM_QUERY_LEVELS", 127)
    else:
        monkeypatch.setattr(int8_module, "_FBGEMM_RANGE", (-64.0, 190.0))
    assert not int8_module._fbgemm_is_exact()


@pytest.mark.parametrize("n_rows", [0, 7, 8, 300, 1027])  # short of a block of 8, exact blocks, a tail
@pytest.mark.parametrize("n_queries", [1, 19])
def test_compiled_products_are_float32_dot_products(n_rows, n_queries):
    """Within the worst-case rounding of a float32 sum of d products, d u sum_i |r_i q_i| (u = 2^-24),
    of the exact products; the ranking test above checks what that rounding may change."""
    generator = torch.Generator().manual_seed(n_rows + n_queries)
    rows, queries = torch.randn(n_rows, 384, generator=generator), torch.randn(n_queries, 384, generator=generator)
    out = torch.full((n_queries, n_rows), float("nan"))
    products_with_rows(rows.numpy(), np.arange(n_rows), queries.numpy(), out.numpy())
    exact = queries.double() @ rows.double().T
    bound = 384 * 2.0**-24 * (queries.double().abs() @ rows.double().abs().T)
    assert bool(((out.double() - exact).abs() <= bound).all())


def test_compiled_product_of_a_row_does_not_depend_on_where_it_sits():
    """Rows in a task's last, partial block of 8 and a lone last query take the same instructions as the rest:
    the same row and query give the same bits in any position and in any list of rows, so a screened search
    (products for a few listed rows) sees the values a full one would."""
    generator = torch.Generator().manual_seed(7)
    rows, queries = torch.randn(261, 384, generator=generator), torch.randn(5, 384, generator=generator)
    out = torch.empty(5, 261)
    products_with_rows(rows.numpy(), np.arange(261), queries.numpy(), out.numpy())
    order = torch.randperm(261, generator=generator)
    moved = torch.empty(4, 261)  # rows shuffled across blocks and tasks; queries paired differently
    products_with_rows(rows[order].numpy(), np.arange(261), queries[1:].numpy(), moved.numpy())
    assert torch.equal(moved, out[1:, order])
    listed = np.array([260, 0, 129])
    alone = torch.empty(1, 3)  # one query, three listed rows: every row in a clamped block
    products_with_rows(rows.numpy(), listed, queries[4:].numpy(), alone.numpy())
    assert torch.equal(alone, out[4:, listed])


def test_nearest_on_segments_refuses_non_finite_values(tiny, tmp_path):
    index = _index(tiny, tmp_path)
    table = index.embeddings
    starts, ends, alphas = table[[4, 4]], table[[12, 20]].clone(), udig_reference_alphas(4)
    ends[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        index.nearest_on_segments(starts, ends, alphas, 3, "words")
    assert index.nearest_on_segments(starts[:0], ends[:0], alphas, 3, "words").shape == (0, 4, 3)  # no words: nothing


def test_nearest_on_segments_runs_on_the_device_it_is_given(tiny, tmp_path):
    """Keys are kept per device; the CPU result is the default's, ids on the device of the search."""
    index = _index(tiny, tmp_path)
    table = index.embeddings
    starts, ends, alphas = table[[4, 4]], table[[12, 20]], udig_reference_alphas(4)
    default = index.nearest_on_segments(starts, ends, alphas, 3, "words")
    on_cpu = index.nearest_on_segments(starts.double(), ends.double(), alphas, 3, "words", torch.device("cpu"))
    assert torch.equal(default, on_cpu) and on_cpu.device.type == "cpu"
    rows = index.candidate_rows("words", "cpu")
    assert rows is index.candidate_rows("words") and rows.rows.device.type == "cpu"


def test_undertrained_rows_are_found_from_the_matrix(minilm):
    model, tokenizer = minilm
    index = vocab_index_for(model, tokenizer)
    words = index.word_mask_
    vocab = tokenizer.get_vocab()
    assert not words[[vocab[f"[unused{i}]"] for i in range(0, 900, 7)]].any()
    assert not words[tokenizer.all_special_ids].any()
    assert words[[vocab[w] for w in ("good", "film", "terrible", "movie", "the", "family")]].all()
    unused = torch.tensor([vocab[f"[unused{i}]"] for i in range(994)])
    cluster = words_module.undertrained_rows(index.embeddings, unused)
    assert 500 < int(cluster.sum()) - 994 < 3000  # the cluster of CJK/symbol pieces the issue describes
    assert not cluster[[vocab["dryly"], vocab["rasped"]]].any()  # trained, merely rare (see the frequency rule)
    # just outside the cluster: pieces no reader takes for a word, which a path to [MASK] runs past
    for piece in ("ש", "1726", "##ם", "##ing", "中"):
        assert not cluster[vocab[piece]] and not words[vocab[piece]], piece


def test_lexical_words_are_whole_words_in_the_vocabularys_main_script():
    surfaces = ["the", "##ing", "1726", "ש", "film", "straße", "中", "a", "don't", "", "naïve", "ok"]
    expected = [True, False, False, False, True, True, False, True, False, False, True, True]
    assert words_module.lexical_words(surfaces).tolist() == expected
    assert words_module.lexical_words(["中", "文", "x"]).tolist() == [True, True, False]  # CJK is main here


def _minilm_index(minilm, **options) -> VocabIndex:
    model, tokenizer = minilm
    shared = vocab_index_for(model, tokenizer)
    return VocabIndex(shared.embeddings, shared.tokens, shared.special_ids, surfaces=shared.surfaces, **options)


def test_real_words_are_words_a_reader_knows(minilm):
    """The rare names and letters the issue found on MiniLM's paths pass the old rule and fail the new one."""
    model, tokenizer = minilm
    vocab = tokenizer.get_vocab()
    words = vocab_index_for(model, tokenizer).word_mask_
    old_rule = _minilm_index(minilm, language=None).word_mask_
    rare = ("freyja", "acheron", "rasped", "vimes", "abbess", "sofie", "balthazar", "wrocław", "ß", "ə", "ħ", "b", "x")
    assert old_rule[[vocab[w] for w in rare]].all()
    assert not words[[vocab[w] for w in rare]].any()
    common = ("film", "gorgeous", "terrible", "witty", "seductive", "moving", "a", "i")
    assert words[[vocab[w] for w in common]].all()
    assert not (words & ~old_rule).any()  # the new rule only removes


def test_the_frequency_threshold_keeps_what_the_readme_says(minilm):
    """MiniLM's real words: 21,748 by the old rule, 20,152 at Zipf 3.0, 14,124 at 3.5; DIG needs 501, UDIG 50."""
    model, tokenizer = minilm
    assert int(vocab_index_for(model, tokenizer).word_mask_.sum()) == 20_152
    assert int(_minilm_index(minilm, language=None).word_mask_.sum()) == 21_748
    assert int(_minilm_index(minilm, min_zipf=3.5).word_mask_.sum()) == 14_124
    assert words_module.MIN_ZIPF == 3.0


def test_frequent_words_judges_letters_by_their_own_rule():
    surfaces = ["film", "gorgeous", "freyja", "a", "i", "x", "ß", "ə", "ﬁ"]
    assert words_module.frequent_words(surfaces, "en").tolist() == [
        True,
        True,
        False,
        True,
        True,
        False,
        False,
        False,
        False,
    ]
    assert words_module.frequent_words(["film", "freyja"], "en", min_zipf=1.5).tolist() == [True, True]
    assert words_module.frequent_words(["und", "a"], "de").tolist() == [True, False]  # no one-letter words listed
    assert words_module.frequent_words(["film"], "tlh") is None  # not silently English, wordfreq's nearest match


def test_without_a_word_list_the_old_rule_holds_and_says_so(tiny, tmp_path, monkeypatch, caplog):
    import wordfreq

    old_rule = _index(tiny, tmp_path, language=None).word_mask_
    assert torch.equal(_index(tiny, tmp_path).word_mask_, old_rule)  # the tiny vocabulary is all common words
    with caplog.at_level("WARNING", logger="udig.vocab"):
        assert torch.equal(_index(tiny, tmp_path, language="tlh").word_mask_, old_rule)

    def no_tokenizer(*args):
        raise ModuleNotFoundError("No module named 'jieba'")

    monkeypatch.setattr(wordfreq, "zipf_frequency", no_tokenizer)
    with caplog.at_level("WARNING", logger="udig.vocab"):
        assert torch.equal(_index(tiny, tmp_path, language="zh").word_mask_, old_rule)
    assert [r.getMessage().count("not filtered by frequency") for r in caplog.records] == [1, 1]


def test_a_graph_built_under_another_word_rule_is_never_reused(tiny, tmp_path, monkeypatch):
    old = _index(tiny, tmp_path, language=None)
    old.graph(4, "words")
    new = _index(tiny, tmp_path, min_zipf=5.0)  # drops the tiny vocabulary's rarer words (gorgeous, dull, ...)
    assert int(new.word_mask_.sum()) < int(old.word_mask_.sum())
    calls = []
    real = graph_module.knn_graph
    monkeypatch.setattr(graph_module, "knn_graph", lambda *a: calls.append(a) or real(*a))
    graph = new.graph(4, "words")
    assert len(calls) == 1 and new.word_mask_[graph.long()].all()
    assert old.graphs.path(4, "words") != new.graphs.path(4, "words")  # both stay cached
    assert (
        torch.equal(_index(tiny, tmp_path, language=None).graph(4, "words"), old.graph(4, "words")) and len(calls) == 1
    )


def test_otsu_threshold_splits_two_clusters():
    values = torch.cat([torch.full((100,), 0.1), torch.full((30,), 0.9)]) + torch.linspace(0, 0.01, 130)
    cut = otsu_threshold(values)
    assert bool((values[:100] < cut).all()) and bool((values[100:] >= cut).all())


def test_graph_is_cached_on_disk_and_reloaded(tiny, tmp_path, monkeypatch):
    first = _index(tiny, tmp_path).graph(6, "all")
    calls = []
    monkeypatch.setattr(graph_module, "knn_graph", lambda *a: calls.append(a) or first)
    second = _index(tiny, tmp_path).graph(6, "all")
    assert torch.equal(first, second) and calls == []


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "other-k"])
def test_a_damaged_cache_is_rebuilt_not_trusted(tiny, tmp_path, damage):
    index = _index(tiny, tmp_path)
    good = index.graph(6, "all")
    path = index.graphs.path(6, "all")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        path.write_bytes(data[:-8] + bytes(b ^ 0x5A for b in data[-8:]))
    elif damage == "garbage":
        path.write_bytes(b"not a safetensors file")
    else:  # a file that verifies as a graph, but of another k, under this name
        other = _index(tiny, tmp_path / "other").graph(5, "all")
        path.write_bytes(_index(tiny, tmp_path / "other").graphs.path(5, "all").read_bytes())
        assert other.shape[1] == 5
    rebuilt = _index(tiny, tmp_path).graph(6, "all")
    assert torch.equal(rebuilt, good)
    assert torch.equal(_index(tiny, tmp_path).graph(6, "all"), good)  # and the cache was repaired


def test_two_threads_build_the_graph_once(tiny, tmp_path, monkeypatch):
    index = _index(tiny, tmp_path)
    real = graph_module.knn_graph
    calls = []
    barrier = threading.Barrier(2)

    def slow_build(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(graph_module, "knn_graph", slow_build)
    results = []

    def worker():
        barrier.wait()
        results.append(index.graph(6, "words"))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and torch.equal(results[0], results[1])


def test_a_graph_build_blocks_neither_udig_queries_nor_other_graphs(tiny, tmp_path, monkeypatch):
    index = _index(tiny, tmp_path)
    real = graph_module.knn_graph
    building, release = threading.Event(), threading.Event()

    def held_build(embeddings, k, allowed, *device):
        if k == 6:  # hold only the first graph's build
            building.set()
            assert release.wait(timeout=30)
        return real(embeddings, k, allowed, *device)

    monkeypatch.setattr(graph_module, "knn_graph", held_build)
    builder = threading.Thread(target=index.graph, args=(6, "all"))
    builder.start()
    try:
        assert building.wait(timeout=30)
        table = index.embeddings
        nearest = index.nearest_on_segments(table[[3]], table[[9]], udig_reference_alphas(3), 2, "words")
        other = index.graph(4, "words")  # a different graph builds meanwhile
        assert nearest.shape == (1, 3, 2) and other.shape == (len(table), 4)
        assert builder.is_alive()  # the first build really was still running
    finally:
        release.set()
        builder.join()


def test_one_shared_index_per_model_and_language(tiny):
    model, tokenizer = tiny
    assert vocab_index_for(model, tokenizer) is vocab_index_for(model, tokenizer, language="en")
    french = vocab_index_for(model, tokenizer, language="fr")
    assert french.language == "fr" and french is not vocab_index_for(model, tokenizer)


def test_unknown_rule_and_oversized_k(tiny, tmp_path):
    index = _index(tiny, tmp_path)
    with pytest.raises(ValueError, match="candidate rule"):
        index.graph(5, "nouns")
    with pytest.raises(ValueError, match="graph_k"):
        index.graph(10_000, "all")


def _chain_maker(calls: list):
    """A stand-in chain builder: each (word, reference) gets its own recognisable chain; calls are recorded."""

    def compute(words: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        calls.append(list(zip(words.tolist(), references.tolist())))
        return torch.stack([words * 100 + references, words, references], 1)  # (T, m + 1) with m = 2

    return compute


def test_anchor_chains_are_computed_once_per_word_and_reference(tiny, tmp_path):
    """Only pairs never chained under the key are computed, each once however often it recurs; the result is
    every token's chain in order, the same as computing them all."""
    index, calls = _index(tiny, tmp_path), []
    compute = _chain_maker(calls)
    words, references = torch.tensor([7, 8, 7, 9]), torch.tensor([4, 4, 4, 0])
    first = index.anchor_chains("key", words, references, compute)
    assert calls == [[(7, 4), (8, 4), (9, 0)]]
    assert torch.equal(first, _chain_maker([])(words, references))
    again = index.anchor_chains("key", torch.tensor([9, 12, 7]), torch.tensor([0, 4, 4]), compute)
    assert calls[1:] == [[(12, 4)]]
    assert torch.equal(again, _chain_maker([])(torch.tensor([9, 12, 7]), torch.tensor([0, 4, 4])))
    index.anchor_chains("other key", torch.tensor([7]), torch.tensor([4]), compute)  # another method or setting
    assert calls[2:] == [[(7, 4)]]
    index.forget_chains()
    index.anchor_chains("key", torch.tensor([7]), torch.tensor([4]), compute)
    assert calls[3:] == [[(7, 4)]]


def test_anchor_chains_forget_the_least_recently_used_past_the_limit(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(chains_module, "MAX_CACHED_CHAINS", 2)
    index, calls = _index(tiny, tmp_path), []
    compute = _chain_maker(calls)
    for word in (7, 8):
        index.anchor_chains("key", torch.tensor([word]), torch.tensor([4]), compute)
    index.anchor_chains("key", torch.tensor([7]), torch.tensor([4]), compute)  # 7 used again: 8 is now the oldest
    index.anchor_chains("key", torch.tensor([9]), torch.tensor([4]), compute)  # 8 goes
    assert len(index.chains) == 2
    index.anchor_chains("key", torch.tensor([7, 8]), torch.tensor([4, 4]), compute)
    assert calls[-1] == [(8, 4)]


def test_a_failed_chain_computation_remembers_nothing(tiny, tmp_path):
    index = _index(tiny, tmp_path)

    def broken(words, references):
        raise ValueError("no candidates")

    with pytest.raises(ValueError, match="no candidates"):
        index.anchor_chains("key", torch.tensor([7]), torch.tensor([4]), broken)
    calls = []
    index.anchor_chains("key", torch.tensor([7]), torch.tensor([4]), _chain_maker(calls))
    assert calls == [[(7, 4)]]


def test_an_empty_input_gets_chains_of_its_width(tiny, tmp_path):
    index = _index(tiny, tmp_path)
    empty = torch.empty(0, dtype=torch.long)
    assert index.anchor_chains("key", empty, empty, _chain_maker([])).shape == (0, 3)


def test_remembered_chains_share_no_memory_with_what_goes_in_or_out(tiny, tmp_path):
    """A caller writing into the tensor it computed, or into the chains it was handed, changes no remembered
    chain; the chains come back as int64 ids whatever they are kept as."""
    index, handed = _index(tiny, tmp_path), []

    def compute(words, references):
        handed.append(_chain_maker([])(words, references))
        return handed[-1]

    words, references = torch.tensor([7, 8]), torch.tensor([4, 4])
    first = index.anchor_chains("key", words, references, compute)
    handed[0].fill_(-1)
    first.fill_(-2)
    again = index.anchor_chains("key", words, references, compute)
    assert len(handed) == 1 and again.dtype == torch.long
    assert torch.equal(again, _chain_maker([])(words, references))
