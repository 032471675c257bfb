"""The vocabulary index: exact searches, the under-trained filter, and a disk cache that is never trusted blindly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import udig.kernels
from udig.kernels import int8_error_weights, products_with_rows, screen_segments
from udig.paths import udig_reference_alphas
from udig.vocab import (
    COMPILE_ORDER,
    WARM_METHODS,
    WARM_PARTS,
    VocabIndex,
    hold_int8_screen,
    int8_codes,
    knn_graph,
    nearest_by_products,
    otsu_threshold,
    vocab_index_for,
    warm_up,
)
from udig.vocab import chains as chains_module
from udig.vocab import graph as graph_module
from udig.vocab import int8 as int8_module
from udig.vocab import nearest as nearest_module
from udig.vocab import words as words_module

ROOT = Path(__file__).resolve().parent.parent


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
    every_row = torch.arange(len(embeddings))
    on_device = graph_module._knn_graph_on(embeddings, every_row, key_ids, 6, torch.device("cpu"))
    assert on_device.dtype == torch.int32 and torch.equal(on_device, knn_graph(embeddings, 6, allowed))
    tied = torch.zeros(12, 4)
    tied[:, 0] = torch.tensor([0.0, 1, 1, 1, 2, 2, 3, 3, 3, 3, 4, 5])  # rows at equal distances from many others
    expected = knn_graph(tied, 5, torch.ones(12, dtype=torch.bool))
    every_row = torch.arange(12)
    assert torch.equal(graph_module._knn_graph_on(tied, every_row, every_row, 5, torch.device("cpu")), expected)
    assert expected[0].tolist() == [1, 2, 3, 4, 5]  # equal distances in id order


def test_graph_builds_on_the_device_it_is_given(tiny, tmp_path, monkeypatch):
    """A GPU device reaches the torch build; none, or the CPU, keeps the compiled CPU build."""
    seen = []
    monkeypatch.setattr(
        graph_module,
        "_knn_graph_on",
        lambda rows, query_ids, key_ids, k, device: (
            seen.append(device) or torch.zeros(len(query_ids), k, dtype=torch.int32)
        ),
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
    allowed[0] = False
    knn_graph(embeddings, 3, allowed, "cuda:0")  # the keys' rows, then the other row's: both there
    assert seen[2:] == [torch.device("cuda:0")] * 2


def test_knn_graph_on_minilm_rows_finds_the_nearest(minilm, monkeypatch):
    """Real rows, several blocks: the graph's distances are the k smallest (in float64), in order."""
    monkeypatch.setattr(graph_module, "_BLOCK", 1024)
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


def _score_bound(rows: np.ndarray, row: int, keys: np.ndarray) -> np.ndarray:
    """knn_graph's stated bound on how far each key's float32 score for ``row`` is from the exact one."""
    norms = np.linalg.norm(rows.astype(np.float64), axis=1)
    return (rows.shape[1] + 2) * 2.0**-24 * (1 + 2.0**-10) * (norms[row] * norms[keys] + norms[keys] ** 2)


def _assert_ranked_as_float64(
    rows: np.ndarray, allowed: np.ndarray, graph: np.ndarray, exact_ties: bool, checked: np.ndarray | None = None
) -> None:
    """Each graph row against the float64 ranking of ``e . key - |key|^2 / 2``: its keys allowed, distinct and
    not itself; two keys in the wrong order, or a key left out for a worse one, only where their float64
    scores are within the sum of their bounds (:func:`_score_bound`); equal scores in id order. With
    ``exact_ties`` (small integer rows, whose float32 scores are exact) the graph must be that ranking exactly.
    ``checked``: the rows to check (all by default)."""
    exact = rows.astype(np.float64)
    keys = np.flatnonzero(allowed)
    for row in range(len(rows)) if checked is None else checked:
        listed = graph[row].astype(np.int64)
        assert allowed[listed].all() and row not in listed and len(set(listed.tolist())) == len(listed)
        scores = exact[keys] @ exact[row] - 0.5 * np.square(exact[keys]).sum(1)
        others = keys != row
        order = np.lexsort((keys[others], -scores[others]))  # float64 score, then id
        if exact_ties:
            np.testing.assert_array_equal(listed, keys[others][order][: graph.shape[1]])
            continue
        score_of, bound_of = dict(zip(keys, scores)), dict(zip(keys, _score_bound(rows, row, keys)))
        for first, second in zip(listed[:-1], listed[1:]):
            assert score_of[first] >= score_of[second] - bound_of[first] - bound_of[second]
        last = listed[-1]
        left_out = np.setdiff1d(keys[others], listed)
        worst_ok = score_of[last] + bound_of[last] + np.array([bound_of[c] for c in left_out])
        assert (np.array([score_of[c] for c in left_out]) <= worst_ok).all()


@pytest.mark.parametrize("block", [4096, 64, 37])  # one block; several; several with a short last one
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_knn_graph_ranks_as_float64_with_planted_ties(monkeypatch, block, threads):
    """Small integer rows (their float32 products and scores are exact): the graph is the exact ranking, equal
    distances in id order, whatever the blocks and threads; many rows are equal or at equal distances, and
    rows that are not keys (outside the real-word set) have their own products."""
    monkeypatch.setattr(graph_module, "_BLOCK", block)
    generator = np.random.default_rng(block + threads)
    rows = generator.integers(-2, 3, (300, 8)).astype(np.float32)
    rows[100:140] = rows[0]  # 40 copies of one row
    rows[140:160, :2] = 0  # rows at equal distances from many
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for allowed in (np.ones(300, bool), generator.random(300) < 0.7):
            graph = knn_graph(torch.from_numpy(rows), 60, torch.from_numpy(allowed)).numpy()
            _assert_ranked_as_float64(rows, allowed, graph, exact_ties=True)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("block", [4096, 50])
def test_knn_graph_ranks_as_float64_up_to_the_stated_bound(monkeypatch, block):
    """Random float rows, near ties included (rows an ulp apart): the graph agrees with the float64 ranking
    except between keys whose float64 scores lie within the stated bound of each other."""
    monkeypatch.setattr(graph_module, "_BLOCK", block)
    generator = np.random.default_rng(block)
    rows = generator.standard_normal((400, 24)).astype(np.float32)
    rows[200:220] = np.nextafter(rows[180:200], np.float32(np.inf))
    allowed = generator.random(400) < 0.8
    graph = knn_graph(torch.from_numpy(rows), 50, torch.from_numpy(allowed)).numpy()
    _assert_ranked_as_float64(rows, allowed, graph, exact_ties=False)


@pytest.mark.slow
@pytest.mark.parametrize("candidate_set", ["all", "words"])
def test_knn_graph_of_minilm_ranks_as_float64_up_to_the_stated_bound(minilm, candidate_set):
    """The default model's whole graph (30,522 rows, k = 500), checked on 150 rows against float64."""
    model, tokenizer = minilm
    embeddings = model.get_input_embeddings().weight.detach()
    allowed = vocab_index_for(model, tokenizer).candidate_mask(candidate_set)
    graph = knn_graph(embeddings, 500, allowed).numpy()
    checked = np.random.default_rng(0).choice(len(graph), 150, replace=False)
    _assert_ranked_as_float64(embeddings.numpy(), allowed.numpy(), graph, exact_ties=False, checked=checked)


@pytest.mark.parametrize(("n_rows", "k"), [(2, 1), (3, 2), (9, 8)])
def test_knn_graph_on_the_fewest_rows_it_accepts(n_rows, k):
    """k = rows - 1: every other row, in distance order; one more is refused."""
    rows = torch.arange(n_rows, dtype=torch.float32)[:, None] ** 2  # distinct distances
    graph = knn_graph(rows, k, torch.ones(n_rows, dtype=torch.bool))
    for row in range(n_rows):
        others = [c for c in range(n_rows) if c != row]
        assert graph[row].tolist() == sorted(others, key=lambda c: (abs(rows[c, 0] - rows[row, 0]), c))
    with pytest.raises(ValueError, match="graph_k"):
        knn_graph(rows, n_rows, torch.ones(n_rows, dtype=torch.bool))


@pytest.mark.parametrize("capacity", [12, 40])
def test_collected_candidates_give_the_k_best_however_the_block_is_cut(capacity):
    """The graph kernels alone: blocks of one product matrix offered as one block, as tiles over several
    threads, and with buffers so small that they compact again and again (and all scores equal in one row)
    give each row its k best scores, equal scores in key order."""
    from udig.kernels import collect_block, empty_candidates, top_k_of_rows

    generator = np.random.default_rng(capacity)
    k, n = 5, 30
    products = np.round(generator.standard_normal((n, n)) * 4).astype(np.float32)
    products = products + products.T  # symmetric, many equal
    products[3] = products[:, 3] = 1.0  # row 3's scores all equal (with half = 0)
    half = np.zeros(n, np.float32)
    ids = np.arange(n)
    expected = np.empty((n, k), np.int32)
    for row in range(n):
        others = ids[ids != row]
        expected[row] = others[np.lexsort((others, -products[row, others]))][:k]
    for parts, cut in [(1, n), (2, n), (3, 7), (2, 13)]:
        candidates = empty_candidates(n, capacity)
        for i in range(0, n, cut):
            for j in range(i, n, cut):
                block = np.ascontiguousarray(products[i : i + cut, j : j + cut])
                both = i != j
                rows, columns = ids[i : i + cut], ids[j : j + cut]
                collect_block(
                    block, rows, half[rows], rows, columns, half[columns], columns, both, candidates, k, parts
                )
        out = np.empty((n, k), np.int32)
        top_k_of_rows(candidates, k, out)
        np.testing.assert_array_equal(out, expected, err_msg=f"parts={parts} cut={cut}")


def test_selection_and_sorts_equal_numpys():
    """The kernels' own selection, quicksort, radix sort and threshold guesses, on ties, sorted input and the
    smallest sizes."""
    from udig.kernels.common import _select, _sort
    from udig.kernels.graph import _at_most_kth_largest, _radix_sort
    from udig.kernels.search import _at_least_kth_smallest

    generator = np.random.default_rng(0)
    counts = np.empty((8, 256), np.int64)
    for trial in range(400):
        n = int(generator.integers(1, 400))
        values = [
            generator.standard_normal(n),
            generator.integers(0, 4, n).astype(float),  # many ties
            np.sort(generator.standard_normal(n)),
        ][trial % 3].astype(np.float32)
        k = int(generator.integers(0, n))
        scratch = values.copy()
        assert _select(scratch, k) == np.sort(values)[k] and sorted(scratch.tolist()) == sorted(values.tolist())
        assert (scratch[:k] <= scratch[k]).all() and (scratch[k:] >= scratch[k]).all()
        at_least = int(generator.integers(1, n + 1))
        low = _at_most_kth_largest(values, at_least)
        assert (values >= low).sum() >= at_least and low <= np.sort(values)[::-1][at_least - 1]
        high = _at_least_kth_smallest(values, at_least)
        assert (values <= high).sum() >= at_least and high >= np.sort(values)[at_least - 1]
        keys = generator.integers(0, 2**63, n).astype(np.uint64)
        if trial % 2:
            keys = keys >> np.uint64(50)  # few distinct bytes, and ties
        by_quicksort, by_radix = keys.copy(), keys.copy()
        _sort(by_quicksort)
        _radix_sort(by_radix, np.empty(n, np.uint64), counts)
        np.testing.assert_array_equal(by_quicksort, np.sort(keys))
        np.testing.assert_array_equal(by_radix, np.sort(keys))


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


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_kernels_share_their_items_over_as_many_threads_as_torch(threads):
    """Each kernel's items are cut into one contiguous range per torch thread (at most one per item), all of
    them covered once and run at the same time, one on the caller's thread (each range waits here until every
    range has started)."""
    from udig.kernels.common import run

    seen, lock = [], threading.Lock()

    def kernel(started, lo, hi):
        with lock:
            seen.append((lo, hi, threading.get_ident()))
        started.wait(timeout=10)

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for n_items in (1, 2, 7):
            seen.clear()
            parts = min(threads, n_items)
            run(kernel, n_items, threading.Barrier(parts))
            ranges = sorted((lo, hi) for lo, hi, _ in seen)
            assert len(ranges) == parts and ranges[0][0] == 0 and ranges[-1][1] == n_items
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
            idents = {ident for *_, ident in seen}
            assert len(idents) == parts and threading.get_ident() in idents
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_warm_up_compiles_every_kernel_a_request_runs(tiny, tmp_path):
    """In a new process with an empty numba cache: after warm_up, DIG and UDIG requests under both strategies
    and both candidate sets compile nothing (a request passing other types would compile its own kernels)."""
    model, tokenizer = tiny
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    script = f"""
import json
from numba.core import event
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from udig import Explainer
from udig.vocab import warm_up
seconds = warm_up()
model = AutoModelForSequenceClassification.from_pretrained({str(tmp_path / "model")!r}).eval()
explainer = Explainer(model, AutoTokenizer.from_pretrained({str(tmp_path / "model")!r}), graph_k=4)
with event.install_recorder("numba:compile") as record:
    for strategy in ("greedy", "maxcount"):
        for candidates in ("all", "words"):
            settings = dict(strategy=strategy, candidates=candidates, steps=4)
            explainer.explain("a gorgeous film", method="udig", nbrs=3, **settings)
            explainer.explain("a gorgeous film", method="dig", **settings)
compiled = sorted({{event.data["dispatcher"].py_func.__qualname__ for _, event in record.buffer}})
print(json.dumps(dict(seconds=seconds, compiled=compiled)))
"""
    environment = os.environ | {"NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=environment, cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result["seconds"]) == {"udig", "dig"} and result["compiled"] == []


@pytest.mark.slow
def test_kernels_called_at_once_on_an_empty_cache_compile_once(tmp_path):
    """Two threads build a graph at the same moment in a new process with an empty numba cache (a request
    arriving during the warm-up): neither waits forever, each kernel compiles once for each of its types
    (the other thread waits at numba's compile lock, then uses that machine code), and both graphs are right.
    udig's own functions are counted: numba's generic helpers may compile again inside each kernel."""
    script = """
import json, threading
import numpy as np, torch
from numba.core import event
from udig.vocab import knn_graph
rows = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
allowed = torch.ones(64, dtype=torch.bool)
start, graphs = threading.Barrier(2), [None, None]
def build(slot):
    start.wait()
    graphs[slot] = knn_graph(rows, 4, allowed).numpy()
with event.install_recorder("numba:compile") as record:
    threads = [threading.Thread(target=build, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
compiled = [
    f"{happening.data['dispatcher'].py_func.__qualname__}{happening.data['args']}"
    for _, happening in record.buffer
    if happening.is_start and happening.data["dispatcher"].py_func.__module__.startswith("udig.")
]
distances = torch.cdist(rows.double(), rows.double()).fill_diagonal_(float("inf")).numpy()
nearest = np.argsort(distances, axis=1, kind="stable")[:, :4]
print(json.dumps(dict(compiled=compiled, right=[bool((graph == nearest).all()) for graph in graphs])))
"""
    environment = os.environ | {"NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=environment, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["right"] == [True, True]
    assert any(name.startswith("_collect") for name in result["compiled"])  # the cache was empty
    assert len(result["compiled"]) == len(set(result["compiled"])), result["compiled"]


def test_warm_up_refuses_a_method_it_does_not_know():
    with pytest.raises(ValueError, match="cannot warm up"):
        warm_up(("ig",))


def test_the_compile_order_names_every_part_of_each_method_once():
    assert sorted(COMPILE_ORDER) == sorted(part for parts in WARM_PARTS.values() for part in parts)
    assert set(WARM_PARTS) == set(WARM_METHODS)
    assert COMPILE_ORDER[:2] == WARM_PARTS["udig"][:2]  # a first UDIG request's search and chains come first


def test_prepare_does_what_a_first_request_would(tiny, tmp_path, monkeypatch):
    index = _index(tiny, tmp_path)
    calls = []
    real = graph_module.key_graph
    monkeypatch.setattr(graph_module, "key_graph", lambda *a: calls.append(a) or real(*a))
    seconds = index.prepare(("all", "words"), graph_k=4)
    assert set(seconds) == {"words", "search", "graph"} and index.graphs.built() == [(4, "all"), (4, "words")]
    index.graph(4, "words")
    assert len(calls) == 2  # built once, by prepare
    assert set(index.prepare(("words",))) == {"words", "search"}
    with pytest.raises(ValueError, match="candidate set"):
        index.prepare(("nouns",))


@pytest.mark.parametrize("m", [1, 5, 30])
def test_nearest_on_segments_equals_brute_force(minilm, m):
    model, tokenizer = minilm
    index = vocab_index_for(model, tokenizer)
    table = index.embeddings
    starts = table[[103, 103, 0, 103]]
    ends = table[[2204, 6659, 3185, 2204]]  # the last segment repeats the first: searched once, returned twice
    alphas = udig_reference_alphas(m)
    for candidate_set in ("all", "words"):
        found = index.nearest_on_segments(starts, ends, alphas, 12, candidate_set)
        allowed = index.candidate_mask(candidate_set)
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
        for candidate_set in ("all", "words"):
            candidates = index.candidate_rows(candidate_set)
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
            found = index.nearest_on_segments(table[refs], table[word_ids], alphas, k, candidate_set)
            positions = found if key_ids is None else torch.searchsorted(key_ids, found)
            assert torch.equal(rank.gather(2, positions), rank.gather(2, tensor_version)), (m, k, candidate_set)
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
            for candidate_set in ("all", "words"):
                monkeypatch.setattr(int8_module, "_INT8_PRODUCT", "none")
                whole = index.nearest_on_segments(starts, ends, alphas, k, candidate_set)
                monkeypatch.setattr(int8_module, "_INT8_PRODUCT", product)
                screened = index.nearest_on_segments(starts, ends, alphas, k, candidate_set)
                assert torch.equal(screened, whole), (text, m, k, candidate_set)


def test_a_held_screen_is_skipped_and_finds_the_same_words(minilm, monkeypatch):
    """While a server holds the int8 screen (its kernel compiling in another process), searches neither run
    nor compile it, nor code the rows, and find the same ids, ties included; released, the screen runs again."""
    model, tokenizer = minilm
    table = vocab_index_for(model, tokenizer).embeddings
    rows = nearest_module.CandidateRows(table, table.square().sum(1), None)  # fresh: no int8 codes yet
    word_ids = torch.tensor(tokenizer("a dull, tired and joyless film", add_special_tokens=False)["input_ids"])
    starts, ends, alphas = table[torch.full_like(word_ids, 103)], table[word_ids], udig_reference_alphas(30)
    screened = []
    real_screen = udig.kernels.screen_segments
    monkeypatch.setattr(udig.kernels, "screen_segments", lambda *a: screened.append(1) or real_screen(*a))
    monkeypatch.setattr(int8_module, "_INT8_PRODUCT", "int_mm")
    try:
        hold_int8_screen(True)
        held = rows.nearest_on_segments(starts, ends, alphas, 50)
        assert screened == [] and rows._int8 == {}
    finally:
        hold_int8_screen(False)
    assert torch.equal(rows.nearest_on_segments(starts, ends, alphas, 50), held) and screened == [1]
    assert torch.equal(rows.nearest_on_segments(starts, ends, alphas, 50, screen=False), held) and screened == [1]


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
    for candidate_set in ("all", "words"):
        compiled = index.nearest_on_segments(starts, ends, alphas, 50, candidate_set)
        monkeypatch.setattr(nearest_module, "_compiled_search", lambda device: False)
        tensor = index.nearest_on_segments(starts, ends, alphas, 50, candidate_set)
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
    real = graph_module.key_graph
    monkeypatch.setattr(graph_module, "key_graph", lambda *a: calls.append(a) or real(*a))
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
    monkeypatch.setattr(graph_module, "key_graph", lambda *a: calls.append(a) or first)
    second = _index(tiny, tmp_path).graph(6, "all")
    assert torch.equal(first, second) and calls == []


def test_rows_outside_the_candidates_are_ranked_when_asked_for_and_only_then(tiny, tmp_path, monkeypatch):
    """The build ranks the candidate rows (keys) only; another row is ranked the first time it is asked for,
    as the whole graph ranks it, whichever rows come with it, and is kept; the disk cache holds the keys' rows."""
    embeddings = tiny[0].get_input_embeddings().weight.detach()
    index = _index(tiny, tmp_path)
    allowed = index.candidate_mask("words")
    others = (~allowed).nonzero().squeeze(1)
    assert 3 <= len(others) < len(allowed)  # the tiny vocabulary has rows outside its real words
    whole = knn_graph(embeddings, 4, allowed)
    assert allowed[whole.long()].all()

    graph = index.graph(4, "words", rows=())
    assert torch.equal(graph[allowed], whole[allowed]) and (graph[~allowed] == -1).all()
    saved = index.graphs._load(index.graphs.path(4, "words"), 4, "words")
    assert saved.shape == (int(allowed.sum()), 4) and torch.equal(saved, whole[allowed])

    ranked = []
    real = graph_module.rank_rows
    monkeypatch.setattr(graph_module, "rank_rows", lambda r, ids, *a: ranked.append(ids.tolist()) or real(r, ids, *a))
    key = int(allowed.nonzero()[0])
    graph = index.graph(4, "words", rows=torch.tensor([others[1], key, others[1]]))
    assert torch.equal(graph[others[1]], whole[others[1]]) and (graph[others[2:]] == -1).all()
    index.graph(4, "words", rows=others[:2])
    assert ranked == [[int(others[1])], [int(others[0])]]  # each row once; keys never
    monkeypatch.setattr(graph_module, "_RANK_CHUNK", 2)  # several chunks: the same rows
    assert torch.equal(_index(tiny, tmp_path).graph(4, "words"), whole)  # keys from the cache, the rest ranked
    with pytest.raises(ValueError, match="outside"):
        index.graph(4, "words", rows=[len(allowed)])


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "other-k", "old-format"])
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
    elif damage == "old-format":  # a graph saved by an older build (another ranking) under this name
        from safetensors.torch import save_file

        stale = good.roll(1, dims=1)
        save_file({"graph": stale}, str(path), metadata=index.graphs._metadata(stale, 6, "all") | {"format": "2"})
    else:  # a file that verifies as a graph, but of another k, under this name
        other = _index(tiny, tmp_path / "other").graph(5, "all")
        path.write_bytes(_index(tiny, tmp_path / "other").graphs.path(5, "all").read_bytes())
        assert other.shape[1] == 5
    rebuilt = _index(tiny, tmp_path).graph(6, "all")
    assert torch.equal(rebuilt, good)
    assert torch.equal(_index(tiny, tmp_path).graph(6, "all"), good)  # and the cache was repaired


def test_two_threads_build_the_graph_once(tiny, tmp_path, monkeypatch):
    index = _index(tiny, tmp_path)
    real = graph_module.key_graph
    calls = []
    barrier = threading.Barrier(2)

    def slow_build(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(graph_module, "key_graph", slow_build)
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
    real = graph_module.key_graph
    building, release = threading.Event(), threading.Event()

    def held_build(embeddings, k, allowed, *device):
        if k == 6:  # hold only the first graph's build
            building.set()
            assert release.wait(timeout=30)
        return real(embeddings, k, allowed, *device)

    monkeypatch.setattr(graph_module, "key_graph", held_build)
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
    with pytest.raises(ValueError, match="candidate set"):
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


_CACHE_USE = """
import json, numba
from udig.vocab import warm_up
warm_up()
from udig.kernels import chains, common, graph, search
hits = misses = 0
for module in (chains, common, graph, search):
    for kernel in vars(module).values():
        if isinstance(kernel, numba.core.registry.CPUDispatcher):
            hits += sum(kernel.stats.cache_hits.values())
            misses += sum(kernel.stats.cache_misses.values())
print(json.dumps([hits, misses]))
"""


@pytest.mark.slow  # compiles every kernel once from an empty cache (10-20 s)
def test_python_m_udig_vocab_compiles_what_a_later_process_only_loads(tmp_path):
    """``python -m udig.vocab`` (started by app.py before its own imports) leaves in numba's disk cache every
    kernel a request needs: a later process's warm_up compiles nothing and loads them all from the cache."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "udig.vocab"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == list(COMPILE_ORDER)  # a line per part, in order
    later = subprocess.run([sys.executable, "-c", _CACHE_USE], env=env, capture_output=True, text=True, timeout=600)
    assert later.returncode == 0, later.stderr
    hits, misses = json.loads(later.stdout.splitlines()[-1])
    assert misses == 0 and hits >= 8  # every kernel of both methods, none compiled again


def test_python_m_udig_vocab_refuses_unknown_methods():
    done = subprocess.run(
        [sys.executable, "-m", "udig.vocab", "udig", "nope"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "nope" in done.stderr and not done.stdout


def test_python_m_udig_vocab_compiles_the_parts_no_request_waits_for_last_at_the_lowest_priority(monkeypatch):
    """The int8 screen (no first request needs it) compiles at nice 19, and only once the parts before it are
    done: on two cores it must not slow a first DIG request running beside it."""
    from udig.vocab import __main__ as compiler

    happened = []
    monkeypatch.setattr(compiler, "warm_up", lambda names: happened.append(names[0]) or {names[0]: 0.0})
    monkeypatch.setattr(compiler.os, "nice", lambda increment: happened.append(f"nice {increment}"), raising=False)
    assert compiler.main([]) == 0
    assert happened == [*COMPILE_ORDER[:-1], "nice 19", "udig-screen"] and COMPILE_ORDER[-1] == "udig-screen"
    happened.clear()
    assert compiler.main(["dig-graph", "udig"]) == 0
    assert happened == ["dig-graph", "udig"]  # a method name is not lowered: its search is what a request waits for


def test_the_kernel_compiler_imports_no_torch_before_udigs_screen():
    """``python -m udig.vocab`` runs beside the server's own imports at a cold start: every part a first request
    waits for compiles (here: loads) without importing torch (0.9 s); the screen's int8 products need it."""
    script = """
import sys
from udig.vocab.__main__ import main
main([part for part in __import__("udig.vocab").vocab.COMPILE_ORDER if part != "udig-screen"])
print("torch loaded:", "torch" in sys.modules)
main(["udig-screen"])
print("torch loaded:", "torch" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = [line for line in done.stdout.splitlines() if line.startswith("torch loaded:")]
    assert loaded == ["torch loaded: False", "torch loaded: True"], done.stdout
