"""Faithfulness metrics and path diagnostics for one :class:`~udig.explanation.Explanation`.

Faithfulness follows the DIG paper (Sanyal & Ren, EMNLP 2021, and their ``metrics.py``), which the
UDIG paper (Roy & Kundu 2024) reuses. Everything is computed on token ids: a perturbed input is a list of
vocabulary ids fed to the model, and every perturbed input of one explanation goes through the model in
one padded forward pass (the original input included, so p and p' come from the same call).

Conventions, exactly:

* ``k = floor(L * topk / 100)`` where ``L`` counts every token, special tokens included.
* The top-k tokens are the k largest *signed* attributions (ties: the earlier position first). Special
  tokens have attribution exactly 0 in every method here, so they are chosen only when the rule reaches
  them (fewer than k other tokens score above 0); nothing is forced in or out.
* **Classification.** ŷ is the class predicted on the original input and p = softmax(logits)[ŷ]. The
  explanation must attribute ŷ (``explanation.target == ŷ``); an explanation of another class is refused,
  because its top-k tokens are evidence for a different output.

  - log-odds ``= log p'(ŷ) - log p(ŷ)``, the top-k tokens replaced *in place* by [PAD]. Lower is better.
  - comprehensiveness ``= p(ŷ) - p'(ŷ)``, the top-k tokens deleted and the rest re-packed (positions
    0..L-k-1). Higher is better. If nothing is left (k = L) the model has no input to read; p'(ŷ) is then
    taken as chance, 1/C.
  - sufficiency ``= p(ŷ) - p'(ŷ)``, *only* the top-k tokens kept, re-packed. As in the DIG code
    (``eval_sufficiency`` keeps exactly the top-k positions), [CLS]/[SEP] are not added back unless the
    rule chose them. 0 when k = 0. Lower is better.
  - AOPC comprehensiveness and sufficiency (ERASER, DeYoung et al., ACL 2020): the same two scores averaged
    over the cut-offs 1, 5, 10, 20 and 50 % (:data:`AOPC_CUTOFFS`), each cut-off's k by the rule above (so a
    short input's 1 % bin has k = 0 and scores 0 in both): the mean of the five bins, independent of ``topk``.
    The paper writes the average as 1/(|B|+1) times the sum; ERASER's released scorer
    (``rationale_benchmark/metrics.py``, ``_instances_aopc``) takes the plain mean over the |B| bins, and so
    do we, so that our numbers compare with the scorer's.

* **Extractive QA.** Positions must stay comparable, so nothing is deleted: tokens are *replaced* by [MASK]
  and the sequence keeps its length. ŷ is the predicted answer's start position for the start explanation
  (its end position for the end explanation), i.e. ``explanation.target``, and p is the softmax over all
  positions of the start (end) logits. Log-odds and comprehensiveness mask the top-k tokens; sufficiency
  masks every other token, special tokens included (the same literal rule as for classification).
  Token-type ids (question 0, context 1) are kept as they were.

Path diagnostics (IG, DIG, UDIG): the completeness error ``|Δ|`` and ``|Δ| / |F(x) - F(x')|``; the
word-approximation error (WAE), the mean over every point of every moving (non-special) token's path of the
Euclidean distance to the nearest vocabulary row (the set "all"), and the same to the nearest *real word* row
(the set "words", see :mod:`udig.vocab`); and the share of DIG/UDIG anchors that are real words.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from fractions import Fraction

import torch
from torch import Tensor

from .explanation import Explanation, QAExplanation
from .tasks import Variant, get_task
from .vocab import VocabIndex

DEFAULT_TOPK = 20
AOPC_CUTOFFS = (1, 5, 10, 20, 50)  # ERASER's bins, in percent of the tokens


@dataclass(frozen=True)
class MetricInfo:
    """How one score reads: the renderers, the demo and the CLI derive their labels from this."""

    key: str
    name: str
    short: str  # for chart labels
    better: str  # "lower", "higher" or "closer to 0"
    meaning: str

    @property
    def arrow(self) -> str:
        return {"lower": "↓", "higher": "↑"}.get(self.better, "")


FAITHFULNESS: tuple[MetricInfo, ...] = (
    MetricInfo(
        "log_odds",
        "Log-odds",
        "log-odds",
        "lower",
        "change in log-probability of the label when the top 20 % tokens are replaced by [PAD]",
    ),
    MetricInfo(
        "comprehensiveness",
        "Comprehensiveness",
        "compr.",
        "higher",
        "drop in the label's probability when the top 20 % tokens are deleted",
    ),
    MetricInfo(
        "sufficiency",
        "Sufficiency",
        "suff.",
        "lower",
        "drop in the label's probability when only the top 20 % tokens are kept",
    ),
    MetricInfo(
        "aopc_comprehensiveness",
        "AOPC comprehensiveness",
        "AOPC compr.",
        "higher",
        "comprehensiveness averaged over the top 1, 5, 10, 20 and 50 % (ERASER)",
    ),
    MetricInfo(
        "aopc_sufficiency",
        "AOPC sufficiency",
        "AOPC suff.",
        "lower",
        "sufficiency averaged over the top 1, 5, 10, 20 and 50 % (ERASER)",
    ),
)
COMPLETENESS = MetricInfo(
    "completeness_error",
    "Completeness error |Δ|",
    "|Δ|",
    "closer to 0",
    "|sum of attributions − (F(input) − F(baseline))|: how well the path integral adds up",
)
SCORES: tuple[MetricInfo, ...] = (*FAITHFULNESS, COMPLETENESS)  # what one explanation is shown with
FAITHFULNESS_KEYS = tuple(m.key for m in FAITHFULNESS)
AOPC_KEYS = ("aopc_comprehensiveness", "aopc_sufficiency")
METRIC_INFO: dict[str, MetricInfo] = {m.key: m for m in SCORES}


@dataclass(frozen=True)
class Faithfulness:
    """The three DIG-paper metrics and ERASER's two AOPC metrics for one explanation, plus what they were
    computed from."""

    log_odds: float  # lower is better
    comprehensiveness: float  # higher is better
    sufficiency: float  # lower is better
    aopc_comprehensiveness: float  # higher is better
    aopc_sufficiency: float  # lower is better
    k: int  # tokens perturbed
    length: int  # L, special tokens included
    label: int  # ŷ: predicted class, or predicted start/end position for QA
    prob: float  # p(ŷ) on the original input
    top: tuple[int, ...]  # positions of the top-k tokens, ascending
    aopc_k: tuple[int, ...]  # k at each of AOPC_CUTOFFS

    def to_dict(self) -> dict:
        data = asdict(self)
        data["top"], data["aopc_k"] = list(self.top), list(self.aopc_k)
        return data


@dataclass(frozen=True)
class PathQuality:
    """How well a path integral went: completeness error and how close the path stays to real words."""

    delta: float | None  # |Δ|; None for methods without a path
    relative_delta: float | None  # |Δ| / |F(x) - F(x')|; None when F(x) = F(x') or there is no path
    wae: float | None  # mean distance of path points to the nearest vocabulary row
    wae_words: float | None  # ... to the nearest real-word row
    real_word_share: float | None  # share of DIG/UDIG anchors that are real words; None for IG

    def to_dict(self) -> dict:
        return asdict(self)


DIAGNOSTICS = tuple(f.name for f in fields(PathQuality))  # what an evaluation record reports beside faithfulness


# -- the top-k rule ------------------------------------------------------------------------------------


def top_k_count(length: int, topk: float = DEFAULT_TOPK) -> int:
    """``floor(length * topk / 100)``, exact for decimal percentages (20.0, 12.5, ...)."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"length must be a non-negative integer, got {length!r}")
    if isinstance(topk, bool) or not isinstance(topk, (int, float)) or not 0 <= topk <= 100:
        raise ValueError(f"topk must be a percentage from 0 to 100, got {topk!r}")
    return math.floor(Fraction(str(topk)) * length / 100)


def top_k_positions(attributions: Sequence[float], k: int) -> list[int]:
    """Positions of the k largest signed attributions, ascending; ties go to the earlier position."""
    if not 0 <= k <= len(attributions):
        raise ValueError(f"k must lie in [0, {len(attributions)}], got {k}")
    scores = torch.as_tensor(list(attributions), dtype=torch.float64)
    order = torch.sort(scores, descending=True, stable=True).indices
    return sorted(order[:k].tolist())


# -- faithfulness ------------------------------------------------------------------------------------


def faithfulness(
    explanation: Explanation, model: torch.nn.Module, tokenizer, *, topk: float = DEFAULT_TOPK
) -> Faithfulness:
    """Log-odds, comprehensiveness and sufficiency at ``topk`` %, and comprehensiveness and sufficiency as AOPC
    over :data:`AOPC_CUTOFFS`, of one explanation (see the module docstring).

    The task adapter says how the input is perturbed and which output ŷ is followed; every perturbed input
    of every cut-off goes through the model in one padded forward pass.
    """
    if not isinstance(explanation, Explanation):
        raise TypeError(
            f"faithfulness takes one Explanation, got {type(explanation).__name__}; "
            "for QA score .start and .end separately (or use qa_faithfulness)"
        )
    task = get_task(explanation.task)
    ids = torch.tensor(explanation.input_ids, dtype=torch.long)  # (L,)
    length = len(ids)
    uses_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
    types = task.token_types(explanation) if uses_types else None
    ks = [top_k_count(length, cut) for cut in (topk, *AOPC_CUTOFFS)]
    tops = {k: top_k_positions(explanation.attributions, k) for k in ks}
    variants = {k: task.perturbations(ids, _chosen(length, tops[k]), types, tokenizer) for k in tops}
    rows = {
        _row_key(v): v for per_k in variants.values() for v in per_k.values() if len(v[0]) > 0
    }  # distinct, non-empty
    logits = _forward(
        model, tokenizer, list(rows.values()), uses_types, explanation.output
    )  # (R, C) classes, or (R, L) positions
    by_row = dict(zip(rows, logits.log_softmax(-1)))
    chance = torch.tensor(-math.log(logits.shape[1]))  # p'(ŷ) when every token was deleted
    original = by_row[_row_key(variants[ks[0]]["original"])]
    label = task.scored_label(explanation, original)
    log_p = original[label]
    p = float(log_p.exp())

    def log_prob(k: int, name: str) -> Tensor:
        key = _row_key(variants[k][name])
        return by_row[key][label] if key in by_row else chance

    def comprehensiveness(k: int) -> float:
        return p - float(log_prob(k, "comprehensiveness").exp())

    def sufficiency(k: int) -> float:
        return 0.0 if k == 0 else p - float(log_prob(k, "sufficiency").exp())

    k, cut_ks = ks[0], ks[1:]
    return Faithfulness(
        log_odds=float(log_prob(k, "log_odds") - log_p),
        comprehensiveness=comprehensiveness(k),
        sufficiency=sufficiency(k),
        aopc_comprehensiveness=sum(map(comprehensiveness, cut_ks)) / len(cut_ks),
        aopc_sufficiency=sum(map(sufficiency, cut_ks)) / len(cut_ks),
        k=k,
        length=length,
        label=int(label),
        prob=p,
        top=tuple(tops[k]),
        aopc_k=tuple(cut_ks),
    )


def _chosen(length: int, positions: list[int]) -> Tensor:
    chosen = torch.zeros(length, dtype=torch.bool)
    chosen[positions] = True
    return chosen


def _row_key(variant: Variant) -> tuple:
    """A perturbed input by content, so equal inputs of different cut-offs go through the model once."""
    ids, types = variant
    return tuple(ids.tolist()), None if types is None else tuple(types.tolist())


def qa_faithfulness(
    explanation: QAExplanation, model, tokenizer, *, topk: float = DEFAULT_TOPK
) -> dict[str, Faithfulness]:
    """Start and end explanations of a QA answer, each scored against its own predicted position."""
    return {
        "start": faithfulness(explanation.start, model, tokenizer, topk=topk),
        "end": faithfulness(explanation.end, model, tokenizer, topk=topk),
    }


def _forward(model, tokenizer, rows: list[Variant], with_types: bool, output: str) -> Tensor:
    """One forward pass over ``(ids, token types)`` rows of any lengths, right-padded: ``(R, ...)`` float logits."""
    device = next(model.parameters()).device
    width = max(len(ids) for ids, _ in rows)
    pad_id = getattr(tokenizer, "pad_token_id", None) or 0
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (row, _) in enumerate(rows):
        ids[r, : len(row)] = row
        attention[r, : len(row)] = 1
    inputs = {"input_ids": ids.to(device), "attention_mask": attention.to(device)}
    if with_types:
        token_types = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (_, row_types) in enumerate(rows):
            token_types[r, : len(row_types)] = row_types
        inputs["token_type_ids"] = token_types.to(device)
    with torch.no_grad():
        out = model(**inputs)
    logits = getattr(out, output).float()
    if output != "logits" and width != min(len(ids) for ids, _ in rows):
        raise ValueError("QA rows must all keep the input's length")
    return logits.cpu()


# -- path diagnostics --------------------------------------------------------------------------------


def word_approximation_error(
    path: Tensor,
    special_mask: Sequence[bool],
    vocab: VocabIndex,
    candidate_sets: Sequence[str] = ("all", "words"),
    cache: dict | None = None,
) -> dict[str, float]:
    """WAE: mean over all points ``(N, L, d)`` of the moving tokens of the distance to the nearest row.

    Every point counts, the two endpoints included (the input word itself, and the baseline word, which
    is a vocabulary row but not a real word). Repeated points (a word that occurs twice, DIG paths that
    reached the baseline early) are measured once and counted as often as they occur.

    cache: an optional dict owned by the caller, mapping a hash of one token's points (and the candidate_sets) to
    their distances. A token's path depends only on its word and the method's settings, so over a dataset
    most paths repeat; a hit is bit-for-bit the same points, and each token's distances are computed on their
    own (never batched with other tokens, whose number would change the BLAS blocking and the last bits), so
    the result is exactly the same with or without the cache, on any CPU.
    """
    moving = ~torch.as_tensor(list(special_mask), dtype=torch.bool)
    per_token = path[:, moving].detach().float().cpu().transpose(0, 1).contiguous()  # (T, N, d)
    if per_token.numel() == 0:
        return {candidates: 0.0 for candidates in candidate_sets}
    cache = {} if cache is None else cache
    tag = f"{vocab.identity_}:{','.join(candidate_sets)}".encode()
    keys = [hashlib.blake2b(token.numpy().tobytes() + tag, digest_size=16).digest() for token in per_token]
    new_keys = [key for key in dict.fromkeys(keys) if key not in cache]  # distinct, in order
    first = {key: t for t, key in reversed(list(enumerate(keys)))}  # a token holding each key
    for key in new_keys:  # one token at a time: its distances never depend on which other tokens are new
        unique, inverse = torch.unique(per_token[first[key]], dim=0, return_inverse=True)  # (U, d), (N,)
        distances = vocab.nearest_distances(unique, candidate_sets)
        cache[key] = torch.stack([distances[candidates][inverse] for candidates in candidate_sets])  # (R, N)
    means = torch.stack([cache[key] for key in keys]).double().mean(dim=(0, 2))  # (R,)
    return {candidates: float(mean) for candidates, mean in zip(candidate_sets, means)}


def path_quality(explanation: Explanation, vocab: VocabIndex | None, cache: dict | None = None) -> PathQuality:
    """Completeness error, WAE and real-word share; None wherever the method has no path.

    cache: optional, see :func:`word_approximation_error`.
    """
    has_path = explanation.path is not None and not math.isnan(explanation.delta)
    if not has_path:
        return PathQuality(None, None, None, None, explanation.real_word_share)
    delta = abs(explanation.delta)
    change = abs(explanation.f_input - explanation.f_baseline)
    relative = delta / change if change > 0 else None
    wae = wae_words = None
    if vocab is not None:
        errors = word_approximation_error(explanation.path, explanation.special_mask, vocab, cache=cache)
        wae, wae_words = errors["all"], errors["words"]
    return PathQuality(delta, relative, wae, wae_words, explanation.real_word_share)


def scores(
    explanation: Explanation, model: torch.nn.Module, tokenizer, *, topk: float = DEFAULT_TOPK
) -> dict[str, float | None]:
    """The :data:`SCORES` of one explanation by key: faithfulness and the completeness error |Δ| (None without a
    path)."""
    faith = faithfulness(explanation, model, tokenizer, topk=topk)
    delta = None if math.isnan(explanation.delta) else abs(float(explanation.delta))
    return {**{m.key: getattr(faith, m.key) for m in FAITHFULNESS}, COMPLETENESS.key: delta}
