"""udig.provenance: what made a result (the model's revision) and a check of it that survives float noise."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import make_explanation, spans

from udig import card, provenance
from udig.provenance import check_differences, recomputed_check, result_check, rounded

TEXT = "a gorgeous witty film , not bad"
WORDS = TEXT.split(" ")
VALUES = [0.01, 0.62, -0.1249999, 0.2, 0.003, -0.33, 0.05]  # -0.125 sits on a rounding boundary


def explanation(values=VALUES, **extra):
    return make_explanation(TEXT, spans(TEXT, WORDS), list(values), **extra)


def sent(values=VALUES, label="positive") -> dict:
    """A check as a link carries it: made, written as JSON and read back."""
    return json.loads(json.dumps(result_check(label, {"": explanation(values)})))


def test_a_check_is_the_label_and_the_top_words_at_two_significant_digits():
    check = result_check("positive", {"": explanation()})
    assert check == {"label": "positive", "words": {"": [[1, "gorgeous", 0.62], [3, "film", 0.2], [5, "not", -0.33]]}}
    assert rounded(0.012345) == 0.012 and rounded(-0.1249999) == -0.12 and rounded(0.0) == 0.0


def test_the_same_result_with_float_noise_matches_its_link():
    noisy = [v * (1 + 1e-6 * (-1) ** i) for i, v in enumerate(VALUES)]  # last bits differ between processors
    assert check_differences(sent(), recomputed_check("positive", {"": explanation(noisy)})) == []
    # a value on a rounding boundary: the two sides round apart (-0.12 vs -0.13), and still agree
    edge = [*VALUES[:2], -0.1250001, *VALUES[3:]]
    assert rounded(edge[2]) != rounded(VALUES[2])
    assert check_differences(sent(), recomputed_check("positive", {"": explanation(edge)})) == []


def test_a_different_result_is_named():
    changed = [*VALUES[:3], 0.25, *VALUES[4:]]  # "film": 0.2 in the link, 0.25 here (25 % off)
    differences = check_differences(sent(), recomputed_check("positive", {"": explanation(changed)}))
    assert differences == ["'film' has attribution 0.25 here, 0.2 in the link"]
    differences = check_differences(sent(), recomputed_check("negative", {"": explanation()}))
    assert differences == ["the result is 'negative' here, 'positive' in the link"]
    other = "a gorgeous witty show , not bad"
    shifted = make_explanation(other, spans(other, other.split(" ")), VALUES)
    assert check_differences(sent(), recomputed_check("positive", {"": shifted})) == ["word 4 is not 'film' here"]


def test_a_word_no_longer_among_the_top_ones_is_still_compared():
    demoted = [0.01, 0.62, -0.1249999, 0.2, 0.003, -0.33, 0.21]  # "bad" now outranks "film", whose value stays
    here = recomputed_check("positive", {"": explanation(demoted)})
    assert [w[1] for w in here["words"][""]] == ["gorgeous", "not", "bad"]
    assert check_differences(sent(), here) == []


@pytest.mark.parametrize(
    "link",
    [None, "x", [], {"words": 3}, {"label": "positive", "words": {"": "x"}}, {"words": {"": [[1e9, 2, "a"]] * 900}}],
)
def test_an_unreadable_check_is_one_sentence_never_an_error(link):
    differences = check_differences(link, recomputed_check("positive", {"": explanation()}))
    assert differences and all(isinstance(d, str) and len(d) < 120 for d in differences)


def test_parts_missing_on_one_side_are_not_compared():
    """Compare leaves a method out above the point cap: only the methods both sides have are compared."""
    parts = {"ig": explanation(), "udig": explanation()}
    link = json.loads(json.dumps(result_check("positive", {"udig": explanation()})))
    assert check_differences(link, recomputed_check("positive", parts)) == []
    assert check_differences(link, recomputed_check("positive", {"ig": explanation()})) == [
        "the link's check has no words of this result"
    ]


def test_the_card_uses_the_shared_revision(tmp_path):
    assert card.model_revision is provenance.model_revision and card.model_ref is provenance.model_ref
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"w")
    digest = hashlib.sha256(b"w").hexdigest()[:12]
    assert (
        provenance.model_revision(provenance.model_ref(str(folder))) == f"weights sha256 {digest} (model.safetensors)"
    )
    no_hub = provenance.ModelRef("someone/absent", "someone/absent", "someone/absent", None)
    assert provenance.model_revision(no_hub, ask_hub=False) == "unknown (not in the local cache)"
    assert not provenance.known("unknown (not in the local cache)") and provenance.known("Hub commit abc")
