"""tools/train_default_model.py: each further stage trains on train reviews that no earlier stage saw."""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import pytest

from udig import data, models

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import train_default_model as training  # noqa: E402


def _model_folder(tmp_path: Path, stages: list[tuple[int, int]]) -> Path:
    """A folder whose metadata records ``stages`` as (seed, reviews), first stage first."""
    record = None
    for seed, count in stages:
        record = {"seed": seed, "train_reviews": count, **({"continued_from": record} if record else {})}
    folder = tmp_path / "model"
    folder.mkdir(parents=True)
    (folder / models.METADATA_FILE).write_text(json.dumps({"dataset": "imdb", "training": record}))
    return folder


def _args(init_from: Path | None, limit: int, seed: int = 7) -> argparse.Namespace:
    return argparse.Namespace(dataset="imdb", init_from=init_from, limit_train=limit, seed=seed)


def test_a_third_stage_trains_on_reviews_neither_earlier_stage_saw(tmp_path):
    stages = [(42, 3200), (42, 1200)]
    train = data.load_split("train", "imdb")
    first = random.Random(42).sample(train, 3200)  # how each stage drew its reviews, from what was left to it
    left = [e for e in train if e.id not in {x.id for x in first}]
    second = random.Random(42).sample(left, 1200)
    chosen, earlier = training.training_subset(_args(_model_folder(tmp_path, stages), 500))
    seen = {e.id for e in first + second}
    assert len(chosen) == 500 and not seen & {e.id for e in chosen}
    assert earlier["continued_from"]["train_reviews"] == 3200 and earlier["train_reviews"] == 1200
    again, _ = training.training_subset(_args(_model_folder(tmp_path / "again", stages), 500))
    assert [e.id for e in again] == [e.id for e in chosen]  # deterministic
    assert training._stages(earlier) == [earlier["continued_from"], earlier]  # first stage first


def test_a_stage_that_saw_the_whole_split_leaves_nothing_to_train_on(tmp_path):
    everything = len(data.load_split("train", "imdb"))
    with pytest.raises(SystemExit, match="subset"):
        training.training_subset(_args(_model_folder(tmp_path, [(1, everything)]), 10))


def test_the_card_names_every_stage_and_the_commands_that_rebuild_it():
    meta = json.loads(
        (Path(models.__file__).parent.parent / "assets" / "minilm-imdb" / models.METADATA_FILE).read_text()
    )
    shipped = training._card_training(meta, "reviews")
    assert "3 stages" in shipped and "stage 1 (3,200 reviews" in shipped and "stage 2 (1,200 other" in shipped
    assert "stage 3, below, with 8,000 other" in shipped
    assert "dropout 0.1; matrix products in bfloat16" in shipped  # the last stage's autocast, in its recipe line
    float32 = {key: value for key, value in meta["training"].items() if key != "autocast"}
    fourth = dict(float32, train_reviews=2400, lr=2e-05, continued_from=meta["training"])
    card = training._card_training({**meta, "training": fourth}, "reviews")
    assert "4 stages" in card and "stage 3 (8,000 other reviews" in card and "stage 4, below, with 2,400 other" in card
    assert "dropout 0.1;\n" in card  # this stage's recipe line: float32
    commands = card.split("`")[1::2][:4]  # the four commands, in order, each continuing from the one before
    assert "--out stage-1" in commands[0] and "--init-from stage-1" in commands[1] and "--out stage-2" in commands[1]
    assert "--init-from stage-2 --limit-train 8000" in commands[2] and commands[2].endswith("--bf16 --out stage-3")
    assert "--init-from stage-3 --limit-train 2400" in commands[3] and "--out" not in commands[3]
    assert "--bf16" not in commands[3] and "--bf16" not in commands[1]
