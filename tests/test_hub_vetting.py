"""Vetting a model before the public demo downloads it: the decision on local folders, never the Hub.

:func:`udig.hub.vet` is pure; :func:`udig.hub.folder_model_files` reads a folder as
:func:`udig.hub.hub_model_files` reads a repository (config, file sizes, safetensors headers), so every rule is
tested here on tiny models saved as the Hub holds them.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import torch
from conftest import tiny_bert

from udig.hub import (
    FAMILIES,
    ModelFiles,
    ModelRefused,
    VettingLimits,
    check_model_id,
    folder_model_files,
    hub_refusal,
    safetensors_parameters,
    vet,
    vet_hub_model,
)

# what a sentence for a visitor never holds: code names, environment variables, markup, tracebacks
DEVELOPER_TEXT = re.compile(r"[A-Za-z]+_[A-Za-z_]+|\(\)|`|HF_|UDIG|Error|Traceback|\n")


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_vocab_file):
    """Folders of tiny models as the Hub holds them: ``classifier``, ``qa``, ``sharded`` (a classifier in
    several safetensors shards), ``pickled`` (weights only in PyTorch's pickle format), and the models."""
    root = tmp_path_factory.mktemp("vetting")
    models = {}
    for folder, task, options in (
        ("classifier", "classification", {}),
        ("qa", "qa", {}),
        ("sharded", "classification", {"max_shard_size": "20KB"}),
        ("pickled", "classification", {"safe_serialization": False}),
    ):
        model, tokenizer = tiny_bert(tiny_vocab_file, task=task)
        try:
            model.save_pretrained(root / folder, **options)
        except TypeError:  # transformers 5 writes safetensors only
            torch.save(model.state_dict(), root / folder / "pytorch_model.bin")
        tokenizer.save_pretrained(root / folder)
        models[folder] = model
    for stale in (root / "pickled").glob("model*.safetensors*"):
        stale.unlink()
    if not (root / "pickled" / "pytorch_model.bin").exists():
        torch.save(models["pickled"].state_dict(), root / "pickled" / "pytorch_model.bin")
    return root, models


def _refusal(model: ModelFiles, limits: VettingLimits | None = None) -> str:
    with pytest.raises(ModelRefused) as refused:
        vet(model, limits or VettingLimits())
    message = str(refused.value)
    assert not DEVELOPER_TEXT.search(message), message  # one sentence for a visitor
    assert message.count(". ") == 0 and message.endswith("."), message
    return message


def _with_config(model: ModelFiles, **changes) -> ModelFiles:
    return dataclasses.replace(model, config={**model.config, **changes})


def test_a_classifier_and_a_qa_model_may_load(saved):
    root, models = saved
    for folder, task in (("classifier", "classification"), ("qa", "qa")):
        vetted = vet(folder_model_files(root / folder, name=f"someone/{folder}"))
        assert (vetted.task, vetted.family, vetted.name) == (task, "BERT", f"someone/{folder}")
        assert vetted.architecture == type(models[folder]).__name__
        assert vetted.parameters == models[folder].num_parameters()  # read from the header, not the weights
        assert vetted.files[:2] == ("config.json", "model.safetensors")
        assert {"tokenizer.json", "tokenizer_config.json"} <= set(vetted.files)
        assert vetted.download_bytes == sum((root / folder / path).stat().st_size for path in vetted.files)


def test_sharded_weights_are_counted_over_every_shard(saved):
    root, models = saved
    facts = folder_model_files(root / "sharded")
    assert len(facts.weight_files) > 1 and all(path.endswith(".safetensors") for path in facts.weight_files)
    vetted = vet(facts)
    assert vetted.parameters == models["sharded"].num_parameters()
    assert "model.safetensors.index.json" in vetted.files and set(facts.weight_files) <= set(vetted.files)
    assert sum(safetensors_parameters(root / "sharded" / path) for path in facts.weight_files) == vetted.parameters


def test_only_the_files_a_load_needs_are_fetched_and_counted(saved, tmp_path):
    """A repository's other files (pickled copies of the weights, ONNX exports, images) are neither
    downloaded nor counted against the download cap."""
    root, _ = saved
    facts = folder_model_files(root / "classifier")
    crowded = dataclasses.replace(
        facts, sizes={**facts.sizes, "pytorch_model.bin": 10**12, "model.onnx": 10**12, "README.md": 10}
    )
    vetted = vet(crowded)
    assert vetted == vet(facts) and not {"pytorch_model.bin", "model.onnx", "README.md"} & set(vetted.files)


def test_pickled_weights_are_refused(saved):
    root, _ = saved
    facts = folder_model_files(root / "pickled", name="someone/pickled")
    assert "pytorch_model.bin" in facts.sizes and facts.weight_files == ()
    message = _refusal(facts)
    assert message == (
        "“someone/pickled” has no weights in the safetensors format, only in a format that can run code when "
        "loaded; the demo loads safetensors weights only."
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"auto_map": {"AutoModelForSequenceClassification": "modeling_mine.MyModel"}},
        {"trust_remote_code": True},
    ],
)
def test_a_model_with_its_own_code_is_refused(saved, changes):
    facts = folder_model_files(saved[0] / "classifier", name="someone/custom")
    assert "never runs a model's own code" in _refusal(_with_config(facts, **changes))
    tokenizer_code = dataclasses.replace(facts, tokenizer_config={**facts.tokenizer_config, **changes})
    assert "never runs a model's own code" in _refusal(tokenizer_code)


def test_heads_and_families_udig_does_not_explain_are_refused(saved):
    facts = folder_model_files(saved[0] / "classifier", name="someone/model")
    for architectures in (["BertModel"], ["BertForMaskedLM"], ["BertForTokenClassification"], [], None):
        assert "not a text classifier" in _refusal(_with_config(facts, architectures=architectures))
    message = _refusal(_with_config(facts, model_type="gpt2", architectures=["GPT2ForSequenceClassification"]))
    assert message.startswith("“someone/model” is not a model of a family the demo explains (BERT, DistilBERT")
    mismatched = _with_config(facts, architectures=["RobertaForSequenceClassification"])  # a BERT config
    assert "not a text classifier" in _refusal(mismatched)
    assert "no readable configuration file" in _refusal(dataclasses.replace(facts, config=None))


@pytest.mark.parametrize("model_type", FAMILIES)
def test_every_tested_family_is_accepted_with_both_heads(saved, model_type):
    facts = folder_model_files(saved[0] / "classifier")
    prefix, family = FAMILIES[model_type]
    for head, task in (("ForSequenceClassification", "classification"), ("ForQuestionAnswering", "qa")):
        vetted = vet(_with_config(facts, model_type=model_type, architectures=[f"{prefix}{head}"]))
        assert (vetted.task, vetted.family, vetted.architecture) == (task, family, prefix + head)


def test_the_parameter_cap_reads_the_header(saved):
    root, models = saved
    facts = folder_model_files(root / "classifier", name="someone/big")
    count = models["classifier"].num_parameters()
    assert vet(facts, VettingLimits(max_parameters=count)).parameters == count
    message = _refusal(facts, VettingLimits(max_parameters=count - 1))
    assert re.fullmatch(
        r"“someone/big” has [\d.]+ thousand parameters, more than the [\d.]+ thousand the demo loads\.", message
    )
    assert "400 million" in _refusal(dataclasses.replace(facts, parameters=1_200_000_000))
    assert "1.2 billion parameters" in _refusal(dataclasses.replace(facts, parameters=1_200_000_000))


def test_weights_whose_size_cannot_be_read_are_refused(saved, tmp_path):
    """A safetensors file whose header is not one (a truncated upload, or a header claiming terabytes)."""
    import shutil

    shutil.copytree(saved[0] / "classifier", tmp_path / "broken")
    (tmp_path / "broken" / "model.safetensors").write_bytes((10**15).to_bytes(8, "little") + b"{}")
    facts = folder_model_files(tmp_path / "broken", name="someone/broken")
    assert facts.parameters is None
    assert (
        _refusal(facts) == "The size of “someone/broken” cannot be read from its weights, so the demo does not load it."
    )


def test_the_download_cap_sums_what_would_be_fetched(saved):
    facts = folder_model_files(saved[0] / "classifier", name="someone/model")
    needed = vet(facts).download_bytes
    assert vet(facts, VettingLimits(max_download_bytes=needed)).download_bytes == needed
    assert "to download, more than the" in _refusal(facts, VettingLimits(max_download_bytes=needed - 1))
    huge = dataclasses.replace(facts, sizes={**facts.sizes, "model.safetensors": 2_500_000_000})
    assert "would take 2.5 GB to download, more than the 2 GB the demo allows" in _refusal(huge)
    unknown = dataclasses.replace(facts, sizes={**facts.sizes, "tokenizer.json": None})
    assert "download size" in _refusal(unknown)


def test_a_model_without_its_tokenizer_is_refused(saved):
    facts = folder_model_files(saved[0] / "classifier", name="someone/bare")
    bare = dataclasses.replace(
        facts, sizes={k: v for k, v in facts.sizes.items() if k not in {"tokenizer.json", "vocab.txt"}}
    )
    assert "tokenizer_config.json" in bare.sizes  # a tokenizer's settings without its vocabulary read nothing
    assert _refusal(bare) == "“someone/bare” comes without its tokenizer, so the demo cannot read text with it."


def test_names_and_revisions_are_checked_before_the_hub_is_asked(monkeypatch):
    import udig.hub as hub

    monkeypatch.setattr(hub, "hub_model_files", lambda *args: pytest.fail("the Hub was asked"))
    for name in ("gpt2", "a/b/c", "../etc/passwd", "owner/na me", "x" * 500 + "/y", "", "owner/..", "https://evil/x"):
        with pytest.raises(ModelRefused, match="is not a model name: write it as owner/name"):
            vet_hub_model(name)
    with pytest.raises(ModelRefused, match="is not a revision"):
        vet_hub_model("owner/name", revision="main; rm -rf")
    check_model_id("textattack/roberta-base-SST-2", "a" * 40)  # accepted: nothing raised


def test_a_vetted_hub_model_is_downloaded_at_the_commit_it_was_vetted_at(saved, monkeypatch):
    """The I/O is replaced by the folder's facts (read at a commit): vet_hub_model decides on them, and passes
    the commit on, so that the repository cannot change between the check and the download."""
    import udig.hub as hub

    facts = dataclasses.replace(folder_model_files(saved[0] / "qa"), revision="c0ffee" * 6 + "abcd")
    asked = []
    monkeypatch.setattr(hub, "hub_model_files", lambda name, revision, token: asked.append((name, revision)) or facts)
    vetted = vet_hub_model(" someone/qa ", revision="main")
    assert asked == [("someone/qa", "main")] and vetted.revision == facts.revision and vetted.task == "qa"


@pytest.mark.parametrize(
    "error,expected",
    [
        ("RepositoryNotFoundError", "There is no public model called “someone/x” on the Hugging Face Hub."),
        ("GatedRepoError", "“someone/x” is gated on the Hugging Face Hub: the demo can only load open models."),
        ("RevisionNotFoundError", "“someone/x” has no such revision on the Hugging Face Hub."),
        ("ConnectError", "The Hugging Face Hub could not tell the demo about “someone/x” just now; try again later."),
    ],
)
def test_hub_failures_are_told_to_the_visitor(monkeypatch, error, expected):
    import udig.hub as hub

    failure = type(error, (Exception,), {})("401 Client Error: https://huggingface.co/api/models/someone/x")

    def fail(*args):
        raise failure

    monkeypatch.setattr(hub, "hub_model_files", fail)
    with pytest.raises(ModelRefused) as refused:
        vet_hub_model("someone/x")
    assert str(refused.value) == expected == str(hub_refusal("someone/x", failure))
    assert refused.value.__cause__ is failure  # the log keeps the Hub's own words


def test_a_saved_config_is_what_vetting_reads(saved):
    """The folder reader takes config.json as written by save_pretrained (no transformers object involved)."""
    root, _ = saved
    written = json.loads((root / "qa" / "config.json").read_text())
    assert folder_model_files(root / "qa").config == written and written["architectures"] == [
        "BertForQuestionAnswering"
    ]
