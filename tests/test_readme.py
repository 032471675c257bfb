"""The README's library example runs as written (its QA model path stands for the untrained QA head here)."""

from __future__ import annotations

import re
from pathlib import Path

import udig
from udig.models import load_base_minilm, load_model

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_library_example_runs(monkeypatch):
    block = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S).group(1)
    assert "Explainer(model, tokenizer)" in block and "load_model(" in block

    def load(name=None, **kwargs):  # no trained QA model ships offline: the example's placeholder gets a fresh head
        return load_base_minilm("qa") if name == "path/to/squad-model" else load_model(name, **kwargs)

    monkeypatch.setattr(udig, "load_model", load)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    explanation, qa = namespace["e"], namespace["qa"]
    assert explanation.method == "udig" and len(explanation.attributions) == len(explanation.tokens)
    assert qa.answer == qa.context[qa.answer_span[0] : qa.answer_span[1]]
