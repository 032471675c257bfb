"""The demo's words: title, introduction, examples, control labels and the About tab."""

from __future__ import annotations

from ..methods import PATH_METHODS, REGISTRY

TITLE = "udig · Uniform Discretized Integrated Gradients"
INTRO = """# 🔍 udig: which words made the model decide?
Integrated Gradients (**IG**) integrates the model's gradient along a straight line from a baseline to the input;
Discretized IG (**DIG**) and Uniform Discretized IG (**UDIG**, Roy & Kundu 2024) walk through real words instead.
Type a sentence, pick a method, and see each word's share of the decision."""

EXAMPLES = [
    "A gorgeous, witty, seductive movie.",
    "The plot is paper-thin and the acting is wooden.",
    "It's not a bad film, just a forgettable one.",
    "An utterly charming and hilarious film that reminded me why I love the movies.",
]
QA_EXAMPLE = (
    "Who introduced Integrated Gradients?",
    "Integrated Gradients was introduced by Mukund Sundararajan, Ankur Taly and Qiqi Yan in 2017. It attributes "
    "a prediction to the input features by integrating gradients along a straight line from a baseline.",
)

STRATEGY_LABELS = {"maxcount": "MaxCount", "greedy": "Greedy"}  # in the order the radio shows them
CANDIDATE_LABELS = {"words": "real words only", "all": "whole vocabulary (the papers)"}
_RULE_NAMES = {  # udig.integrate.RULES, as the Advanced panel names them, in its order
    "riemann_left": "left sum (the papers)",
    "riemann_trapezoid": "trapezoid",
    "riemann_middle": "midpoint",
    "riemann_right": "right sum",
    "gausslegendre": "Gauss-Legendre",
}


def _rule_label(rule: str, name: str) -> str:
    """``name``, followed by the methods that take ``rule`` when not every path method does (from the registry)."""
    takers = [REGISTRY[m].title for m in PATH_METHODS if rule in REGISTRY[m].restricts.get("rule", (rule,))]
    return name if len(takers) == len(PATH_METHODS) else f"{name} ({', '.join(takers)} only)"


RULE_LABELS = {rule: _rule_label(rule, name) for rule, name in _RULE_NAMES.items()}

QA_MEANINGS = {  # what the QA scores do (udig.metrics: tokens replaced by [MASK], never deleted), by score key
    "log_odds": "change in log-probability of the predicted position when the top 20 % tokens are replaced by [MASK]",
    "comprehensiveness": "drop in the predicted position's probability when the top 20 % tokens are replaced by [MASK]",
    "sufficiency": "drop in the predicted position's probability when all but the top 20 % tokens become [MASK]",
}

ABOUT = """### What you are looking at
Each word's colour is its **attribution**: how much it moved the model's score for the explained label, summed
over its sub-word tokens. Red words push toward the label, blue words away from it, and the stronger the colour,
the larger the share: colours are scaled so that the strongest word is ±1, and a word's value shows when you
hover it (screen readers read it after the word). Attributions integrate the model's gradient along a **path**
from a baseline (every word replaced by [PAD] or [MASK]) to the input:

- **IG** ([Sundararajan et al. 2017](https://arxiv.org/abs/1703.01365)) takes the straight line; its points lie
  between words, where the model has never been trained.
- **DIG** ([Sanyal & Ren, EMNLP 2021](https://arxiv.org/abs/2108.13654)) picks anchor words through a
  nearest-neighbour graph of the vocabulary, then makes each anchor *monotone*: every coordinate that would
  move away from the baseline is moved toward it instead. The gradients are taken at these moved points, not
  at the words, and they can lie far from any word (*See the path* shows both).
- **UDIG** ([Roy & Kundu 2024](https://arxiv.org/abs/2412.03886)) places evenly spaced reference points on the
  straight line and picks, near each, the word that needs the least such moving: evenly spread anchors, and
  path points that stay closer to the line.
- **SIG** ([Enguehard, Findings of ACL 2023](https://arxiv.org/abs/2305.15853)) moves one word at a time along
  IG's line, from [MASK], while the other words stay as typed: one path per word, so it costs as many times more
  as the text has words. *Sequential* does the same with DIG's and UDIG's word paths.

### How to read the scores
The faithfulness scores (DIG paper, top 20 % of tokens) ask whether the highlighted words really matter:
**log-odds** (lower is better) and **comprehensiveness** (higher is better) remove them, **sufficiency** (lower is
better) keeps only them. For question answering nothing is removed: the tokens are replaced by [MASK], so that
positions stay comparable. The **AOPC** versions (ERASER) average comprehensiveness and sufficiency over the
top 1, 5, 10, 20 and 50 % of tokens, so one cut-off does not decide. The **completeness error** |Δ| (closer to 0
is better) says how well the attributions add up to the change in the model's score between baseline and input;
large values mean too few steps.

The offline default model is MiniLM (all-MiniLM-L6-v2) fine-tuned on Rotten Tomatoes sentences by udig itself;
it is a small model, not a state-of-the-art classifier. Every event has an API endpoint: see "Use via API" below.

### Citing
If you use UDIG, please cite the paper that introduced it:

```bibtex
@misc{roy2024udig,
  title         = {Uniform Discretized Integrated Gradients: An effective attribution based method for
                   explaining large language models},
  author        = {Roy, Swarnava Sinha and Kundu, Ayan},
  year          = {2024},
  eprint        = {2412.03886},
  archivePrefix = {arXiv},
  primaryClass  = {cs.CL},
  url           = {https://arxiv.org/abs/2412.03886}
}
```
"""

OWN_MODEL_HELP = (
    "A text classifier or an extractive question-answering model of a family udig is tested on (BERT, DistilBERT, "
    "ELECTRA, RoBERTa, ALBERT, DeBERTa-v2, XLM-RoBERTa), with safetensors weights and at most {millions} million "
    "parameters. It is checked before anything but its description is downloaded, and its own code never runs."
)
OWN_MODEL_OFFLINE = (
    "⚠️ **This server cannot reach the Hugging Face Hub now**, so it cannot load a model from it: only the models "
    "in the list can be used."
)
